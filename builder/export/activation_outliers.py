"""Outlier activation channels kept in float before dynamic int8: closer to fp32, and to every other CPU.

Dynamic int8 quantizes each MatMul's input with one scale per tensor, (max - min) / 255. In BERT-class
encoders a few channels of some inputs are 30-130x larger than the median channel (the LayerNorm
output feeding the feed-forward block, and the GELU output feeding its second MatMul), so that one
step of the 8-bit grid is half the size of a typical value. Such a coarse grid costs accuracy, and
it makes the answer depend on the runtime: a last-bit float difference between two runtimes' LayerNorm
or Erf kernels moves a value across a rounding boundary, a whole step, and the change spreads
through the later layers (docs/BENCHMARKS.md, "int8 on every CPU").

The rewrite here is exact in fp32 (LLM.int8()'s decomposition plus SmoothQuant's migration). For each
input X of a MatMul with a constant weight W, calibrated on real texts:

* the few channels O whose range exceeds `OutlierRecipe.ratio` x the median channel's go through a
  small float MatMul, ``Gather(X, O) @ W[O]``;
* the others are divided by per-channel factors s (SmoothQuant, strength `smoothing`), with W's rows
  multiplied by s, so activation and weight ranges are balanced: ``(X * m) @ (diag(s) W)``, where m
  is 1/s and 0 on O, and W's rows on O are 0;
* the two products are added. The quantizer then makes the second one int8, as before.

The builder ships the rewrite only for graphs with at least one outlier channel
(`optimize.build_variants`): smoothing alone brought int8 further from fp32 on banking77 and hwu64.

Graphs gain plain ONNX ops only (Mul, Gather, MatMul, Add), which every runtime runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import BuildError


@dataclass(frozen=True)
class OutlierRecipe:
    """Which channels stay in float and how the others are balanced (chosen in docs/BENCHMARKS.md)."""

    ratio: float = 6.0  # an outlier channel's calibration |max| exceeds ratio x the median channel's
    max_channels: int = 4  # at most this many float channels per MatMul input
    smoothing: float = 0.5  # SmoothQuant's alpha for the other channels; 0 leaves them as they are
    smooth_all: bool = True  # smooth inputs without outlier channels too

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_RECIPE = OutlierRecipe()


@dataclass
class SplitReport:
    """What `split_outliers` changed: MatMul inputs rewritten, float channels in all, calibration texts."""

    recipe: OutlierRecipe
    inputs: int
    channels: int
    calibration_texts: int
    float_matmuls: list[str]

    def manifest_entry(self) -> dict:
        return {**self.recipe.to_dict(), "inputs": self.inputs, "channels": self.channels, "calibration_texts": self.calibration_texts}


def _weight_matmuls(model, inits: Mapping[str, object]) -> dict[str, list]:
    """The MatMul nodes with a constant 2-D weight that nothing else reads (the rewrite rescales it),
    grouped by their (activation) input."""
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    groups: dict[str, list] = {}
    for node in model.graph.node:
        w = node.input[1] if node.op_type == "MatMul" else None
        if w in inits and len(inits[w].dims) == 2 and readers[w] == 1:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def channel_ranges(model_path: Path, feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-channel max |value| of every weight MatMul's input over `feeds`, by tensor name (onnxruntime, fp32)."""
    import onnx
    import onnxruntime as ort

    if not feeds:
        raise BuildError("activation outliers: no calibration texts")
    model = onnx.load(str(model_path))
    tensors = list(_weight_matmuls(model, {i.name: i for i in model.graph.initializer}))
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors if t not in known)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the tensors as the graph names them
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    ranges: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(tensors, session.run(tensors, {k: v for k, v in feed.items() if k in names})):
            amax = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            ranges[name] = np.maximum(ranges[name], amax) if name in ranges else amax
    return ranges


def outlier_channels(amax: np.ndarray, recipe: OutlierRecipe) -> list[int]:
    """The channels of one input kept in float: the largest, at most `max_channels`, above `ratio` x the median."""
    limit = recipe.ratio * float(np.median(amax))
    return sorted(int(i) for i in np.argsort(-amax, kind="stable")[: recipe.max_channels] if amax[i] > limit)


