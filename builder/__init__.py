"""The build side of the edge intent-classifier kit: ``python -m builder --help``."""
