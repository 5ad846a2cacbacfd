"""The command line's grammar: every subcommand of ``python -m builder`` with its arguments, their types
and defaults. An argument's ``dest`` is the name of the option field it sets
(:func:`builder.options.from_args`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from . import paths
from .export.int8_schemes import SHIPPABLE_SCHEMES
from .pipeline.build import BUILD_SIZE, BUILD_TIERS
from .pipeline.sizes import SIZES, apply_size, size_help
from .train.cascade import DEFAULT_TOLERANCE

DESCRIPTION = "``python -m builder``: generate data, train tiers, evaluate, predict, build the default bundle."


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
_non_negative_int = _number(int, lambda x: x >= 0, "a whole number >= 0")


def _positive(kind: type) -> Callable[[str], Any]:
    return _number(kind, lambda x: x > 0, f"a positive {kind.__name__}")


def _handoff_tolerance_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--handoff-tolerance", type=_probability, default=DEFAULT_TOLERANCE, metavar="FRACTION",
                   help="when the bundle has several tiers, each earlier tier answers alone above the lowest confidence at which "
                        "the cascade stays within this much of the last tier alone in validation accuracy and in the accuracy of its answers, out-of-scope recall no lower "
                        "(default: %(default)s, 0.2 points)")


def _no_bundle_js_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-bundle-js", action="store_true",
                   help="serve web/worker.js and its imports as separate source modules instead of one esbuild bundle (for debugging them)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m builder", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="synthetic train/val/test JSONL from a templates file")
    p.add_argument("--templates", help="templates JSON (default: models/templates/finance.json)")
    p.add_argument("--size", type=_positive(int), help="target number of utterances (default: $INTENT_DATASET_SIZE or 25000)")
    p.add_argument("--seed", type=int, help="random seed (default 7)")
    p.add_argument("--max-combos", type=_positive(int), help="slot combinations per template (default: $INTENT_MAX_COMBOS or 200)")
    p.add_argument("--out", required=True, help="folder for train.jsonl, val.jsonl, test.jsonl")

    p = sub.add_parser("import", help="CSV / JSONL / production logs -> train/val/test JSONL")
    p.add_argument("--from", dest="sources", action="append", required=True, metavar="FILE",
                   help="CSV with text,intent; JSONL with text,intent; or logs with raw_input,intent,execution_success (repeatable)")
    p.add_argument("--out", required=True, help="folder for train.jsonl, val.jsonl, test.jsonl")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--slots", help="slots.json to copy into the folder (slot values for extraction)")

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
    g.add_argument("--norm", choices=["l2", "token_l2"], help="normalise each vector (token_l2: per block, by token groups)")
    g.add_argument("--tfidf", action="store_true", help="shorthand for --tf log --idf --norm l2")
    g.add_argument("--robust", action="store_true",
                   help="the default build's recipe: every word 1-2-gram and char 2-5-gram, counts, idf, token_l2, "
                        "L-BFGS with C tuned on val, int8 weights (--seed, --oos-label and the word-piece options still apply; "
                        "other settings are ignored)")
    g.add_argument("--word-pieces", metavar="BASE",
                   help="with --robust: add a block of this encoder's static word-piece vectors (a preset such as minilm-l6, "
                        "or a model folder): words the training data never used still count (bow.json version 4)")
    g.add_argument("--max-pieces", type=_positive(int), metavar="N",
                   help="word pieces kept (default: an eighth of the weight budget, at most 8000)")
    g.add_argument("--pieces-weight", type=_positive(float), default=2.0, metavar="W",
                   help="the word-piece block's length against the word and character blocks' (2.0)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=_positive(int), default=12)
    g.add_argument("--batch-size", type=_positive(int), default=32)
    g.add_argument("--lr", dest="learning_rate", metavar="LR", type=_positive(float), default=1e-2)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--class-weights", action="store_true", help="weight the loss by inverse intent frequency")
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--oos-label", dest="oos_labels", action="append", metavar="LABEL",
                   help="a label that means out of scope, listed in routing.oos_labels (repeatable; default: oos)")
    _handoff_tolerance_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("train", help="fine-tune a transformer tier (ONNX, int8, calibrated) into a bundle")
    p.add_argument("--data", required=True, help="folder with train.jsonl (val.jsonl, test.jsonl optional)")
    p.add_argument("--out", required=True, help="bundle folder (created, or its transformer tier replaced)")
    p.add_argument("--base", default="minilm-l6", help="preset (minilm-l6, minilm-l3, tinybert-4l), a local model folder, or a hub id")
    p.add_argument("--size", dest="size_recipe", choices=list(SIZES), default="base", help=size_help("base"))
    p.add_argument("--layers", type=_positive(int), help="keep only the first N encoder layers (with --teacher: N of the teacher's, evenly spaced)")
    p.add_argument("--teacher", metavar="BUNDLE", help="distil from this bundle's transformer tier: the student (instead of --base) "
                   "starts from its embeddings, head and --layers of its layers, and learns its soft labels (fp32 graph)")
    p.add_argument("--distill-weight", type=_probability, default=0.5, metavar="A",
                   help="with --teacher: loss = (1 - A) x cross-entropy + A x distillation on labelled utterances (default: %(default)s)")
    p.add_argument("--distill-temperature", type=_positive(float), default=2.0, metavar="T", help="with --teacher (default: %(default)s)")
    p.add_argument("--augment", type=_non_negative_int, default=1, metavar="N",
                   help="with --teacher: N augmented utterances per training one (noisy copies, splices of two), "
                        "labelled by the teacher alone (default: %(default)s)")
    p.add_argument("--max-length", type=_positive(int), default=64)
    p.add_argument("--epochs", type=_positive(int), default=3)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--lr", dest="encoder_lr", metavar="LR", type=_positive(float), default=1e-4, help="encoder learning rate (1e-4)")
    p.add_argument("--head-lr", type=_positive(float), default=3e-3, help="classifier head learning rate (3e-3)")
    p.add_argument("--layer-decay", type=_probability, default=1.0, help="layer-wise lr decay: each encoder layer down from the top trains at this times the one above (1.0: off)")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--class-weights", choices=["auto", "on", "off"], default="auto", help="auto: on when intents are imbalanced")
    p.add_argument("--max-steps", type=_positive(int), help="stop after N optimisation steps (smoke runs)")
    p.add_argument("--average-last", type=_positive(int), default=0, metavar="N",
                   help="also try the mean of the last N epochs' weights, kept when val accuracy is at least the best epoch's")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to fine-tune (auto: CUDA if present)")
    p.add_argument("--oos-label", dest="oos_labels", action="append", metavar="LABEL",
                   help="a label that means out of scope, listed in routing.oos_labels (repeatable; default: oos)")
    p.add_argument("--pseudo-oos", type=_non_negative, default=0.0, metavar="R",
                   help="train an out-of-scope class on R synthetic examples per utterance (mixes of two utterances of "
                        "different intents); adds the oos label if the data has none (default: 0, off)")
    p.add_argument("--no-quantize", dest="quantize", action="store_false", help="ship the fp32 model only")
    p.add_argument("--int8-scheme", choices=SHIPPABLE_SCHEMES, help="how the int8 graph stores its weights: u8s7 "
                   "(7-bit, the default), u8s4 (4-bit weights and word embeddings, int8 arithmetic: half the download), u8u8")
    p.add_argument("--no-int8-outliers", dest="int8_outliers", action="store_false",
                   help="quantize every input channel: no outlier channels in float, no smoothing (closer to fp32 with them; "
                        "docs/BENCHMARKS.md)")
    p.add_argument("--vocab-size", type=_positive(int), metavar="N",
                   help="prune the vocabulary to at most N tokens: single characters, then the training data's and "
                        "ordinary English's most frequent pieces (rarer words split into smaller pieces)")
    p.add_argument("--prune", action="store_true", help="prune the vocabulary (checked against ordinary English)")
    p.add_argument("--allow-prune-changes", action="store_true", help="prune even if ordinary English would tokenize differently")
    p.add_argument("--target-precision", type=_probability, default=0.97, help="accuracy of answers the clarify threshold aims for on val")
    _handoff_tolerance_arg(p)
    p.add_argument("--save-model", help="also save the fine-tuned PyTorch model here")
    p.add_argument("--webgl", action="store_true", help="also add the WebGL variant (fp32, one graph per pad length 16 and 64; see `webgl`)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("webgl", help="add the WebGL variant of the transformer tier to a bundle (checked against fp32)")
    p.add_argument("--bundle", required=True, help="bundle folder with a transformer tier (its fp32 graph is rewritten)")
    p.add_argument("--data", required=True, help="split folder: the WebGL graphs are checked on its val.jsonl texts")
    p.add_argument("--lengths", help="pad lengths, comma-separated, capped at the tier's max_length (default: 16,64)")
    p.add_argument("--max-texts", type=_positive(int), default=1000, help="check on at most this many texts (default: %(default)s)")
    p.add_argument("--max-diff", type=_positive(float), default=1e-3, help="largest |logit difference| from fp32 allowed (default: %(default)s)")

    p = sub.add_parser("build", help="the default build: generate the finance data and train the bundle")
    p.add_argument("--out", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.add_argument("--templates", help="templates JSON (default: models/templates/finance.json)")
    p.add_argument("--data", help="where the generated data goes (default: models/data/finance)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--if-missing", action="store_true", help="do nothing when the bundle already has these tiers (and the WebGL graphs, with --webgl), all loading cleanly")
    p.add_argument("--tiers", default=",".join(BUILD_TIERS), help="comma-separated tiers to build (default: %(default)s)")
    p.add_argument("--base", default="minilm-l6", help="transformer base (preset, folder or hub id)")
    p.add_argument("--no-word-pieces", dest="word_pieces", action="store_false",
                   help="train the BoW tier without the block of --base's static word-piece vectors (bow.json version 3)")
    p.add_argument("--transformer-epochs", type=_positive(int), default=1,
                   help="fine-tuning epochs (1: the synthetic set is learned in one, and the build stays short)")
    p.add_argument("--webgl", action="store_true",
                   help="also write the WebGL variant (two fp32 graphs, 16 and 64 tokens, ~180 MB, downloaded only by the WebGL backend)")
    p.add_argument("--size", dest="size_recipe", choices=list(SIZES), default=BUILD_SIZE, help=size_help(BUILD_SIZE))
    p.add_argument("--layers", type=_positive(int), help="keep only the first N encoder layers (default: from --size)")
    p.add_argument("--int8-scheme", choices=SHIPPABLE_SCHEMES, help="the transformer's int8 weight format (default: from --size; see train)")
    p.add_argument("--vocab-size", type=_positive(int), metavar="N",
                   help="prune the transformer's vocabulary to N tokens (default: from --size; see train)")
    _handoff_tolerance_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    def bundle_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bundle", default=str(paths.default_bundle()), help="bundle folder (default: %(default)s)")

    def routing_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--threshold", type=_probability, help="confidence the last tier needs (default 0.6)")
        p.add_argument("--handoff-threshold", type=_probability, help="confidence earlier tiers need (default: the bundle's fitted hand-off, else 0.75)")
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

    p = sub.add_parser("blend", help="average a tier's probabilities with another tier's, weight chosen on validation data")
    p.add_argument("--bundle", required=True, help="bundle folder (its manifest is updated in place, atomically)")
    p.add_argument("--data", required=True,
                   help="validation JSONL, or a split folder (its val.jsonl); real utterances, not template-made ones, and never test data")
    p.add_argument("--tier", default="transformer", help="the tier whose answers blend (default: transformer)")
    p.add_argument("--partner", default="bow", help="the tier averaged in (default: bow)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weight", type=_probability, help="use this own weight instead of choosing one (1.0: no blend)")
    g.add_argument("--off", action="store_true", help="remove the blend (the threshold is refitted on the tier alone)")
    _handoff_tolerance_arg(p)

    p = sub.add_parser("cascade", help="refit the cascade's hand-offs (and, with out-of-scope rows, the last tier's clarify threshold) on validation data")
    p.add_argument("--bundle", required=True, help="bundle folder (its manifest is updated in place, atomically)")
    p.add_argument("--data", required=True,
                   help="validation JSONL, or a split folder (its val.jsonl): utterances like your users', never test data")
    _handoff_tolerance_arg(p)

    p = sub.add_parser("requantize", help="quantize a bundle's transformer tier again from its fp32 graph, as train does today, and "
                                          "refit its calibration and the cascade (no retraining)")
    p.add_argument("--bundle", required=True, help="bundle folder with a transformer tier (updated in place, atomically)")
    p.add_argument("--data", required=True, help="the split folder it was trained on: train.jsonl calibrates, val.jsonl fits, test.jsonl scores")
    p.add_argument("--int8-scheme", choices=SHIPPABLE_SCHEMES, help="the int8 weight format (default: u8s7; see train)")
    p.add_argument("--no-int8-outliers", dest="int8_outliers", action="store_false", help="quantize every input channel (see train)")
    p.add_argument("--target-precision", type=_probability, default=0.97, help="accuracy of answers the clarify threshold aims for on val")
    _handoff_tolerance_arg(p)

    p = sub.add_parser("predict", help="route text through a bundle and print the result")
    bundle_arg(p)
    p.add_argument("text", nargs="+", help="utterances ('-' reads one per line from stdin)")
    p.add_argument("--json", action="store_true", help="one JSON object per utterance")
    routing_args(p)

    p = sub.add_parser("status", help="what a bundle provides and whether every file checks out")
    bundle_arg(p)

    p = sub.add_parser("demo", help="build the default bundle if needed, then classify examples (and typed text)")
    p.add_argument("--bundle", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")

    p = sub.add_parser("serve", help="the demo page, the browser runtime and a JSON API on http://127.0.0.1:8000/")
    p.add_argument("--bundle", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--no-build", action="store_true", help="do not build the default bundle when it is missing")
    p.add_argument("--with-fp32", action="store_true", help="also serve the fp32 transformer graph")
    p.add_argument("--reference-model", dest="reference", type=Path, metavar="DIR",
                   help="also serve this transformers.js model folder (config.json, tokenizer files, onnx/model_quantized.onnx) "
                        "at /reference/, for bench --tjs-reference")
    _no_bundle_js_arg(p)

    p = sub.add_parser("bench", help="time every browser backend (and transformers.js) on a bundle in Chromium; checks answers against runtime_py")
    p.add_argument("--bundle", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.add_argument("--quick", action="store_true", help="one run, int8 only, short timings: minutes, for CI (fails only on errors and disagreement)")
    p.add_argument("--runs", type=_positive(int), help="fresh browser runs (default: 3; --quick: 1)")
    p.add_argument("--texts", type=_positive(int), help="texts per length (default: 8; --quick: 4)")
    p.add_argument("--json", help="write every figure (and each run's) here")
    p.add_argument("--markdown", help="also write the Markdown tables here")
    p.add_argument("--plot", help="write a PNG chart of the latencies here")
    p.add_argument("--no-transformers-js", action="store_true", help="leave out the transformers.js cases")
    p.add_argument("--tjs-reference", metavar="DIR",
                   help="also time transformers.js on this model folder's q8 graph (e.g. an L6 bundle: the MiniLM-L6 q8 "
                        "transformers.js users run), on the same texts in the same run; its answers are not compared")
    p.add_argument("--no-webgl", action="store_true", help="leave out the WebGL case (else a bundle without WebGL graphs gets them in a temporary copy)")

    p = sub.add_parser("site", help="write the demo as a static folder for any static host")
    p.add_argument("--bundle", help="bundle folder (default: $INTENT_BUNDLE or models/bundles/finance)")
    p.add_argument("--out", required=True, help="the folder to write (replaced atomically)")
    p.add_argument("--force", action="store_true", help="replace --out even if it is not a site this command wrote")
    p.add_argument("--webgpu", action="store_true", help="also ship the WebGPU backend (its onnxruntime-web build has a 26.8 MB .wasm: raise --max-file-mb)")
    p.add_argument("--webgl", action="store_true", help="also ship the WebGL backend and the bundle's WebGL graphs (fp32)")
    p.add_argument("--bench", action="store_true", help="also ship the benchmark page (bench.html) and transformers.js, which it compares with")
    p.add_argument("--max-file-mb", dest="max_file_mib", type=_positive(float), default=25.0, metavar="MIB",
                   help="refuse to write a file bigger than this many MiB (default: %(default)s, Cloudflare Pages' limit)")
    p.add_argument("--with-fp32", action="store_true", help="also ship the fp32 transformer graph (4x the int8 size)")
    _no_bundle_js_arg(p)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments of one command; ``--tfidf`` stands for ``--tf log --idf --norm l2``."""
    args = build_parser().parse_args(argv)
    if getattr(args, "tfidf", False):
        args.tf, args.idf, args.norm = "log", True, "l2"
    return apply_size(args) if hasattr(args, "size_recipe") else args
