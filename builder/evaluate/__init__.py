"""Measuring a built bundle: accuracy and calibration per tier and for the cascade, plots, and
out-of-scope detection (the held-out intents protocol)."""
