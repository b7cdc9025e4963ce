"""Number formats of a served model: weights, KV cache, compute.

A model (run, expert, router, draft) is stored and computed in three formats:

- ``weight``: the decoder layers' linear weights (attention q/k/v/o, MLP, MoE experts):
  bf16, fp16, fp8_e4m3, int8 or int4, with ``group_size`` elements per scale of
  ``scale_bytes`` bytes (null: one scale per tensor). Embeddings, the LM head, norms,
  biases and the MoE router stay at the model's dtype (as GPTQ/AWQ and TensorRT-LLM
  checkpoints keep them by default). Scales are stored only for quantised formats.
- ``kv_cache``: bf16, fp16, fp8_e4m3, int8 or int4; K and V are stored at this format, so KV
  growth, capacity and the bytes attention reads and writes follow it
  (``ModelConfig.kv_cache_bytes_per_rank``, the graph's KV tensors). INT8 and INT4 caches
  store a scale of ``kv_scale_bytes`` per ``kv_group_size`` elements (null: one per head
  vector of head_dim elements, per token, as KIVI / TensorRT-LLM's INT8 KV per-head scales)
  beside the values; fp8 is stored unscaled.
- ``compute``: the format the tensor cores / PCUs multiply in: bf16, fp16, fp8_e4m3 or int8.

The rule for formats (one for both machines):

1. ``compute`` must be a format the machine computes natively, i.e. its arch file gives a
   rate for it (:func:`native_rate`); otherwise the deployment is rejected (InputError).
2. Weights at the compute format are used as stored (W8A8, FP8: the GEMM reads them).
3. Weights narrower than a bf16/fp16 compute format are dequantised on the fly: every
   quantised weight gets a ``weight.dequant`` op in the graph (2 FLOPs per element: convert
   and scale) whose output feeds the GEMM. Fused, it is the GEMM's prologue (GPU W4A16/W8A16
   kernels, an RDU pipeline stage): only the stored bytes cross HBM; unfused, the dequantised
   weight goes through HBM.
4. Any other combination (weights wider than the compute format, fp8 weights with int8
   compute, ...) is rejected.

What a quantised compute format costs besides the GEMM (the mechanism a real stack runs):

5. A GEMM computing in a quantised format (FP8 or INT8: W8A8) reads a quantised activation:
   its input gets an ``act.quant`` op (multiply by the activation's scale, cast: 2 FLOPs per
   element; the scale is static, calibrated per tensor as in TensorRT-LLM / ModelOpt FP8
   checkpoints, so no amax reduction runs at inference). One quantised copy of an input
   serves every GEMM reading it. The GEMM writes the model's dtype (its epilogue applies the
   two scales). Fused, the quantisation runs where TensorRT-LLM puts it: in the kernel that
   produced its input (the RMSNorm/LayerNorm kernel, the gated-activation epilogue of the
   up-projection GEMM, the attention kernel's output); unfused it is a kernel of its own.
   The tensor cores then run at that format's rate and efficiency (the arch file's
   ``tensor_<fmt>_flops_per_s`` and ``kernel.tensor_<fmt>_efficiency``), taken per kernel
   from the formats of its GEMM's operands: a GEMM of a bf16 and an fp8 operand (attention
   over an fp8 KV cache) computes in bf16.
6. A quantised KV cache (``kv_cache``: fp8_e4m3, int8 or int4) is written through a quantisation (2 FLOPs
   per element, in the KV-append op) and read through a dequantisation to the model dtype
   (an ``attn.kv_dequant`` op per K and V, 2 FLOPs per element), which fused is the prologue
   of the attention kernel (FlashAttention/XQA with an fp8 cache: only fp8 bytes cross HBM)
   and unfused a kernel writing the bf16 copy. Sizes follow the format everywhere (capacity,
   KV traffic); int8/int4 caches store their scales (one per ``kv_group_size`` elements) beside
   the values and those bytes are counted; fp8's per-tensor scales (one per layer) are not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from rdusim.graph.tensor import DType
from rdusim.errors import InputError

WEIGHT_DTYPES = (DType.BF16, DType.FP16, DType.FP8_E4M3, DType.INT8, DType.INT4)
KV_DTYPES = (DType.BF16, DType.FP16, DType.FP8_E4M3, DType.INT8, DType.INT4)
SCALED_KV_DTYPES = (DType.INT8, DType.INT4)     # KV formats stored with scales
COMPUTE_DTYPES = (DType.BF16, DType.FP16, DType.FP8_E4M3, DType.INT8)
DEQUANT_FLOPS_PER_ELEMENT = 2.0     # convert to the compute format, multiply by the scale
QUANT_FLOPS_PER_ELEMENT = 2.0       # multiply by the (static, per-tensor) scale, cast (rule 5, 6)
MAX_GROUP = 2 ** 20                 # elements per scale (beyond a million: one scale per tensor is meant)


@dataclass(frozen=True)
class WeightFormat:
    dtype: Optional[DType] = None     # null: the model's dtype
    group_size: Optional[int] = field(default=None, metadata={"gt": 0, "le": MAX_GROUP})  # elements per scale; null: per tensor
    scale_bytes: float = field(default=2.0, metadata={"ge": 0, "le": 16})  # bytes of one scale (fp16: 2)

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in WEIGHT_DTYPES:
            raise ValueError("dtype", f"one of {[d.value for d in WEIGHT_DTYPES]}", self.dtype.value)
        g = self.group_size
        if g is not None and (g < 2 or g & (g - 1)):
            # a group is a run of whole packed bytes along a GEMM's K dimension: GPTQ, AWQ,
            # TensorRT-LLM and the MX formats all take power-of-two groups (32, 64, 128, ...)
            raise ValueError("group_size", f"a power of two from 2 to {MAX_GROUP} (elements per scale, as GPTQ, "
                             "AWQ and TensorRT-LLM quantise), or null for one scale per tensor", g)


@dataclass(frozen=True)
class Formats:
    """Formats of one model; a null field means the model's dtype (``torch_dtype``)."""

    weight: WeightFormat = WeightFormat()
    kv_cache: Optional[DType] = None
    compute: Optional[DType] = None
    # compute in the weight format on machines that can (FP8 on H100, INT8 on H100/A100),
    # elsewhere at the model dtype with the weights dequantised on the fly (see for_machine)
    native_compute: bool = False
    kv_group_size: Optional[int] = field(default=None, metadata={"gt": 0})   # KV elements per scale; null: head_dim
    kv_scale_bytes: float = field(default=2.0, metadata={"ge": 0})          # bytes of one KV scale (fp16: 2)

    def __post_init__(self) -> None:
        if self.native_compute and self.compute is not None:
            raise ValueError("native_compute", "false when compute is given (native_compute picks it per machine)",
                             True)
        if self.kv_cache is not None and self.kv_cache not in KV_DTYPES:
            raise ValueError("kv_cache", f"one of {[d.value for d in KV_DTYPES]}", self.kv_cache.value)
        if self.compute is not None and self.compute not in COMPUTE_DTYPES:
            raise ValueError("compute", f"one of {[d.value for d in COMPUTE_DTYPES]}", self.compute.value)

    def resolved(self, model_dtype: DType) -> "ResolvedFormats":
        """The formats with nulls filled in from the model's dtype, checked (rule 2-4):
        raises ValueError(key, expected, found)."""
        w = self.weight.dtype or model_dtype
        c = self.compute or model_dtype
        if c.bits > model_dtype.bits:
            raise ValueError("compute", f"at most as wide as the model's dtype ({model_dtype.value})", c.value)
        dequant = c in (DType.BF16, DType.FP16) and w != c and w.bits < c.bits
        if not (w == c or dequant):
            raise ValueError("weight.dtype", f"{c.value} (the compute format) or, with bf16/fp16 compute, a "
                             "narrower format dequantised on the fly", w.value)
        scale = self.weight.scale_bytes if w.is_quantized else 0.0
        group = (self.weight.group_size or 0) if w.is_quantized else 0
        kv = self.kv_cache or model_dtype
        scaled = kv in SCALED_KV_DTYPES
        return ResolvedFormats(w, group, scale, kv, c, dequant, (self.kv_group_size or 0) if scaled else 0,
                               self.kv_scale_bytes if scaled else 0.0)