def smoothing_factors(amax: np.ndarray, weights: Sequence[np.ndarray], keep: np.ndarray, alpha: float) -> np.ndarray:
    """SmoothQuant's per-channel s = max|X|^alpha / max|W row|^(1 - alpha) over the kept channels
    (geometric mean 1, so the weights' overall scale stays); 1 elsewhere and when alpha is 0."""
    s = np.ones(amax.shape, dtype=np.float64)
    if alpha <= 0 or not keep.any():
        return s
    wmax = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
    # A channel (nearly) silent in calibration must not get a huge 1/s for texts where it is not.
    floor = max(1e-5, 0.01 * float(np.median(amax[keep])))
    raw = np.maximum(amax[keep], floor) ** alpha / np.maximum(wmax[keep], 1e-5) ** (1.0 - alpha)
    s[keep] = raw / np.exp(np.mean(np.log(raw)))
    return s


def split_outliers(model, ranges: Mapping[str, np.ndarray], recipe: OutlierRecipe = DEFAULT_RECIPE, calibration_texts: int = 0):
    """Rewrite `model` (an fp32 ``onnx.ModelProto``, changed in place) as the module says; returns a
    `SplitReport` whose ``float_matmuls`` the quantizer must leave in float."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    groups = _weight_matmuls(model, inits)
    report = SplitReport(recipe, 0, 0, calibration_texts, [])
    added: dict[str, list] = {}  # nodes to insert before each group's first MatMul
    after: dict[str, list] = {}  # nodes to insert after a MatMul, by its name
    for x, users in groups.items():
        amax = np.asarray(ranges.get(x, ()), dtype=np.float64)
        weights = [numpy_helper.to_array(inits[n.input[1]]).astype(np.float64) for n in users]
        if amax.shape != (weights[0].shape[0],):
            continue  # not calibrated (e.g. a graph output of its own): left as it is
        out = outlier_channels(amax, recipe)
        keep = np.ones(amax.shape, dtype=bool)
        keep[out] = False
        s = smoothing_factors(amax, weights, keep, recipe.smoothing if (out or recipe.smooth_all) else 0.0)
        if not out and np.all(s == 1.0):
            continue
        mask = np.where(keep, 1.0 / s, 0.0).astype(np.float32)
        scaled = f"{x}/int8_part"
        model.graph.initializer.append(numpy_helper.from_array(mask, f"{x}/int8_mask"))
        nodes = [helper.make_node("Mul", [x, f"{x}/int8_mask"], [scaled], name=f"{x}/int8_mask_Mul")]
        if out:
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(out, dtype=np.int64), f"{x}/outlier_channels"))
            nodes.append(helper.make_node("Gather", [x, f"{x}/outlier_channels"], [f"{x}/outliers"], axis=-1, name=f"{x}/outliers_Gather"))
        added[x] = nodes
        for node, w in zip(users, weights):
            name = node.input[1]
            inits[name].CopyFrom(numpy_helper.from_array((w * (s * keep)[:, None]).astype(np.float32), name))
            node.input[0] = scaled
            if out:
                y = node.output[0]
                node.output[0] = f"{y}/int8_part"
                float_mm = f"{node.name}/outliers_MatMul"
                model.graph.initializer.append(numpy_helper.from_array(w[out].astype(np.float32), f"{name}/outlier_rows"))
                after[node.name] = [
                    helper.make_node("MatMul", [f"{x}/outliers", f"{name}/outlier_rows"], [f"{y}/outlier_part"], name=float_mm),
                    helper.make_node("Add", [f"{y}/int8_part", f"{y}/outlier_part"], [y], name=f"{node.name}/outliers_Add"),
                ]
                report.float_matmuls.append(float_mm)
        report.inputs += 1
        report.channels += len(out)
    ordered = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[0].endswith("/int8_part"):
            ordered.extend(added.pop(node.input[0][: -len("/int8_part")], []))
        ordered.append(node)
        ordered.extend(after.get(node.name, []))
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return report


CALIBRATION_TEXTS = 256


def calibration_feeds(encode, texts: Sequence[str], count: int = CALIBRATION_TEXTS, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Batch-1 inputs for up to `count` of `texts` (a seeded sample), as the runtimes feed them:
    `encode(text)` returns a mapping of input name to a [1, length] list or array."""
    import random

    picked = list(texts) if len(texts) <= count else random.Random(seed).sample(list(texts), count)
    return [{k: np.asarray(v, dtype=np.int64) for k, v in encode(text).items()} for text in picked]


def write_split(src: Path, dst: Path, feeds: Sequence[Mapping[str, np.ndarray]], recipe: OutlierRecipe = DEFAULT_RECIPE) -> SplitReport:
    """Calibrate the fp32 graph at `src` on `feeds`, rewrite it (`split_outliers`) and save it as `dst`."""
    import onnx

    model = onnx.load(str(src))
    report = split_outliers(model, channel_ranges(src, feeds), recipe, calibration_texts=len(feeds))
    onnx.save_model(model, str(dst), save_as_external_data=False)
    return report
