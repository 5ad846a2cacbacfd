"""``python -m builder``: generate data, train tiers, evaluate, predict, build the default bundle."""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from runtime_py import Router
from runtime_py.errors import IntentKitError

from . import paths
from .atomic import replace_file

if TYPE_CHECKING:
    from .bundle_writer import BundleDraft


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _char_range(value: str) -> tuple[int, int]:
    try:
        lo, _, hi = value.partition("-")
        pair = (int(lo), int(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO-HI such as 2-5, got {value!r}") from None
    if not 1 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"expected 1 <= LO <= HI, got {value!r}")
    return pair


def _number(kind: type, accept: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """An argparse type: `kind(value)` when `accept` holds for it, else "expected <expected>"."""

    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not accept(number):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return number

    return parse


_probability = _number(float, lambda x: 0 <= x <= 1, "a number between 0 and 1")
_non_negative = _number(float, lambda x: 0 <= x < math.inf, "a number >= 0")


def _positive(kind: type) -> Callable[[str], Any]:
    return _number(kind, lambda x: x > 0, f"a positive {kind.__name__}")


# ---------------------------------------------------------------- data


def cmd_generate(args: argparse.Namespace) -> int:
    from .datasets import write_splits
    from .generate import GenerateOptions, generate
    from .templates import load_templates

    templates = load_templates(args.templates)
    options = GenerateOptions.from_env(size=args.size, seed=args.seed, max_combos=args.max_combos)
    _log(f"generating {options.size:,} utterances from {templates.path} (seed {options.seed}, <= {options.max_combos} combinations per template)")
    splits, report = generate(templates, options, progress=_log)
    if report.conflicts:
        _log(f"dropped {report.conflicts:,} utterances that two intents both produce")
    for intent, missing in report.short.items():
        _log(f"warning: {intent} has only {report.per_intent[intent]:,} distinct utterances ({missing:,} short of its share)")
    write_splits(args.out, splits, {"slots.json": templates.slot_spec(), "generation.json": _generation_info(templates, options, report)})
    _log(f"wrote {args.out}/: " + ", ".join(f"{name} {len(rows):,}" for name, rows in splits.items()))
    return 0


def _generation_info(templates: Any, options: Any, report: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {"templates": str(templates.path), "name": templates.name, "options": asdict(options), "report": asdict(report)}


def cmd_import(args: argparse.Namespace) -> int:
    from .datasets import import_files, stratified_split, write_splits

    examples, report = import_files(args.sources)
    if not examples:
        raise IntentKitError(f"no usable rows in {', '.join(map(str, args.sources))}")
    _log(
        f"read {report.read:,} rows: kept {report.kept:,}, skipped {report.failed_executions:,} failed executions, "
        f"{report.empty:,} empty, {report.duplicates:,} duplicates; {report.conflicts:,} texts had conflicting labels (majority kept)"
    )
    splits = stratified_split(examples, args.seed, (0.8, 0.1, 0.1))
    extra = {"slots.json": json.loads(Path(args.slots).read_text())} if args.slots else None
    write_splits(args.out, splits, extra)
    _log(f"wrote {args.out}/: " + ", ".join(f"{name} {len(rows):,}" for name, rows in splits.items()))
    return 0


# ---------------------------------------------------------------- training


def _bow_options(args: argparse.Namespace) -> Any:
    from .train_bow import BowOptions

    return BowOptions(
        max_vocab=args.max_vocab,
        ngram_max=args.ngram_max,
        char_ngrams=args.char_ngrams,
        max_char_vocab=args.max_char_vocab,
        min_count=args.min_count,
        tf=args.tf,
        idf=args.idf,
        norm=args.norm,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        class_weights=args.class_weights,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        oos_labels=tuple(args.oos_label or BowOptions.oos_labels),
    )


def train_bow_into_bundle(
    data: Path, out: Path, options: Any, replace: bool = False, progress: bool = True, handoff_threshold: float | None = None,
    draft: BundleDraft | None = None,
) -> Any:
    """Train the BoW tier on the splits in `data` into the bundle at `out` (a new one with `replace`),
    or into `draft` when given: a step of `build`, which swaps the bundle in at its end."""
    from .bundle_writer import edit_bundle
    from .datasets import read_splits
    from .oos import record_oos_labels
    from .train_bow import train_bow

    splits = read_splits(data, options.seed)
    _log(f"training the bag-of-words tier on {data}: " + ", ".join(f"{k} {len(v):,}" for k, v in splits.items()))
    result = train_bow(splits, options, log=_log, progress=progress)
    slots_file = data / "slots.json"
    shared = draft is not None
    with edit_bundle(out, draft, replace=replace) as draft:
        size = draft.write_json("bow.json", result.model).stat().st_size
        summary = {name: {k: m[k] for k in ("n", "accuracy", "macro_f1", "ece_uncalibrated", "ece") if k in m} for name, m in result.metrics.items()}
        draft.set_tier("bow", "bow", {"model": "bow.json"}, result.labels, metrics=summary, handoff_threshold=handoff_threshold)
        if record_oos_labels(draft.manifest, result.labels, options.oos_labels):
            _log(f"out-of-scope class: {', '.join(draft.manifest['routing']['oos_labels'])} (routing.oos_labels)")
        if slots_file.exists():
            draft.set_slots(json.loads(slots_file.read_text(encoding="utf-8")))
    _log(f"best epoch {result.best_epoch}, temperature {result.temperature:.3f}, {result.seconds:.1f} s")
    for name, m in result.metrics.items():
        _log(f"{name}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, ECE {m['ece_uncalibrated']:.4f} -> {m['ece']:.4f}")
    _log(f"staged bow.json ({size / 1024:.0f} KiB)" if shared else f"wrote {out}/ (bow.json {size / 1024:.0f} KiB)")
    return result


def cmd_train_bow(args: argparse.Namespace) -> int:
    train_bow_into_bundle(Path(args.data), Path(args.out), _bow_options(args), replace=args.replace, progress=not args.quiet)
    return 0


def _transformer_options(args: argparse.Namespace) -> Any:
    from .train_transformer import TransformerOptions
    from .transformer_build import TransformerBuildOptions

    training = TransformerOptions(
        base=args.base,
        layers=args.layers,
        max_length=args.max_length,
        epochs=args.epochs,
        batch_size=args.batch_size,
        encoder_lr=args.lr,
        head_lr=args.head_lr,
        layer_decay=args.layer_decay,
        label_smoothing=args.label_smoothing,
        class_weights=args.class_weights,
        seed=args.seed,
        max_steps=args.max_steps,
        average_last=args.average_last,
        pseudo_oos=args.pseudo_oos,
        device=args.device,
        oos_labels=tuple(args.oos_label or TransformerOptions.oos_labels),
    )
    return TransformerBuildOptions(
        training=training,
        quantize=not args.no_quantize,
        prune=args.prune,
        allow_prune_changes=args.allow_prune_changes,
        target_precision=args.target_precision,
        save_model=Path(args.save_model) if args.save_model else None,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from .transformer_build import train_transformer_into_bundle

    train_transformer_into_bundle(Path(args.data), Path(args.out), _transformer_options(args), log=_log, progress=not args.quiet)
    _log(f"wrote {args.out}/")
    if getattr(args, "webgl", False):
        _add_webgl(Path(args.out), Path(args.data), args.seed)
    return 0


def _add_webgl(bundle: Path, data: Path, seed: int, draft: BundleDraft | None = None) -> None:
    """`--webgl` of train and build: the WebGL variant, checked on up to 1,000 validation texts
    (into `draft` when given)."""
    from .webgl_graph import add_webgl_variant, validation_texts

    add_webgl_variant(bundle, validation_texts(data, 1000, seed), log=_log, draft=draft)


def cmd_webgl(args: argparse.Namespace) -> int:
    from .webgl_graph import DEFAULT_LENGTHS, add_webgl_variant, parse_lengths, validation_texts

    lengths = parse_lengths(args.lengths) if args.lengths else DEFAULT_LENGTHS
    texts = validation_texts(args.data, args.max_texts or None)
    add_webgl_variant(Path(args.bundle), texts, lengths, max_diff=args.max_diff, log=_log)
    _log(f"wrote {args.bundle}/")
    return 0


BUILD_TIERS = ("bow", "transformer")


# The default build's BoW tier answers alone only when it is 99% sure. Trained on templates, it is
# right 99.8% of the time on synthetic validation data and so calibrates sharp (T < 1), yet on
# hand-written phrasings its answers above 0.75 are often wrong; the transformer reads those
# better (docs/BENCHMARKS.md, "Hand-written finance phrasings": the hand-off sweep).
BUILD_BOW_HANDOFF = 0.99


def build_gap(out: Path, tiers: Sequence[str], webgl: bool) -> str | None:
    """Why the bundle at `out` lacks part of what `build` was asked for, or None when it has it all:
    every tier loads cleanly (files checked by size and sha256), each of `tiers` is there, and with
    `webgl` the transformer tier has a ``model_webgl_<L>`` graph per default pad length, its file
    matching the manifest.

    Checked on the bundle's contents, not on a "complete" marker: since `build` swaps in one staged
    folder, manifest written last, any bundle it wrote is whole; what is left to decide is whether
    the bundle has the parts this request names, and its tiers and files answer that, also for
    bundles from `train-bow`, `train`, `webgl` or a builder that swapped tiers in one at a time.
    """
    from runtime_py.bundle import verified_path
    from runtime_py.errors import BundleError

    router = Router.from_bundle(out)
    if router.problems:
        return router.problems[0]["error"]
    missing = [t for t in tiers if t not in {tier.name for tier in router.tiers}]
    if missing:
        return f"no {', '.join(missing)} tier"
    if webgl and "transformer" in tiers:
        from .webgl_graph import DEFAULT_LENGTHS, bucket_lengths, role_for

        spec = next(s for s in router.manifest.tiers if s.name == "transformer")
        for length in bucket_lengths(DEFAULT_LENGTHS, int(spec.extra.get("max_length") or 128)):
            entry = spec.files.get(role_for(length))
            if entry is None:
                return f"the transformer tier has no WebGL graph for {length} tokens ({role_for(length)})"
            try:
                verified_path(out, entry)
            except BundleError as exc:
                return str(exc)
    return None


def cmd_build(args: argparse.Namespace) -> int:
    """Generate the data, then train every tier into one staging folder beside the bundle and swap
    it in at the end: until then the previous bundle is untouched, also when the build is killed.
    The bundle's lock (builder.atomic) is held from the --if-missing check to the swap."""
    from .atomic import target_lock
    from .bundle_writer import open_bundle
    from .datasets import write_splits
    from .generate import GenerateOptions, generate
    from .templates import load_templates
    from .train_bow import BowOptions

    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    unknown = sorted(set(tiers) - set(BUILD_TIERS))
    if not tiers or unknown:
        raise IntentKitError(f"--tiers {args.tiers!r}: choose from {', '.join(BUILD_TIERS)}")
    out = Path(args.out) if args.out else paths.default_bundle()
    webgl = args.webgl and "transformer" in tiers
    with target_lock(out):  # repairs what a killed build left beside `out` before anything reads it
        if args.if_missing:
            gap = build_gap(out, tiers, webgl)
            if gap is None:
                _log(f"{out} is ready ({', '.join(tiers)}{' with WebGL graphs' if webgl else ''}); nothing to build")
                return 0
            if (out / "manifest.json").exists():
                _log(f"{out} needs a rebuild: {gap}")
        templates = load_templates(args.templates)
        options = GenerateOptions.from_env(seed=args.seed)
        data = Path(args.data) if args.data else paths.DEFAULT_DATA
        steps = 1 + len(tiers)
        _log(f"[1/{steps}] generating {options.size:,} utterances from {templates.path}")
        splits, _ = generate(templates, options)
        write_splits(data, splits, {"slots.json": templates.slot_spec()})
        # Without the BoW tier the bundle's other tiers are kept (a hard-linked copy is staged).
        with open_bundle(out, replace="bow" in tiers) as draft:
            _log(f"staging the new bundle in {draft.root}")
            step = 1
            if "bow" in tiers:
                step += 1
                _log(f"[{step}/{steps}] training the bag-of-words tier")
                train_bow_into_bundle(data, out, BowOptions.robust(seed=args.seed), progress=not args.quiet,
                                      handoff_threshold=BUILD_BOW_HANDOFF if "transformer" in tiers else None, draft=draft)
            if "transformer" in tiers:
                from .train_transformer import TransformerOptions
                from .transformer_build import TransformerBuildOptions, train_transformer_into_bundle

                step += 1
                _log(f"[{step}/{steps}] fine-tuning the transformer tier ({args.base}, {args.transformer_epochs} epoch(s))")
                training = TransformerOptions(base=args.base, epochs=args.transformer_epochs, seed=args.seed)
                train_transformer_into_bundle(data, out, TransformerBuildOptions(training=training), log=_log,
                                              progress=not args.quiet, draft=draft)
                if webgl:
                    _add_webgl(out, data, args.seed, draft=draft)
            _log(f"writing the manifest and swapping the new bundle into {out}")
    _log(f"wrote {out}/ with tiers: {', '.join(tiers)}")
    return 0


# ---------------------------------------------------------------- using a bundle


def _router_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in ("threshold", "handoff_threshold", "margin"):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    if getattr(args, "force", False):
        options["force"] = True
    return options


def cmd_eval(args: argparse.Namespace) -> int:
    from .datasets import read_jsonl
    from .evaluate import evaluate, format_report

    if args.holdout_intents:
        return _eval_holdout(args)
    data = Path(args.data)
    if data.is_dir():
        data = data / "test.jsonl"
    rows = read_jsonl(data)
    reports = evaluate(args.bundle, rows, args.tier, plot_dir=args.plot, title=f"{Path(args.bundle).name} on {data.name}", **_router_options(args))
    print("\n\n".join(format_report(r, f"{args.bundle} on {data} (tier: {r['tier']})") for r in reports))
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"reports": reports}))
    return 0


def cmd_blend(args: argparse.Namespace) -> int:
    from .blend import blend_bundle, format_blend
    from .datasets import read_jsonl

    data = Path(args.data)
    report = blend_bundle(Path(args.bundle), read_jsonl(data / "val.jsonl" if data.is_dir() else data), args.tier, args.partner,
                          1.0 if args.off else args.weight)
    print(format_blend(report))
    return 0


def _eval_holdout(args: argparse.Namespace) -> int:
    from .oos import format_holdout, parse_overrides, run_holdout

    tier = args.tier or "bow"
    keep = Path(args.holdout_out) if args.holdout_out else None
    result = run_holdout(Path(args.bundle), Path(args.data), tier, args.holdout_intents, args.holdout_seed,
                         args.max_inscope_loss, keep=keep, overrides=parse_overrides(args.recipe), log=_log)
    report = result.report
    if args.plot:
        from .plots import oos_histogram, reliability_diagram

        plot_dir, inside = Path(args.plot), ~result.test_is_oos
        title = f"{tier}, {Path(args.data).name} without {len(report['held_out'])} intents"
        report["plots"] = [
            str(oos_histogram(result.test_confidence, result.test_is_oos, report["threshold"], plot_dir / f"{tier}-holdout-oos.png", title)),
            str(reliability_diagram(result.test_confidence[inside], result.test_correct[inside], plot_dir / f"{tier}-holdout-reliability.png",
                                    f"{title}: in-scope test rows")),
        ]
    print(format_holdout(report))
    for path in report.get("plots", []):
        print(f"  plot                 {path}")
    if args.json:
        print(json.dumps(report))
    return 0


def _format_result(text: str, result: Any) -> str:
    conf = f"{result.confidence:.3f}" if result.confidence is not None else "-"
    lines = [f"text      {text!r}", f"intent    {result.intent}  (confidence {conf}, tier {result.tier or '-'}, {result.reason}, {result.latency_ms:.2f} ms)"]
    if result.ranking:
        lines.append("ranking   " + "  ".join(f"{label} {p:.3f}" for label, p in result.ranking[:5]))
    slots = ", ".join(f"{k}={'/'.join(v)}" for k, v in result.slots.items())
    lines.append(f"slots     {slots or '-'}" + (f"   missing: {', '.join(result.missing_slots)}" if result.missing_slots else ""))
    for r in result.tiers:
        detail = f"{r.label} {r.confidence:.3f} (margin {r.margin:.3f}, threshold {r.threshold:.2f})" if r.label else r.error
        lines.append(f"tier      {r.tier}: {detail} -> {r.reason}")
    return "\n".join(lines)


def cmd_predict(args: argparse.Namespace) -> int:
    router = Router.from_bundle(args.bundle, strict=True, **_router_options(args))
    texts = list(args.text) if args.text != ["-"] else [line.rstrip("\n") for line in sys.stdin]
    for text in texts:
        result = router.classify(text)
        print(json.dumps({"text": text, **result.to_dict()}) if args.json else _format_result(text, result) + "\n")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = Router.from_bundle(args.bundle).status()
    print(json.dumps(status, indent=2))
    return 0 if status["ready"] and not status["problems"] else 1


DEMO_UTTERANCES = [
    "how is my portfolio doing this year",
    "how many shares of AAPL do I own",
    "whats the price of nvda",
    "move 500 dollars into my roth ira",
    "what is an index fund",
    "what's the weather like tomorrow",
]


def cmd_demo(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle) if args.bundle else paths.default_bundle()
    build_args = build_parser().parse_args(["build", "--out", str(bundle), "--if-missing"])
    cmd_build(build_args)
    router = Router.from_bundle(bundle, strict=True)
    for text in DEMO_UTTERANCES:
        print(_format_result(text, router.classify(text)) + "\n")
    if sys.stdin.isatty():
        print("Type an utterance (empty line or Ctrl-D to quit).")
        while True:
            try:
                text = input("> ")
            except EOFError:
                break
            if not text.strip():
                break
            try:
                print(_format_result(text, router.classify(text)) + "\n")
            except IntentKitError as exc:
                print(f"error: {exc}")
    return 0


# ---------------------------------------------------------------- the web page


def _web_layout(args: argparse.Namespace) -> Any:
    from .web_assets import WebLayout

    bundle = Path(args.bundle) if args.bundle else paths.default_bundle()
    return WebLayout(bundle=bundle, with_fp32=args.with_fp32, bundle_js=not args.no_bundle_js)


def cmd_serve(args: argparse.Namespace) -> int:
    from . import server
    from .web_assets import require_assets

    layout = _web_layout(args)
    require_assets(layout, page=False)
    if layout.bundles_worker:
        layout.worker_file()  # bundle the worker now: an esbuild error shows here, not in the page
    if not layout.page.is_file():
        _log(f"warning: {layout.page} is missing: the API works, the page answers 404")
    # A bundle named with --bundle is served as it is; only the default one is built or completed.
    if not args.no_build and (args.bundle is None or not (layout.bundle / "manifest.json").exists()):
        cmd_build(build_parser().parse_args(["build", "--out", str(layout.bundle), "--if-missing"]))
    router = Router.from_bundle(layout.bundle)
    if not router.tiers:
        hint = "drop --no-build to build it" if args.no_build else "see the errors above"
        raise IntentKitError(f"{layout.bundle}: no usable tier ({router.problems[0]['error'] if router.problems else 'empty bundle'}); {hint}")
    server.print_router_problems(router, _log)
    try:
        server.run(server.create_app(layout, router), args.host, args.port, _log)
    except KeyboardInterrupt:
        pass
    _log("stopped")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import FULL_TIMING, QUICK_TIMING, Settings, run_bench, write_json
    from .bench_report import format_markdown, write_chart

    bundle = Path(args.bundle) if args.bundle else paths.default_bundle()
    settings = Settings(
        runs=args.runs if args.runs is not None else (1 if args.quick else 3),
        texts_per_set=args.texts if args.texts is not None else (4 if args.quick else 8),
        timing=dict(QUICK_TIMING if args.quick else FULL_TIMING),
        quick=args.quick,
        transformers_js=not args.no_transformers_js,
        webgl=not args.no_webgl,
    )
    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the server and Chromium it started stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = run_bench(bundle, settings, log=_log)
    command = "python -m builder bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] else None
    markdown = format_markdown(report, command)
    print(markdown)
    if args.json:
        write_json(Path(args.json), report)
        _log(f"wrote {args.json}")
    if args.markdown:
        replace_file(Path(args.markdown), markdown.encode("utf-8"))
        _log(f"wrote {args.markdown}")
    if args.plot:
        _log(f"wrote {write_chart(report, Path(args.plot))}")
    if report["failures"]:
        _log(f"bench failed: {len(report['failures'])} problem(s)")
        for failure in report["failures"]:
            _log(f"  {failure}")
        return 1
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from .site import build_site, format_report

    layout = _web_layout(args)
    if not (layout.bundle / "manifest.json").exists():
        raise IntentKitError(f"{layout.bundle}: no bundle (build one with `python -m builder build`)")
    print(format_report(build_site(layout, Path(args.out), force=args.force)))
    return 0


# ---------------------------------------------------------------- parser


def no_bundle_js_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-bundle-js", action="store_true",
                   help="serve web/worker.js and its imports as separate source modules instead of one esbuild bundle (for debugging them)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m builder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="synthetic train/val/test JSONL from a templates file")
    p.add_argument("--templates", help="templates JSON (default: models/templates/finance.json)")
    p.add_argument("--size", type=_positive(int), help="target number of utterances (default: $INTENT_DATASET_SIZE or 25000)")
    p.add_argument("--seed", type=int, help="random seed (default 7)")
    p.add_argument("--max-combos", type=_positive(int), help="slot combinations per template (default: $INTENT_MAX_COMBOS or 200)")
    p.add_argument("--out", required=True, help="folder for train.jsonl, val.jsonl, test.jsonl")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("import", help="CSV / JSONL / production logs -> train/val/test JSONL")
    p.add_argument("--from", dest="sources", action="append", required=True, metavar="FILE",
                   help="CSV with text,intent; JSONL with text,intent; or logs with raw_input,intent,execution_success (repeatable)")
    p.add_argument("--out", required=True, help="folder for train.jsonl, val.jsonl, test.jsonl")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--slots", help="slots.json to copy into the folder (slot values for extraction)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("train-bow", help="train the bag-of-words tier into a bundle")
    p.add_argument("--data", required=True, help="folder with train.jsonl (val.jsonl, test.jsonl optional)")
    p.add_argument("--out", required=True, help="bundle folder (created, or its bow tier replaced)")
    p.add_argument("--replace", action="store_true", help="start a new bundle instead of updating the existing one")
    g = p.add_argument_group("features")
    g.add_argument("--max-vocab", type=_positive(int), default=6000, help="word n-gram features kept, by count (6000)")
    g.add_argument("--ngram-max", type=_positive(int), default=2, help="longest word n-gram (2)")
    g.add_argument("--char-ngrams", type=_char_range, metavar="LO-HI", help="also character n-grams within words, e.g. 2-5")
    g.add_argument("--max-char-vocab", type=_positive(int), default=20000, help="character n-gram features kept (20000)")
    g.add_argument("--min-count", type=_positive(int), default=1, help="drop features seen fewer times (1)")
    g.add_argument("--tf", choices=["count", "log", "binary"], default="count", help="feature values (count)")
    g.add_argument("--idf", action="store_true", help="multiply by inverse document frequency")
    g.add_argument("--norm", choices=["l2"], help="normalise each vector")
    g.add_argument("--tfidf", action="store_true", help="shorthand for --tf log --idf --norm l2")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=_positive(int), default=12)
    g.add_argument("--batch-size", type=_positive(int), default=32)
    g.add_argument("--lr", type=_positive(float), default=1e-2)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--class-weights", action="store_true", help="weight the loss by inverse intent frequency")
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--oos-label", action="append", default=None, metavar="LABEL",
                   help="a label that means out of scope, listed in routing.oos_labels (repeatable; default: oos)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_bow)

    p = sub.add_parser("train", help="fine-tune a transformer tier (ONNX, int8, calibrated) into a bundle")
    p.add_argument("--data", required=True, help="folder with train.jsonl (val.jsonl, test.jsonl optional)")
    p.add_argument("--out", required=True, help="bundle folder (created, or its transformer tier replaced)")
    p.add_argument("--base", default="minilm-l6", help="preset (minilm-l6, minilm-l3, tinybert-4l), a local model folder, or a hub id")
    p.add_argument("--layers", type=_positive(int), help="keep only the first N encoder layers")
    p.add_argument("--max-length", type=_positive(int), default=64)
    p.add_argument("--epochs", type=_positive(int), default=3)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--lr", type=_positive(float), default=1e-4, help="encoder learning rate (1e-4)")
    p.add_argument("--head-lr", type=_positive(float), default=3e-3, help="classifier head learning rate (3e-3)")
    p.add_argument("--layer-decay", type=_probability, default=1.0, help="layer-wise lr decay: each encoder layer down from the top trains at this times the one above (1.0: off)")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--class-weights", choices=["auto", "on", "off"], default="auto", help="auto: on when intents are imbalanced")
    p.add_argument("--max-steps", type=_positive(int), help="stop after N optimisation steps (smoke runs)")
    p.add_argument("--average-last", type=_positive(int), default=0, metavar="N",
                   help="also try the mean of the last N epochs' weights, kept when val accuracy is at least the best epoch's")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to fine-tune (auto: CUDA if present)")
    p.add_argument("--oos-label", action="append", default=None, metavar="LABEL",
                   help="a label that means out of scope, listed in routing.oos_labels (repeatable; default: oos)")
    p.add_argument("--pseudo-oos", type=_non_negative, default=0.0, metavar="R",
                   help="train an out-of-scope class on R synthetic examples per utterance (mixes of two utterances of "
                        "different intents); adds the oos label if the data has none (default: 0, off)")
    p.add_argument("--no-quantize", action="store_true", help="ship the fp32 model only")
    p.add_argument("--prune", action="store_true", help="prune the vocabulary (checked against ordinary English)")
    p.add_argument("--allow-prune-changes", action="store_true", help="prune even if ordinary English would tokenize differently")
    p.add_argument("--target-precision", type=_probability, default=0.97, help="accuracy of answers the clarify threshold aims for on val")
    p.add_argument("--save-model", help="also save the fine-tuned PyTorch model here")
    p.add_argument("--webgl", action="store_true", help="also add the WebGL variant (fp32, one graph per pad length 16 and 64; see `webgl`)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("webgl", help="add the WebGL variant of the transformer tier to a bundle (checked against fp32)")
    p.add_argument("--bundle", required=True, help="bundle folder with a transformer tier (its fp32 graph is rewritten)")
    p.add_argument("--data", required=True, help="split folder: the WebGL graphs are checked on its val.jsonl texts")
    p.add_argument("--lengths", help="pad lengths, comma-separated, capped at the tier's max_length (default: 16,64)")
    p.add_argument("--max-texts", type=_positive(int), default=1000, help="check on at most this many texts (default: %(default)s)")
    p.add_argument("--max-diff", type=_positive(float), default=1e-3, help="largest |logit difference| from fp32 allowed (default: %(default)s)")
    p.set_defaults(func=cmd_webgl)

    p = sub.add_parser("build", help="the default build: generate the finance data and train the bundle")
    p.add_argument("--out", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.add_argument("--templates", help="templates JSON (default: models/templates/finance.json)")
    p.add_argument("--data", help="where the generated data goes (default: models/data/finance)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--if-missing", action="store_true", help="do nothing when the bundle already has these tiers (and the WebGL graphs, unless --no-webgl), all loading cleanly")
    p.add_argument("--tiers", default=",".join(BUILD_TIERS), help="comma-separated tiers to build (default: %(default)s)")
    p.add_argument("--base", default="minilm-l6", help="transformer base (preset, folder or hub id)")
    p.add_argument("--transformer-epochs", type=_positive(int), default=1,
                   help="fine-tuning epochs (1: the synthetic set is learned in one, and the build stays short)")
    p.add_argument("--no-webgl", dest="webgl", action="store_false",
                   help="leave out the WebGL variant (two fp32 graphs, 16 and 64 tokens, ~180 MB, downloaded only by the WebGL backend)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_build)

    def bundle_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bundle", default=str(paths.default_bundle()), help="bundle folder (default: %(default)s)")

    def routing_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--threshold", type=_probability, help="confidence the last tier needs (default 0.6)")
        p.add_argument("--handoff-threshold", type=_probability, help="confidence earlier tiers need (default 0.75)")
        p.add_argument("--margin", type=_probability, help="top-2 gap below which a tier is ambiguous (default 0.1)")
        p.add_argument("--force", action="store_true", help="accept the last tier's answer whatever its confidence")

    p = sub.add_parser("eval", help="evaluate a bundle on {text,intent} JSONL")
    bundle_arg(p)
    p.add_argument("--data", required=True, help="JSONL with text and intent, or a split folder (its test.jsonl)")
    p.add_argument("--tier", help="a tier name, several separated by commas, 'cascade' for the routed answer, "
                                  "or 'all' (every tier, then the cascade); default: the last tier")
    p.add_argument("--json", action="store_true",
                   help="also print the report as one JSON line (last line; {\"reports\": [...]} for several tiers)")
    p.add_argument("--plot", metavar="DIR", help="write a reliability diagram and a confidence histogram (PNG) per evaluated tier")
    routing_args(p)
    g = p.add_argument_group("out-of-scope detection by held-out intents (retrains the tier; --data is a split folder)")
    g.add_argument("--holdout-intents", type=_positive(int), metavar="N",
                   help="retrain --tier (bow or transformer, with --bundle's recipe) without N intents and score them as out of scope")
    g.add_argument("--holdout-seed", type=int, default=7, help="which intents are held out (7)")
    g.add_argument("--max-inscope-loss", type=_probability, default=0.01,
                   help="the threshold is the highest that loses at most this much in-scope val accuracy (0.01)")
    g.add_argument("--holdout-out", metavar="DIR", help="keep the retrained bundle here (default: a temporary folder)")
    g.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                   help="change one setting of the bundle's recipe, e.g. epochs=6 (repeatable)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("blend", help="average a tier's probabilities with another tier's, weight chosen on validation data")
    p.add_argument("--bundle", required=True, help="bundle folder (its manifest is updated in place, atomically)")
    p.add_argument("--data", required=True,
                   help="validation JSONL, or a split folder (its val.jsonl); real utterances, not template-made ones, and never test data")
    p.add_argument("--tier", default="transformer", help="the tier whose answers blend (default: transformer)")
    p.add_argument("--partner", default="bow", help="the tier averaged in (default: bow)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weight", type=_probability, help="use this own weight instead of choosing one (1.0: no blend)")
    g.add_argument("--off", action="store_true", help="remove the blend (the threshold is refitted on the tier alone)")
    p.set_defaults(func=cmd_blend)

    p = sub.add_parser("predict", help="route text through a bundle and print the result")
    bundle_arg(p)
    p.add_argument("text", nargs="+", help="utterances ('-' reads one per line from stdin)")
    p.add_argument("--json", action="store_true", help="one JSON object per utterance")
    routing_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("status", help="what a bundle provides and whether every file checks out")
    bundle_arg(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("demo", help="build the default bundle if needed, then classify examples (and typed text)")
    p.add_argument("--bundle", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="the demo page, the browser runtime and a JSON API on http://127.0.0.1:8000/")
    p.add_argument("--bundle", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--no-build", action="store_true", help="do not build the default bundle when it is missing")
    p.add_argument("--with-fp32", action="store_true", help="also serve the fp32 transformer graph")
    no_bundle_js_arg(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="time every browser backend (and transformers.js) on a bundle in Chromium; checks answers against runtime_py")
    p.add_argument("--bundle", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.add_argument("--quick", action="store_true", help="one run, int8 only, short timings: minutes, for CI (fails only on errors and disagreement)")
    p.add_argument("--runs", type=_positive(int), help="fresh browser runs (default: 3; --quick: 1)")
    p.add_argument("--texts", type=_positive(int), help="texts per length (default: 8; --quick: 4)")
    p.add_argument("--json", help="write every figure (and each run's) here")
    p.add_argument("--markdown", help="also write the Markdown tables here")
    p.add_argument("--plot", help="write a PNG chart of the latencies here")
    p.add_argument("--no-transformers-js", action="store_true", help="leave out the transformers.js cases")
    p.add_argument("--no-webgl", action="store_true", help="leave out the WebGL case (else a bundle without WebGL graphs gets them in a temporary copy)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("site", help="write the demo as a static folder for any static host")
    p.add_argument("--bundle", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.add_argument("--out", required=True, help="the folder to write (replaced atomically)")
    p.add_argument("--force", action="store_true", help="replace --out even if it is not a site this command wrote")
    p.add_argument("--with-fp32", action="store_true", help="also ship the fp32 transformer graph (4x the int8 size)")
    no_bundle_js_arg(p)
    p.set_defaults(func=cmd_site)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "tfidf", False):
        args.tf, args.idf, args.norm = "log", True, "l2"
    try:
        return args.func(args)
    except IntentKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
