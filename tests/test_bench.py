"""`builder bench` without a browser: which cases run, texts of exact lengths, the timing loop,
agreement with runtime_py, the medians over runs, and the report. The browser half runs in
`make test` as `python -m builder bench --quick` (Makefile, test-bench)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from builder.bench import run as bench
from builder.bench.report import format_markdown, ratios, write_chart
from builder.bench.run import Case, Reference, agreement, check_result, first_answer_parts, plan_cases, summarize_case, time_calls
from builder.bench.texts import bench_sets, cut_texts, read_pool
from builder.cli import main
from runtime_py.bundle import FileEntry, Manifest, TierSpec
from runtime_py.errors import IntentKitError


def entry(path: str) -> FileEntry:
    return FileEntry(path, 10, "0" * 64)


def manifest(*, bow: bool = True, transformer: bool = True, fp32: bool = True, webgl: bool = False,
             layout: str = "onnx/model_quantized.onnx") -> Manifest:
    tiers = []
    if bow:
        tiers.append(TierSpec("bow", "bow", {"model": entry("bow.json")}))
    if transformer:
        files = {"model": entry(layout), "tokenizer": entry("tokenizer.json"), "tokenizer_config": entry("tokenizer_config.json"),
                 "config": entry("config.json")}
        variants = {"model": {"precision": "int8"}}
        if fp32:
            files["model_fp32"] = entry("onnx/model.onnx")
            variants["model_fp32"] = {"precision": "fp32"}
        if webgl:
            files["model_webgl_16"] = entry("onnx/model_webgl_16.onnx")
            variants["model_webgl_16"] = {"precision": "fp32", "backend": "webgl", "pad_length": 16}
        tiers.append(TierSpec("transformer", "transformer", files, extra={"variants": variants}))
    return Manifest("t", ["a", "b"], tiers)


def ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


# ---------------------------------------------------------------- cases


def test_full_plan_covers_every_backend_and_variant():
    cases, notes = plan_cases(manifest(), quick=False)
    assert ids(cases) == [
        "bow-js", "bow-pyodide",
        "wasm-1t-int8", "wasm-int8", "webgpu-int8", "tjs-wasm-int8", "tjs-wasm-1t-int8",
        "wasm-1t-fp32", "wasm-fp32", "webgpu-fp32", "tjs-wasm-fp32",
        "webgl",
    ]
    assert notes == []
    by_id = {c.id: c for c in cases}
    assert by_id["wasm-1t-int8"].threads == 1 and by_id["wasm-int8"].threads is None
    assert by_id["tjs-wasm-fp32"].dtype == "fp32" and not by_id["tjs-wasm-fp32"].calibrated
    assert by_id["webgl"].variant is None and by_id["webgl"].reference == "model_fp32"


def test_quick_plan_is_int8_only_and_keeps_one_transformers_js_case():
    cases, _ = plan_cases(manifest(), quick=True)
    assert ids(cases) == ["bow-js", "bow-pyodide", "wasm-1t-int8", "wasm-int8", "webgpu-int8", "tjs-wasm-int8", "webgl"]


def test_bow_only_bundle_and_switches():
    cases, notes = plan_cases(manifest(transformer=False), quick=False)
    assert ids(cases) == ["bow-js", "bow-pyodide"]
    assert "no transformer tier" in notes[0]
    cases, notes = plan_cases(manifest(), quick=True, with_tjs=False, with_webgl=False)
    assert not any(c.engine == "transformers.js" or c.backend == "webgl" for c in cases)
    assert any("--no-transformers-js" in n for n in notes)


def test_transformers_js_needs_the_hugging_face_layout():
    cases, notes = plan_cases(manifest(layout="onnx/classifier.onnx", fp32=False), quick=False)
    assert not any(c.engine == "transformers.js" for c in cases)
    assert "wasm-int8" in ids(cases)


def test_a_transformers_js_reference_is_timed_but_not_compared():
    quick = {c.id: c for c in plan_cases(manifest(), quick=True, tjs_reference="/models/minilm-l6")[0]}
    ref = quick["tjs-reference-wasm"]
    assert ref.model == "reference" and ref.reference is None and ref.dtype == "q8" and "minilm-l6 q8" in ref.label
    assert ref.page_case({}, {})["model"] == "reference" and "model" not in quick["tjs-wasm-int8"].page_case({}, {})
    full = ids(plan_cases(manifest(), quick=False, tjs_reference="/models/minilm-l6")[0])
    assert {"tjs-reference-wasm", "tjs-reference-wasm-1t"} <= set(full)
    assert not any("reference" in i for i in ids(plan_cases(manifest(), quick=False)[0]))


def test_four_bit_graphs_are_timed_on_every_backend():
    """Packed 4-bit weights are unpacked by opset-17 ops, which WebGPU's build and transformers.js load too."""
    spec = manifest()
    transformer = next(t for t in spec.tiers if t.kind == "transformer")
    transformer.extra.setdefault("variants", {})["model"] = {"precision": "int8", "int8_scheme": "u8s4"}
    cases, notes = plan_cases(spec, quick=True)
    assert {"wasm-int8", "webgpu-int8", "tjs-wasm-int8"} <= set(ids(cases))
    assert not any("u8s4" in n for n in notes)


