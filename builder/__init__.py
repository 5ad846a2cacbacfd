"""The build side of the edge intent-classifier kit: ``python -m builder --help``. Its packages follow
the data's path from templates to bundle (docs/ARCHITECTURE.md)."""
