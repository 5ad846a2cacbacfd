"""4-bit weights two ways, beside int8 and fp32: size and speed of MiniLM, natively and in
onnxruntime-web's WASM build, in one run (docs/BENCHMARKS.md, "Small").

    .venv/bin/python -m benchmarks.four_bit_formats [--layers 6] [--markdown OUT]

* ``u8s4``: ours (builder/export/int4_weights.py): 4-bit weights two a byte, unpacked to int8 by
  constant ops that onnxruntime folds when the session is created, so inference runs the int8
  graph's MatMulInteger kernels;
* ``MatMulNBits``: onnxruntime's own 4-bit (and 8-bit) format (``MatMulNBitsQuantizer``), whose
  kernel dequantizes blocks of weights on every run (accuracy level 0: float arithmetic; 4: int8
  arithmetic where the CPU has a kernel for it).

The classifier head is random (speed and size do not depend on it); the embeddings are int8 in
every quantized graph but ``u8s4``'s, which are 4-bit.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch

from benchmarks.int8_schemes import native_medians, wasm_run, write_report
from builder.export.int8_safety import cpu_flags, describe_cpu
from builder.export.onnx_export import export_onnx
from builder.export.optimize import quantize_int8
from builder.train.transformer_model import SequenceClassifier, load_encoder, resolve_base

NBITS = [(4, 32, 0), (4, 128, 0), (4, 32, 4), (8, 128, 0)]  # bits, block size, accuracy level


def matmul_nbits(fp32: Path, dst: Path, bits: int, block: int, level: int) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=level, bits=bits)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32)), algo_config=config)
    quantizer.process()
    weights = dst.with_suffix(".matmuls.onnx")
    quantizer.model.save_model_to_file(str(weights), use_external_data_format=False)
    quantize_dynamic(weights, dst, op_types_to_quantize=["Gather"], weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    weights.unlink()
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    source, _ = resolve_base("minilm-l6")
    torch.manual_seed(0)
    model = SequenceClassifier(load_encoder(source, args.layers), [f"intent{i}" for i in range(12)])
    with tempfile.TemporaryDirectory(prefix="four-bit-") as tmp:
        work = Path(tmp)
        fp32 = export_onnx(model, work / "fp32.onnx")
        graphs = {"fp32": fp32}
        for scheme in ("u8s7", "u8s4"):
            graphs[scheme] = quantize_int8(fp32, work / f"{scheme}.onnx", scheme=scheme)
        for bits, block, level in NBITS:
            graphs[f"MatMulNBits {bits}-bit, block {block}, accuracy level {level}"] = matmul_nbits(
                fp32, work / f"nbits{bits}_{block}_{level}.onnx", bits, block, level)
        native = native_medians(list(graphs.values()))
        wasm = {path: g["median_ms"] for path, g in wasm_run(list(graphs.values()), [], work, rounds=7).items()}
        ref = graphs["u8s7"]
        lines = [
            f"MiniLM-L{args.layers} (random 12-way head), 16 tokens, 1 thread; native: {describe_cpu(cpu_flags())}; "
            "WASM: onnxruntime-web under Node; interleaved rounds.",
            "",
            "| graph | MB | native p50 (vs u8s7) | WASM p50 (vs u8s7) |",
            "|---|---|---|---|",
        ]
        for name, path in graphs.items():
            lines.append(f"| {name} | {path.stat().st_size / 1e6:.1f} | {native[path]:.2f} ms ({native[path] / native[ref]:.2f}x) "
                         f"| {wasm[str(path)]:.2f} ms ({wasm[str(path)] / wasm[str(ref)]:.2f}x) |")
    write_report("\n".join(lines), None, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
