"""``builder build``: generate the data, then train every tier asked for (BoW, transformer, its WebGL
graphs) into one staging folder beside the bundle and swap it in once; ``build_gap`` says what an
existing bundle lacks (``--if-missing``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from runtime_py import Router
from runtime_py.bundle import verified_path
from runtime_py.errors import BundleError

from .. import paths
from ..atomic import target_lock
from ..bundle.writer import BundleDraft, open_bundle
from ..data.datasets import write_splits
from ..data.generate import GenerateOptions, generate
from ..data.templates import load_templates
from ..errors import BuildError
from ..export.int8_schemes import DEFAULT_INT8_SCHEME
from ..log import to_stderr
from ..train.cascade import DEFAULT_TOLERANCE

BUILD_TIERS = ("bow", "transformer")

# The transformer tier's size recipe (builder.pipeline.sizes): all of MiniLM-L6's layers in 4 bits
# and 16,000 wordpieces, 9.3 MB against 23.4 MB, one hand-written finance text of 180 lost (0.9222
# against 0.9278). Not "small": its 3 layers, trained alone as a build can afford, answer 0.85 of
# them (docs/BENCHMARKS.md, "Small: distilled students and the size table", "4-bit on every backend").
BUILD_SIZE = "compact"


@dataclass(frozen=True)
class BuildOptions:
    """What `build` makes, as its arguments give it (the parser holds the defaults); None places are
    the defaults of :mod:`builder.paths`."""

    tiers: str  # comma-separated names from BUILD_TIERS
    seed: int
    if_missing: bool
    base: str
    transformer_epochs: int
    webgl: bool
    quiet: bool
    layers: int | None = None  # None: the base's depth (the parser fills it from --size)
    int8_scheme: str = DEFAULT_INT8_SCHEME
    vocab_size: int | None = None
    handoff_tolerance: float = DEFAULT_TOLERANCE
    word_pieces: bool = True  # the BoW tier's block of the base's word-piece vectors
    out: str | Path | None = None
    templates: str | Path | None = None
    data: str | Path | None = None


def add_webgl(bundle: Path, data: Path, seed: int, draft: BundleDraft | None = None, log: Callable[[str], None] = to_stderr) -> None:
    """`--webgl` of train and build: the WebGL variant, checked on up to 1,000 validation texts
    (into `draft` when given)."""
    from ..export.webgl_graph import add_webgl_variant, validation_texts

    add_webgl_variant(bundle, validation_texts(data, 1000, seed), log=log, draft=draft)


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
    router = Router.from_bundle(out)
    if router.problems:
        return router.problems[0]["error"]
    missing = [t for t in tiers if t not in {tier.name for tier in router.tiers}]
    if missing:
        return f"no {', '.join(missing)} tier"
    if webgl and "transformer" in tiers:
        from ..export.webgl_graph import DEFAULT_LENGTHS, bucket_lengths, role_for

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


def build(options: BuildOptions, log: Callable[[str], None] = to_stderr) -> Path:
    """Generate the data, then train every tier into one staging folder beside the bundle and swap
    it in at the end: until then the previous bundle is untouched, also when the build is killed.
    The bundle's lock (builder.atomic) is held from the --if-missing check to the swap. Returns the
    bundle's folder."""
    # The trainers load torch (and the transformer onnx): imported once a tier needs them.
    from ..train.bow import BowOptions
    from .bow_tier import train_bow_into_bundle

    tiers = [t.strip() for t in options.tiers.split(",") if t.strip()]
    unknown = sorted(set(tiers) - set(BUILD_TIERS))
    if not tiers or unknown:
        raise BuildError(f"--tiers {options.tiers!r}: choose from {', '.join(BUILD_TIERS)}")
    out = Path(options.out) if options.out else paths.default_bundle()
    webgl = options.webgl and "transformer" in tiers
    with target_lock(out):  # repairs what a killed build left beside `out` before anything reads it
        if options.if_missing:
            gap = build_gap(out, tiers, webgl)
            if gap is None:
                log(f"{out} is ready ({', '.join(tiers)}{' with WebGL graphs' if webgl else ''}); nothing to build")
                return out
            if (out / "manifest.json").exists():
                log(f"{out} needs a rebuild: {gap}")
        templates = load_templates(options.templates)
        generation = GenerateOptions.from_env(seed=options.seed)
        data = Path(options.data) if options.data else paths.DEFAULT_DATA
        steps = 1 + len(tiers)
        log(f"[1/{steps}] generating {generation.size:,} utterances from {templates.path}")
        splits, _ = generate(templates, generation)
        write_splits(data, splits, {"slots.json": templates.slot_spec()})
        # Without the BoW tier the bundle's other tiers are kept (a hard-linked copy is staged).
        with open_bundle(out, replace="bow" in tiers) as draft:
            log(f"staging the new bundle in {draft.root}")
            step = 1
            if "bow" in tiers:
                step += 1
                log(f"[{step}/{steps}] training the bag-of-words tier")
                recipe = BowOptions.robust(seed=options.seed, word_pieces=options.base if options.word_pieces else None)
                train_bow_into_bundle(data, out, recipe, progress=not options.quiet,
                                      handoff_tolerance=options.handoff_tolerance, draft=draft, log=log)
            if "transformer" in tiers:
                from ..train.fine_tune import TransformerOptions
                from .transformer_tier import TransformerBuildOptions, train_transformer_into_bundle

                step += 1
                log(f"[{step}/{steps}] fine-tuning the transformer tier ({options.base}, {options.transformer_epochs} epoch(s))")
                training = TransformerOptions(base=options.base, layers=options.layers, epochs=options.transformer_epochs, seed=options.seed)
                shipped = TransformerBuildOptions(training=training, int8_scheme=options.int8_scheme, vocab_size=options.vocab_size,
                                                  handoff_tolerance=options.handoff_tolerance)
                train_transformer_into_bundle(data, out, shipped, log=log, progress=not options.quiet, draft=draft)
                if webgl:
                    add_webgl(out, data, options.seed, draft=draft, log=log)
            log(f"writing the manifest and swapping the new bundle into {out}")
    log(f"wrote {out}/ with tiers: {', '.join(tiers)}")
    return out