def test_tolerances_follow_precision_and_backend():
    cases = {c.id: c for c in plan_cases(manifest(), quick=False)[0]}
    assert cases["bow-js"].tolerance == 1e-9
    assert cases["wasm-int8"].tolerance == cases["webgpu-int8"].tolerance == 0.05
    assert cases["wasm-fp32"].tolerance == cases["webgl"].tolerance == 1e-3


def test_page_case_leaves_out_unset_fields():
    case = Case("wasm-int8", "x", "js", "transformer", "wasm", "model", None, precision="int8", reference="model")
    page = case.page_case({"short": ["a"]}, {"budgetMs": 1})
    assert page == {"id": "wasm-int8", "engine": "js", "tier": "transformer", "backend": "wasm", "variant": "model",
                    "sets": {"short": ["a"]}, "timing": {"budgetMs": 1}}


# ---------------------------------------------------------------- texts


def test_texts_have_exactly_the_asked_length_and_differ():
    count = lambda text: len(text.split()) + 2  # noqa: E731  (as if each word were one token, plus [CLS]/[SEP])
    sets = bench_sets(count, {"short": 16, "long": 64}, 5)
    assert all(count(t) == 16 for t in sets["short"]) and all(count(t) == 64 for t in sets["long"])
    assert len(set(sets["short"])) == 5


def test_a_word_that_overshoots_is_skipped():
    count = lambda text: sum(3 if w == "big" else 1 for w in text.split())  # noqa: E731
    assert cut_texts(count, 3, 1, ["a big b c d"]) == ["a b c"]


def test_impossible_length_is_a_clear_error():
    with pytest.raises(IntentKitError, match="exactly 5 tokens"):
        cut_texts(lambda text: 2 * len(text.split()), 5, 1, ["a b c"])
    with pytest.raises(IntentKitError, match="empty"):
        cut_texts(len, 5, 1, [])


def test_the_pool_is_plain_sentences():
    pool = read_pool()
    assert len(pool) >= 16 and all(not line.startswith("#") and len(line.split()) >= 8 for line in pool)


# ---------------------------------------------------------------- timing


def test_time_calls_warms_up_then_times_within_the_budget_and_keeps_timed_outputs():
    seen = []

    def fn(text: str) -> str:
        seen.append(text)
        return text.upper()

    timing = {"warmupMs": 0, "warmupCalls": 3, "warmupMaxMs": 1000, "budgetMs": 0, "minCalls": 4, "maxCalls": 10}
    got = time_calls(fn, ["a", "b"], timing)
    assert got["calls"] == 4 and got["warmup_calls"] == 3
    assert got["outputs"] == ["A", "B"]
    assert len(seen) == 1 + 3 + 4
    assert got["median_ms"] >= 0 and got["p95_ms"] >= got["median_ms"]


def test_summarize_uses_nearest_rank_p95():
    s = bench.summarize([float(v) for v in range(1, 21)])
    assert s["median_ms"] == 10.5 and s["p95_ms"] == 19.0 and s["min_ms"] == 1.0 and s["calls"] == 20
    assert math.isnan(bench.summarize([])["median_ms"])


# ---------------------------------------------------------------- agreement


def reference(probs: list[list[float]]) -> Reference:
    return Reference(labels={"model": ["a", "b"]}, calibrated={"model": {"short": probs}}, raw={"model": {"short": probs}})


def result(outputs: list[list[float]], labels: list[str] = ["a", "b"]) -> dict:
    return {"labels": labels, "sets": {"short": {"outputs": outputs}}}


INT8 = Case("wasm-int8", "x", "js", "transformer", "wasm", "model", precision="int8", reference="model")


def test_agreement_within_tolerance():
    got = agreement(INT8, result([[0.71, 0.29]]), reference([[0.7, 0.3]]))
    assert got["ok"] and got["checked"] == 1 and got["max_abs_diff"] == pytest.approx(0.01)
    assert got["tolerance"] == 0.05


def test_agreement_fails_on_a_large_difference_or_a_changed_answer():
    assert not agreement(INT8, result([[0.6, 0.4]]), reference([[0.7, 0.3]]))["ok"]
    assert agreement(INT8, result([[0.66, 0.34]]), reference([[0.7, 0.3]]))["ok"]
    fp32 = Case("wasm-fp32", "x", "js", "transformer", "wasm", "model", precision="fp32", reference="model")
    got = agreement(fp32, result([[0.4, 0.6]]), reference([[0.6, 0.4]]))
    assert not got["ok"] and got["argmax_changes"] == ["short[0]"]


