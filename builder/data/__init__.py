"""Labelled utterances, the start of the data's path: templates, synthetic generation with typing noise,
import of CSV / JSONL / logs, the JSONL splits on disk and the labels that mean out of scope."""
