"""``python -m builder``'s commands: each maps its arguments (:mod:`builder.arguments`) to options and
calls the pipeline (:mod:`builder.pipeline`) or a stage's functions. Stages load on use, so that
``--help`` or ``predict`` does not wait for torch."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from runtime_py import Router
from runtime_py.errors import IntentKitError

from . import paths
from .arguments import parse_args
from .log import to_stderr as log
from .options import from_args

if TYPE_CHECKING:
    from .data.datasets import Example

# ---------------------------------------------------------------- data


def cmd_generate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .data.datasets import write_splits
    from .data.generate import GenerateOptions, generate
    from .data.templates import load_templates

    templates = load_templates(args.templates)
    options = GenerateOptions.from_env(size=args.size, seed=args.seed, max_combos=args.max_combos)
    log(f"generating {options.size:,} utterances from {templates.path} (seed {options.seed}, <= {options.max_combos} combinations per template)")
    splits, report = generate(templates, options, progress=log)
    if report.conflicts:
        log(f"dropped {report.conflicts:,} utterances that two intents both produce")
    for intent, missing in report.short.items():
        log(f"warning: {intent} has only {report.per_intent[intent]:,} distinct utterances ({missing:,} short of its share)")
    info = {"templates": str(templates.path), "name": templates.name, "options": asdict(options), "report": asdict(report)}
    write_splits(args.out, splits, {"slots.json": templates.slot_spec(), "generation.json": info})
    log(f"wrote {args.out}/: " + ", ".join(f"{name} {len(rows):,}" for name, rows in splits.items()))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .data.datasets import import_files, stratified_split, write_splits

    examples, report = import_files(args.sources)
    if not examples:
        raise IntentKitError(f"no usable rows in {', '.join(map(str, args.sources))}")
    log(
        f"read {report.read:,} rows: kept {report.kept:,}, skipped {report.failed_executions:,} failed executions, "
        f"{report.empty:,} empty, {report.duplicates:,} duplicates; {report.conflicts:,} texts had conflicting labels (majority kept)"
    )
    splits = stratified_split(examples, args.seed, (0.8, 0.1, 0.1))
    extra = {"slots.json": json.loads(Path(args.slots).read_text())} if args.slots else None
    write_splits(args.out, splits, extra)
    log(f"wrote {args.out}/: " + ", ".join(f"{name} {len(rows):,}" for name, rows in splits.items()))
    return 0


# ---------------------------------------------------------------- training


def cmd_train_bow(args: argparse.Namespace) -> int:
    from .pipeline.bow_tier import train_bow_into_bundle
    from .train.bow import BowOptions

    options = from_args(BowOptions, args)
    if args.robust:
        options = BowOptions.robust(seed=options.seed, oos_labels=options.oos_labels, word_pieces=options.word_pieces,
                                    max_pieces=options.max_pieces, pieces_weight=options.pieces_weight)
    train_bow_into_bundle(Path(args.data), Path(args.out), options, replace=args.replace, progress=not args.quiet,
                          handoff_tolerance=args.handoff_tolerance)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .pipeline.build import add_webgl
    from .pipeline.transformer_tier import TransformerBuildOptions, train_transformer_into_bundle
    from .train.fine_tune import TransformerOptions

    options = from_args(TransformerBuildOptions, args, training=from_args(TransformerOptions, args))
    train_transformer_into_bundle(Path(args.data), Path(args.out), options, log=log, progress=not args.quiet)
    log(f"wrote {args.out}/")
    if args.webgl:
        add_webgl(Path(args.out), Path(args.data), args.seed)
    return 0


def cmd_webgl(args: argparse.Namespace) -> int:
    from .export.webgl_graph import DEFAULT_LENGTHS, add_webgl_variant, parse_lengths, validation_texts

    lengths = parse_lengths(args.lengths) if args.lengths else DEFAULT_LENGTHS
    texts = validation_texts(args.data, args.max_texts or None)
    add_webgl_variant(Path(args.bundle), texts, lengths, max_diff=args.max_diff, log=log)
    log(f"wrote {args.bundle}/")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .pipeline.build import BuildOptions, build

    build(from_args(BuildOptions, args))
    return 0


def _build_if_missing(bundle: Path) -> None:
    """`build --if-missing` into `bundle`, with build's other defaults (for demo and serve)."""
    cmd_build(parse_args(["build", "--out", str(bundle), "--if-missing"]))


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
    from .data.datasets import read_jsonl
    from .evaluate.tiers import evaluate, format_report

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


def _eval_holdout(args: argparse.Namespace) -> int:
    from .evaluate.holdout import format_holdout, plot_holdout
    from .pipeline.holdout import parse_overrides, run_holdout

    keep = Path(args.holdout_out) if args.holdout_out else None
    result = run_holdout(Path(args.bundle), Path(args.data), args.tier or "bow", args.holdout_intents, args.holdout_seed,
                         args.max_inscope_loss, keep=keep, overrides=parse_overrides(args.recipe), log=log)
    report = result.report
    if args.plot:
        report["plots"] = plot_holdout(result, Path(args.plot))
    print(format_holdout(report))
    for path in report.get("plots", []):
        print(f"  plot                 {path}")
    if args.json:
        print(json.dumps(report))
    return 0