def test_a_near_tie_may_flip():
    got = agreement(INT8, result([[0.48, 0.52]]), reference([[0.51, 0.49]]))
    assert got["ok"] and got["argmax_changes"] == []


def test_agreement_maps_labels_by_name():
    assert agreement(INT8, result([[0.3, 0.7]], labels=["b", "a"]), reference([[0.7, 0.3]]))["ok"]
    assert "labels differ" in agreement(INT8, result([[1.0, 0.0]], labels=["a", "c"]), reference([[0.7, 0.3]]))["problem"]


def test_transformers_js_is_compared_with_untempered_softmax():
    tjs = Case("tjs-wasm-int8", "x", "transformers.js", "transformer", "wasm", dtype="q8", precision="int8", reference="model", calibrated=False)
    ref = Reference(labels={"model": ["a", "b"]}, calibrated={"model": {"short": [[0.9, 0.1]]}}, raw={"model": {"short": [[0.7, 0.3]]}})
    assert agreement(tjs, result([[0.7, 0.3]]), ref)["ok"]
    assert not agreement(INT8, result([[0.7, 0.3]]), ref)["ok"]


def test_check_result_names_fallbacks_thread_counts_and_page_errors():
    ok = {"ok": True, "status": {"backend": "wasm"}, "describe": {"threads": 1}, "page_errors": []}
    one = Case("wasm-1t-int8", "x", "js", "transformer", "wasm", "model", 1, precision="int8", reference="model")
    assert check_result(one, ok) is None
    assert "instead of 2" in check_result(Case("w", "x", "js", "transformer", "wasm", "model", 2), ok)
    fell = {**ok, "status": {"backend": "wasm", "fallback_reason": "webgpu: no adapter"}}
    assert "no adapter" in check_result(Case("g", "x", "js", "transformer", "webgpu"), fell)
    assert check_result(one, {"ok": False, "error": "boom"}) == "boom"
    assert check_result(one, {**ok, "page_errors": ["pageerror: x"]}) == "pageerror: x"


# ---------------------------------------------------------------- summary and report


def run_result(short: float, long: float, start: float = 100.0) -> dict:
    sets = {name: {"median_ms": v, "p95_ms": 2 * v, "first_ms": 10 * v, "calls": 5} for name, v in (("short", short), ("long", long))}
    return {"ok": True, "bytes": 1000, "started_ms": start, "first_answer_ms": start + 50, "tier_ready_ms": start + 40,
            "engine_started_ms": start + 10,
            "status": {"backend": "wasm", "adapter": {"name": "WebAssembly SIMD, 2 thread(s)", "software": False},
                       "timings": {"manifest_ms": 5.0, "first_tier_ms": 30.0}},
            "describe": {"threads": 2, "session_ms": 300.0, "first_run_ms": 20.0, "variant": "model"}, "sets": sets}


def test_summary_is_the_median_of_per_run_medians():
    s = summarize_case([run_result(3, 9), run_result(1, 7), run_result(2, 8)])
    assert s["runs"] == 3 and s["sets"]["short"]["median_ms"] == 2 and s["sets"]["long"]["median_ms"] == 8
    assert s["sets"]["short"]["run_medians_ms"] == [3, 1, 2] and s["sets"]["short"]["calls"] == 15
    assert s["first_answer_from_start_ms"] == 50 and s["threads"] == 2 and s["session_ms"] == 300.0
    assert summarize_case([{"ok": False}]) == {}


def test_first_answer_parts_add_up_to_the_first_answer():
    run = run_result(1, 2, start=100.0)
    parts = first_answer_parts(run)
    assert parts == {"page": 100.0, "worker": 10.0, "manifest": 5.0, "tier": 25.0, "reply": 10.0}
    assert sum(parts.values()) == run["first_answer_ms"]
    assert first_answer_parts({**run, "engine_started_ms": None}) == {}  # an older page: no breakdown
    assert summarize_case([run])["first_answer_parts"] == parts
    markdown = format_markdown(report(), None)
    assert "Where the first answer's time goes" in markdown and "| WASM, threads, int8 | 100 ms | 10.00 ms |" in markdown


