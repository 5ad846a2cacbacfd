"""Pre-fused variants of a MiniLM bundle's fp32 graph (12 heads, hidden 384), to time against
the shipped int8 graph in WASM with benchmarks/wasm_graphs.mjs (docs/BENCHMARKS.md, "Pre-fused
graphs in WASM"):

    .venv/bin/python -m benchmarks.fused_graphs models/bundles/finance/onnx/model.onnx /tmp/fused

writes `fused_int8.onnx` (onnxruntime.transformers' BERT fusions, as the native variant, int8
MatMul), `fused_noemb_int8.onnx` (the embedding LayerNorm left unfused, so the embedding tables
are quantized too) and `fused_noemb_qattn.onnx` (the same with the attention quantized: QAttention).
"""
import sys
from pathlib import Path

from builder.export.optimize import QUANT_OPS, fuse_for_native, quantize_int8

src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for name, embed in (("fused", True), ("fused_noemb", False)):
    fused = fuse_for_native(src, out / f"{name}.onnx", 12, 384, embed_layer_norm=embed)
    if fused is None:
        raise SystemExit(f"{src}: no attention to fuse (see the warning above)")
    quantize_int8(fused, out / f"{name}_int8.onnx")
    if not embed:
        quantize_int8(fused, out / f"{name}_qattn.onnx", op_types=(*QUANT_OPS, "Attention"))
    fused.unlink()
for f in sorted(out.glob("*.onnx")):
    print(f"{f}: {f.stat().st_size / 1e6:.1f} MB")