def cmd_blend(args: argparse.Namespace) -> int:
    from .train.blend import blend_bundle, format_blend

    report = blend_bundle(Path(args.bundle), _val_rows(Path(args.data)), args.tier, args.partner,
                          1.0 if args.off else args.weight, args.handoff_tolerance, log)
    print(format_blend(report))
    return 0


def cmd_cascade(args: argparse.Namespace) -> int:
    from .train.cascade import refit_bundle

    refit_bundle(Path(args.bundle), _val_rows(Path(args.data)), args.handoff_tolerance, log=print)  # it prints what it chose
    return 0


def cmd_requantize(args: argparse.Namespace) -> int:
    from .pipeline.transformer_tier import TransformerBuildOptions, requantize_bundle
    from .train.fine_tune import TransformerOptions

    requantize_bundle(Path(args.bundle), Path(args.data), from_args(TransformerBuildOptions, args, training=TransformerOptions()), log=log)
    log(f"wrote {args.bundle}/")
    return 0


def _val_rows(data: Path) -> list[Example]:
    """``--data`` of blend and cascade: a JSONL file, or a split folder's val.jsonl."""
    from .data.datasets import read_jsonl

    return read_jsonl(data / "val.jsonl" if data.is_dir() else data)


def cmd_predict(args: argparse.Namespace) -> int:
    from .serve.demo import format_result

    router = Router.from_bundle(args.bundle, strict=True, **_router_options(args))
    texts = list(args.text) if args.text != ["-"] else [line.rstrip("\n") for line in sys.stdin]
    for text in texts:
        result = router.classify(text)
        print(json.dumps({"text": text, **result.to_dict()}) if args.json else format_result(text, result) + "\n")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = Router.from_bundle(args.bundle).status()
    print(json.dumps(status, indent=2))
    return 0 if status["ready"] and not status["problems"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .serve.demo import run_demo

    bundle = Path(args.bundle) if args.bundle else paths.default_bundle()
    _build_if_missing(bundle)
    run_demo(Router.from_bundle(bundle, strict=True))
    return 0


# ---------------------------------------------------------------- the web page


def _web_layout(args: argparse.Namespace) -> Any:
    from .serve.web_assets import WebLayout

    bundle = Path(args.bundle) if args.bundle else paths.default_bundle()
    return from_args(WebLayout, args, bundle=bundle, bundle_js=not args.no_bundle_js)  # with_fp32, serve's reference


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import server

    layout = _web_layout(args)
    server.check_layout(layout, log)
    # A bundle named with --bundle is served as it is; only the default one is built or completed.
    if not args.no_build and (args.bundle is None or not (layout.bundle / "manifest.json").exists()):
        _build_if_missing(layout.bundle)
    server.serve(layout, args.host, args.port, log, hint="drop --no-build to build it" if args.no_build else "see the errors above")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.report import write_reports
    from .bench.run import Settings, run_bench

    bundle = Path(args.bundle) if args.bundle else paths.default_bundle()
    settings = Settings.for_mode(args.quick, args.runs, args.texts, transformers_js=not args.no_transformers_js, webgl=not args.no_webgl,
                                 tjs_reference=args.tjs_reference)
    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the server and Chromium it started stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = run_bench(bundle, settings, log=log)
    command = "python -m builder bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] else None
    write_reports(report, command, args.json, args.markdown, args.plot, log)
    if report["failures"]:
        log(f"bench failed: {len(report['failures'])} problem(s)")
        for failure in report["failures"]:
            log(f"  {failure}")
        return 1
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from .serve.site import build_site, format_report

    backends = frozenset({"wasm"} | {b for b in ("webgpu", "webgl") if getattr(args, b)})
    layout = dataclasses.replace(_web_layout(args), backends=backends, bench=args.bench)
    if not (layout.bundle / "manifest.json").exists():
        raise IntentKitError(f"{layout.bundle}: no bundle (build one with `python -m builder build`)")
    print(format_report(build_site(layout, Path(args.out), force=args.force, max_file_mib=args.max_file_mib)))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "generate": cmd_generate, "import": cmd_import, "train-bow": cmd_train_bow, "train": cmd_train, "webgl": cmd_webgl,
    "build": cmd_build, "eval": cmd_eval, "blend": cmd_blend, "cascade": cmd_cascade, "requantize": cmd_requantize,
    "predict": cmd_predict, "status": cmd_status, "demo": cmd_demo, "serve": cmd_serve, "bench": cmd_bench, "site": cmd_site,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except IntentKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
