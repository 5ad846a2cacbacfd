"""The int8 weight formats the builder can ship (no heavy imports: the command line lists them).

Activations are always uint8, quantized per run (dynamic int8); the formats differ in how the
MatMul weights are stored (docs/BENCHMARKS.md, "int8 on every CPU" and "Small").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Int8Scheme:
    """How dynamic int8 stores the weights of MatMul/Gemm (activations are always uint8 at run time)."""

    name: str
    weight_type: str  # onnxruntime.quantization.QuantType member name
    reduce_range: bool
    summary: str
    weight_bits: int = 8  # 4: stored two a byte, unpacked to int8 at load (int4_weights)


INT8_SCHEMES = {
    s.name: s
    for s in (
        Int8Scheme("u8s8", "QInt8", False, "8-bit signed weights: int16 pair sums overflow on x86 without VNNI"),
        Int8Scheme("u8s7", "QInt8", True, "7-bit signed weights (reduce_range): no overflow on any CPU"),
        Int8Scheme("u8u8", "QUInt8", False, "8-bit unsigned weights: a kernel without 16-bit pair sums"),
        Int8Scheme("u8s4", "QInt8", True, "4-bit signed weights and word embeddings, int8 arithmetic: half the bytes", weight_bits=4),
    )
}
DEFAULT_INT8_SCHEME = "u8s7"
# Formats a bundle may ship: every one but u8s8, whose int16 pair sums overflow without VNNI.
SHIPPABLE_SCHEMES = tuple(name for name in INT8_SCHEMES if name != "u8s8")
