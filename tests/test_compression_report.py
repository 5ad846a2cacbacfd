"""benchmarks.compression's report: the Pareto front, the Markdown table and the chart
(builder.evaluate.plots), on made-up points."""

from __future__ import annotations

from benchmarks.compression import markdown
from builder.evaluate.plots import pareto_front, size_accuracy_chart


def point(model: str, vocab: int, scheme: str, mb: float, accuracy: float, ms: float) -> dict:
    return {"model": model, "layers": 3 if model != "L6" else 6, "vocab": vocab, "scheme": scheme, "download_bytes": mb * 1e6,
            "download_gzip_bytes": mb * 0.8e6, "accuracy": {"test": accuracy, "handwritten": accuracy - 0.05},
            "native_ms": ms, "wasm1_ms": 2 * ms, "wasm2_ms": 2.5 * ms}


REPORT = {
    "models": {"L6": "/b/l6", "L3": "/m/l3"},
    "data": "/d",
    "cpu": {"model": "test CPU", "flags": []},
    "tests": {"test": 100, "handwritten": 20},
    "load_during_timing": [0.5, 0.7],
    "points": [
        point("L6", 30522, "u8s7", 23.0, 0.93, 4.0),
        point("L6", 8000, "u8s4", 7.2, 0.925, 3.9),
        point("L3", 8000, "u8s4", 4.7, 0.92, 2.0),
        point("L3", 8000, "u8s7", 6.0, 0.915, 2.1),  # bigger and worse than the u8s4 point: off the front
        point("L3", 4000, "u8s4", 3.9, 0.90, 2.0),
    ],
}


def test_the_front_keeps_only_points_nothing_beats_in_size_and_accuracy():
    front = [(p["model"], p["vocab"], p["scheme"]) for p in pareto_front(REPORT["points"], "test")]
    assert front == [("L3", 4000, "u8s4"), ("L3", 8000, "u8s4"), ("L6", 8000, "u8s4"), ("L6", 30522, "u8s7")]


def test_markdown_has_a_row_per_point_with_ratios_to_the_first(monkeypatch):
    monkeypatch.setattr("benchmarks.compression.describe_cpu", lambda cpu: cpu["model"])
    text = markdown(REPORT)
    rows = [line for line in text.splitlines() if line.startswith("| L")]
    assert len(rows) == 5
    assert rows[2].startswith("| L3 | 3 | 8,000 | u8s4 | 4.70 (3.76) | 0.9200 (-1.00 pt) | 0.8700 (-1.00 pt) | 2.00 ms (0.50x)")
    assert "0.50 -> 0.70" in text


def test_the_chart_is_a_png(tmp_path):
    path = size_accuracy_chart(REPORT["points"], list(REPORT["tests"]), list(REPORT["models"]), tmp_path / "pareto.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