@dataclass(frozen=True)
class ResolvedFormats:
    weight: DType
    scale_group: int          # elements per scale (0: one per tensor)
    scale_bytes: float        # bytes per scale (0: no scales stored)
    kv_cache: DType
    compute: DType
    dequantises: bool         # weights dequantised to the compute format on the fly (rule 3)
    kv_scale_group: int = 0   # KV elements per scale (0: one per head vector)
    kv_scale_bytes: float = 0.0   # bytes per KV scale (0: the cache stores no scales)

    @property
    def quantises_activations(self) -> bool:
        """GEMMs compute in a quantised format, so their activation inputs are quantised (rule 5)."""
        return self.compute.is_quantized

    @property
    def label(self) -> str:
        g = f"g{self.scale_group}" if self.scale_group else ""
        return f"w{self.weight.value}{g}.kv{self.kv_cache.value}.c{self.compute.value}"


def native_rate(arch, dtype: DType) -> Optional[float]:
    """Peak dense tensor rate (FLOP/s or OP/s) of one device at ``dtype``, or None when the
    machine does not compute in it natively (its family's schema answers)."""
    return arch.native_rate(dtype)


def check_compute(arch, compute: DType, file: str, key: str) -> None:
    """Rule 1: reject a compute format the machine has no rate for (``key``: the
    workload key that set it)."""
    if native_rate(arch, compute) is None:
        natives = [d.value for d in COMPUTE_DTYPES if native_rate(arch, d) is not None]
        raise InputError(file, key, f"a format {arch.name} computes natively (one of {natives}; "
                         "weights in other formats are dequantised to bf16 on the fly)", compute.value)


