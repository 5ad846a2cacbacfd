"""Write the JavaScript runtime's parity fixtures: small bundles and what runtime_py answers with them.

    .venv/bin/python -m tests.make_runtime_fixtures --out tests/fixtures/generated/runtime [--no-transformer]

Writes into ``--out`` (about 30 s on 2 cores, most of it the tiny transformer):

* ``data/``: the generated finance utterances plus an ``oos`` class (out-of-domain requests);
* ``bundle/``: a BoW tier (reference recipe: word 1-2-gram counts) and a transformer tier (a tiny
  random-weight 2-layer BERT with the real uncased vocabulary, fine-tuned a few steps, int8 and fp32
  variants), with ``routing.oos_labels = ["oos"]``;
* ``bundle_blend/``: ``bundle/`` with the transformer blended with the BoW (weight 0.6, fitted temperature);
* ``bundle_tfidf/``: a BoW tier on the other feature path (char 2-4-grams, log tf, idf, l2 norm);
* ``bundle_int8/``: the default build's BoW recipe (bow.json version 3: token_l2, int8 rows; a short fit);
* ``bundle_pieces/``: the same recipe with a word-piece block (bow.json version 4) from the tiny
  random BERT's encoder, 600 pieces;
* ``expected.jsonl``: one line per (bundle, router settings, text): runtime_py's
  ``RouteResult.to_dict()`` (or the error it raised) and, for the default settings, each tier's
  logits (``tier_logits``), plus the fp32 variant's (``fp32_logits``);
* ``manifest.json``: what was written, with the router settings of each case set.

The transformer cascade runs the shipped int8 ``model`` variant (``INTENT_ONNX_VARIANT``): its
integer sums are exact in onnxruntime on every CPU and in onnxruntime-web (builder/export/int8_safety.py),
so both runtimes' int8 logits agree to float rounding (~1e-6), as fp32 ones do.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "generated" / "runtime"
SEED = 20261123
CASCADE_VARIANT = "model"  # the int8 graph, as deployed
FP32_VARIANT = "model_fp32"

OOS_TEMPLATES = [
    "what's the weather in {}",
    "give me a recipe for {}",
    "who won the {} game last night",
    "tell me a joke about {}",
    "play some {} music",
    "set an alarm for {}",
    "translate {} into french",
    "how do i fix my {}",
]
OOS_FILLERS = ["paris", "lasagna", "the bike", "jazz", "7 am", "the sink", "basketball", "cats", "my car", "tokyo", "pancakes", "rock"]

# Router settings of the case sets; keys are runtime_py Router keyword arguments.
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "forced": {"force": True, "handoff_threshold": 0.99, "threshold": 0.99},
    "strict": {"threshold": 0.9, "handoff_threshold": 0.95, "margin": 0.3},
    "known": {"known_intents": ["account_value", "cash_balance", "positions", "quotes"]},
}

EXTRA_TEXTS = [
    "",
    "\x1c",
    "\x85",
    "\ufeff",
    "price of \u017fpy",
    "my \u0130RA balance",
    " ",
    "\t\n",
    "?",
    "!!!",
    "...",
    "$",
    "'",
    "''''",
    "hello",
    "hi there",
    "thanks",
    "what is the weather in paris",
    "give me a recipe for lasagna",
    "tell me a joke",
    "who won the basketball game",
    "asdfghjkl qwerty",
    "the the the the the",
    "how many shares how many shares of AAPL",
    "AAPL",
    "aapl",
    "AAPL AAPL AAPL",
    "how many shares of $PLTR do I own",
    "how many shares of $pltr do i own",
    "quote for $AAPL",
    "price of $IRA",
    "price of $PLTR, $SOFI and $aapl",
    "what is $PLTR_x worth",
    "$$PLTR",
    "a$PLTR",
    "price of $PLTRé",
    "price of $ÉTF",
    "how is TSLA doing this year",
    "how is tsla doing YTD",
    "tell me about a Roth IRA",
    "tell me about the roth ira in my IRA",
    "what is an index fund vs a mutual fund",
    "positions in my brokerage account",
    "show me my portoflio perfomance",
    "what's my balnce",
    "qoute for NVDA please",
    "MSFT perf",
    "GOOG performance 3M",
    "how did QQQ and SPY do last month",
    "what is my cash balance",
    "how much cash do i have",
    "deposit 500 dollars",
    "withdraw money from IRA",
    "show my recent trades",
    "what are my best performers",
    "worst performing stocks in my portfolio",
    "what's my account worth",
    "total value of my account",
    "list all my holdings",
    "do i own any AMD",
    "café déjà vu",
    "Ünïcödé quote for AAPL",
    "ΣΠΥ ΑΑΡΛ",
    "quote for ａａｐｌ",
    "how is \u212aO doing",
    "İstanbul balance",
    "straße balance",
    "ﬁnance performance",
    "🍕🍕🍕",
    "price of AAPL 🚀🚀",
    "中文 余额",
    "مرحبا",
    "hello\x00world balance",
    "balance\u200bplease",
    "zero\ufeffwidth",
    "tab\tseparated\tquote\tTSLA",
    "line\nbreak\npositions",
    "lone \ud800 surrogate balance",
    "another \udfff one for AAPL",
    "pair 😀 ok",
    "x" * 600,
    "balance " * 400,
    "how is AAPL doing " * 200,
    "a" * 4096,
    "a" * 4097,
    "quote " + "é" * 4090,
]


def oos_examples(count: int, seed: int) -> list[Any]:
    from builder.data.datasets import Example

    rng = random.Random(seed)
    pool = [t.format(f) for t in OOS_TEMPLATES for f in OOS_FILLERS]
    return [Example(rng.choice(pool), "oos") for _ in range(count)]


def make_data(out: Path, size: int) -> Path:
    from builder.data.datasets import write_splits
    from builder.data.generate import GenerateOptions, generate
    from builder.data.templates import load_templates

    templates = load_templates()
    splits, _ = generate(templates, GenerateOptions(size=size, seed=SEED, max_combos=20))
    extra = oos_examples(size // 10, SEED)
    cut = [int(len(extra) * 0.8), int(len(extra) * 0.9)]
    rng = random.Random(SEED)
    for name, rows in zip(("train", "val", "test"), (extra[: cut[0]], extra[cut[0] : cut[1]], extra[cut[1] :])):
        splits[name] = splits[name] + rows
        rng.shuffle(splits[name])
    write_splits(out, splits, {"slots.json": templates.slot_spec()})
    return out


def build_bundles(out: Path, size: int, transformer: bool) -> dict[str, Path]:
    from builder.pipeline.bow_tier import train_bow_into_bundle
    from builder.train.bow import BowOptions

    data = make_data(out / "data", size)
    bundles = {"bundle": out / "bundle", "bundle_tfidf": out / "bundle_tfidf", "bundle_int8": out / "bundle_int8"}
    train_bow_into_bundle(data, bundles["bundle"], BowOptions(epochs=4), replace=True, progress=False)
    tfidf = BowOptions(epochs=4, char_ngrams=(2, 4), tf="log", idf=True, norm="l2", learning_rate=0.05)
    train_bow_into_bundle(data, bundles["bundle_tfidf"], tfidf, replace=True, progress=False)
    robust = BowOptions.robust(c_grid=(10.0,), max_iter=40, max_weights=13 * 3000)
    train_bow_into_bundle(data, bundles["bundle_int8"], robust, replace=True, progress=False)
    from tests.tiny_bert import make_tiny_base

    base = make_tiny_base(out / "tiny-base")
    bundles["bundle_pieces"] = out / "bundle_pieces"
    pieces = replace(robust, word_pieces=str(base), max_pieces=600)
    train_bow_into_bundle(data, bundles["bundle_pieces"], pieces, replace=True, progress=False)
    if not transformer:
        shutil.rmtree(base)
    else:
        from builder.pipeline.transformer_tier import TransformerBuildOptions, train_transformer_into_bundle
        from builder.train.fine_tune import TransformerOptions

        options = TransformerBuildOptions(
            training=TransformerOptions(base=str(base), epochs=1, max_steps=12, batch_size=16, max_length=32)
        )
        train_transformer_into_bundle(data, bundles["bundle"], options, log=lambda _: None, progress=False)
        shutil.rmtree(base)
        # The same tiers with the transformer's answers blended with the BoW's (runtime_py/blend.py);
        # a fixed weight, so the fixture blends whatever validation would choose for a tiny model.
        from builder.data.datasets import read_jsonl
        from builder.train.blend import blend_bundle

        bundles["bundle_blend"] = out / "bundle_blend"
        shutil.copytree(bundles["bundle"], bundles["bundle_blend"])
        blend_bundle(bundles["bundle_blend"], read_jsonl(data / "val.jsonl"), weight=0.6)
    return bundles


def texts_for(data: Path) -> list[str]:
    """~300 texts: test-split utterances of every intent, then the hand-written edge cases."""
    from builder.data.datasets import read_jsonl

    rows = read_jsonl(data / "test.jsonl")
    rng = random.Random(SEED)
    picked = rng.sample([r.text for r in rows], min(200, len(rows)))
    return picked + EXTRA_TEXTS


def route(router: Any, text: str) -> dict[str, Any]:
    from runtime_py import IntentKitError

    try:
        result = router.classify(text).to_dict()
    except IntentKitError as exc:
        return {"error": {"name": type(exc).__name__, "message": str(exc)}}
    result.pop("latency_ms")
    for report in result["tiers"]:
        report.pop("latency_ms")
    return {"result": result}


def tier_logits(router: Any, text: str) -> dict[str, list[float]] | None:
    from runtime_py.text import prepare_text

    try:
        clean = prepare_text(text, router.max_chars)
    except Exception:
        return None
    return {tier.name: [float(x) for x in tier.logits(clean)] for tier in router.tiers}


def cases(bundles: dict[str, Path], texts: list[str]) -> Iterator[dict[str, Any]]:
    from runtime_py import Router
    from runtime_py.transformer import load_transformer_tier

    for bundle_name, path in bundles.items():
        fp32 = None
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        spec = next((t for t in manifest["tiers"] if t["kind"] == "transformer"), None)
        if spec is not None:
            from runtime_py.bundle import read_manifest

            parsed = next(s for s in read_manifest(path).tiers if s.name == spec["name"])
            fp32 = load_transformer_tier(path, parsed, variant=FP32_VARIANT, environ={})
        for setting, options in SETTINGS.items():
            # Only the variant named; no other INTENT_* setting of this shell leaks in.
            router = Router.from_bundle(path, strict=True, environ={"INTENT_ONNX_VARIANT": CASCADE_VARIANT}, **options)
            for text in texts:
                case = {"bundle": bundle_name, "settings": setting, "text": text, **route(router, text)}
                if setting == "default":
                    case["tier_logits"] = tier_logits(router, text)
                    if fp32 is not None and case["tier_logits"] is not None:
                        case["fp32_logits"] = [float(x) for x in fp32.logits(text)]
                yield case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (replaced)")
    parser.add_argument("--size", type=int, default=2000, help="generated utterances before the oos class")
    parser.add_argument("--no-transformer", action="store_true", help="BoW tiers only (no torch needed)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    bundles = build_bundles(out, args.size, not args.no_transformer)
    built = time.perf_counter()
    texts = texts_for(out / "data")
    count = 0
    tmp = out / "expected.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for case in cases(bundles, texts):
            # ensure_ascii keeps lone surrogates as \\udXXX escapes that JSON.parse reads back.
            fh.write(json.dumps(case, ensure_ascii=True) + "\n")
            count += 1
    tmp.replace(out / "expected.jsonl")
    info = {
        "generator": "tests/make_runtime_fixtures.py",
        "seed": SEED,
        "bundles": sorted(bundles),
        "settings": SETTINGS,
        "transformer_variant": None if args.no_transformer else CASCADE_VARIANT,
        "texts": len(texts),
        "cases": count,
    }
    (out / "manifest.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {count} cases for {len(texts)} texts to {out} in {time.perf_counter() - started:.1f} s (bundles {built - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
