"""Latency and accuracy benchmarks (docs/BENCHMARKS.md), run from the repository root as
``.venv/bin/python -m benchmarks.NAME``; the ``.mjs`` ones under ``node``."""
