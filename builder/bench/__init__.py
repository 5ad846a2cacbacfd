"""Timing the browser runtime: `builder bench` in Chromium, its texts of exact token counts, its
report, and the Chromium launcher the benchmarks and the browser tests share."""