def report() -> dict:
    cases = []
    for case, (short, long) in ((Case("wasm-int8", "WASM, threads, int8", "js", "transformer", "wasm", "model"), (4.0, 9.0)),
                                (Case("tjs-wasm-int8", "transformers.js, WASM, threads, int8", "transformers.js", "transformer", "wasm"), (8.0, 18.0))):
        cases.append({"case": bench.asdict(case), "summary": summarize_case([run_result(short, long)]),
                      "agreement": {"max_abs_diff": 0.004, "argmax_changes": 0, "checked": 16, "tolerance": 0.02}})
    failed = Case("webgpu-int8", "WebGPU, int8", "js", "transformer", "webgpu", "model")
    cases.append({"case": bench.asdict(failed), "summary": {}, "agreement": {"max_abs_diff": None}})
    native = [{"id": "native-int8-1t", "label": "onnxruntime (native), 1 thread, int8", "sets": run_result(2.0, 5.0)["sets"]}]
    return {
        "bundle": {"name": "finance", "tiers": [{"name": "transformer", "kind": "transformer", "base": "minilm-l6"}]},
        "machine": {"cpu": "cpu", "cores": 2, "chromium": "156", "load": [{"before": [1.0, 1, 1], "after": [1.5, 1, 1]}]},
        "settings": {"runs": 1, "texts_per_set": 4}, "notes": ["a note"], "native": native, "cases": cases,
        "failures": ["webgpu-int8: ran on wasm instead of webgpu"],
    }


def test_markdown_has_a_row_per_case_ratios_and_failures():
    text = format_markdown(report(), "python -m builder bench --quick")
    assert "python -m builder bench --quick" in text
    assert "| WASM, threads, int8 | WASM, 2 threads | 1 kB | 150 ms / 50.00 ms | 140 ms | 300 ms | 20.00 ms | 4.00 ms / 8.00 ms | 9.00 ms / 18.00 ms | 4.0e-03, same argmax |" in text
    assert "| WebGPU, int8 | failed |" in text
    assert "**2.00x** at 16 tokens" in text
    assert "ran on wasm instead of webgpu" in text and "- a note" in text
    assert "1.00->1.50" in text


def test_ratios_skip_pairs_that_did_not_run():
    lines = ratios(report())
    assert len(lines) == 1 and "transformers.js" in lines[0]


def test_chart_is_a_png(tmp_path):
    path = write_chart(report(), tmp_path / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- runtime_py reference and the command


def test_native_runs_time_the_bow_tier_and_keep_its_answers(small_bundle):
    from runtime_py import Router

    m = bench.read_manifest(small_bundle)
    sets = {"short": ["how is AAPL doing", "cash balance please"], "long": ["show me all my positions and how each did this year"]}
    timing = {"warmupMs": 0, "warmupCalls": 1, "warmupMaxMs": 100, "budgetMs": 0, "minCalls": 2, "maxCalls": 2}
    rows, ref = bench.native_runs(small_bundle, m, sets, timing, log=lambda _: None)
    assert [r["id"] for r in rows] == ["native-bow"]
    tier = Router.from_bundle(small_bundle).tiers[0]
    assert ref.calibrated["bow"]["short"][1] == tier.probabilities("cash balance please")
    assert ref.labels["bow"] == tier.labels


def test_bench_refuses_a_folder_without_a_bundle(tmp_path, capsys):
    assert main(["bench", "--bundle", str(tmp_path), "--quick"]) == 2
    assert "no bundle" in capsys.readouterr().err


def test_report_round_trips_as_json(tmp_path):
    bench.write_json(tmp_path / "r.json", report())
    assert json.loads((tmp_path / "r.json").read_text())["cases"][0]["case"]["id"] == "wasm-int8"


def test_time_calls_stops_at_max_calls():
    timing = {"warmupMs": 0, "warmupCalls": 0, "warmupMaxMs": 0, "budgetMs": 10_000, "minCalls": 1, "maxCalls": 7}
    counter = itertools.count()
    got = time_calls(lambda t: next(counter), ["x"], timing)
    assert got["calls"] == 7 and got["warmup_calls"] == 0


def test_case_report_lists_errors_and_the_first_disagreement_and_drops_outputs():
    good = {**run_result(2.0, 5.0), "page_errors": [], "agreement": {"ok": True, "max_abs_diff": 0.01, "argmax_changes": [], "checked": 2, "against": "runtime_py model"}}
    good["sets"]["short"]["outputs"] = [[0.5, 0.5]]
    off = {**good, "agreement": {"ok": False, "max_abs_diff": 0.2, "argmax_changes": ["short[0]"], "checked": 2, "tolerance": 0.05, "against": "runtime_py model"}}
    failed = {"ok": False, "error": "boom"}
    entry, failures = bench.case_report(INT8, [good, off, failed])
    assert failures == ["wasm-int8: boom", "wasm-int8: disagrees with runtime_py model: max |diff| 2.00e-01 (tolerance 0.05), argmax changes: ['short[0]']"]
    assert entry["summary"]["runs"] == 2 and entry["agreement"]["max_abs_diff"] == 0.2 and entry["agreement"]["checked"] == 4
    assert "outputs" not in entry["runs"][0]["sets"]["short"] and entry["runs"][2] == {**failed, "sets": {}}