def apply_formats(cfg, formats: Formats, file: str, key: str):
    """``cfg`` (a ModelConfig) with ``formats``; a bad combination is an InputError at ``key``."""
    try:
        formats.resolved(cfg.torch_dtype)
    except ValueError as exc:
        k, expected, found = exc.args
        raise InputError(file, f"{key}.{k}", expected, found) from None
    g = formats.kv_group_size
    if g is not None and cfg.head_dim % g:
        raise InputError(file, f"{key}.kv_group_size", f"a divisor of {cfg.name}'s head_dim ({cfg.head_dim}): "
                         "a KV scale group never spans two head vectors", g)
    return cfg.with_formats(formats)


def arch_at(arch, compute: DType):
    """The machine as an engine sees it when its tensor work runs at ``compute``: the
    tensor rate replaced by that format's rate (its family's schema answers). BF16 returns ``arch``."""
    return arch.at_compute(compute)


def with_checked_formats(cfg, formats: Formats, loaded, key: str):
    """A workload's model with its formats: the combination checked (rules 2-4) and the
    compute format checked against every platform's machine (rule 1)."""
    cfg = apply_formats(cfg, formats, loaded.file, key)
    for name, arch in loaded.archs.items():
        check_compute(arch, for_machine(cfg, arch).fmt.compute, loaded.file, f"{key}.compute")
    return cfg


def for_machine(cfg, arch):
    """The model as it is served on ``arch``: with ``native_compute``, its compute format is
    its weight format where the machine computes that natively, else the model dtype (the
    weights dequantised on the fly). Stored bytes do not depend on it."""
    f = cfg.formats
    if not f.native_compute:
        return cfg
    w = f.weight.dtype or cfg.torch_dtype
    native = w in COMPUTE_DTYPES and native_rate(arch, w) is not None
    return cfg.with_formats(dataclasses.replace(f, native_compute=False, compute=w if native else None))
