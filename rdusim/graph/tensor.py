"""Tensors: a name, a shape, a dtype and a role (activation, weight, KV cache...)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from rdusim.derived import derived


class DType(enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8_E4M3 = "fp8_e4m3"
    INT8 = "int8"
    INT4 = "int4"
    NF4 = "nf4"                  # 4-bit NormalFloat (QLoRA), a lookup table of 16 values

    @property
    def bits(self) -> int:
        return _BITS[self.value]

    @property
    def nbytes(self) -> float:
        """Bytes per element: an int for whole-byte types, 0.5 for int4 (two per byte)."""
        bits = _BITS[self.value]
        return bits // 8 if bits % 8 == 0 else bits / 8

    @property
    def is_quantized(self) -> bool:
        """Stored with scales (fp8, int8, int4), as opposed to the float formats models train in."""
        return self in (DType.FP8_E4M3, DType.INT8, DType.INT4, DType.NF4)


_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8_e4m3": 8, "int8": 8, "int4": 4, "nf4": 4}


class TensorRole(enum.Enum):
    INPUT = "input"              # fed from outside the graph (token ids, images, signals)
    ACTIVATION = "activation"    # produced by an op of the graph
    WEIGHT = "weight"            # a parameter (counted in the model's parameter total)
    KV_CACHE = "kv_cache"        # persistent per-sequence state read by decode
    CONSTANT = "constant"        # non-trainable constant operand (FFT matrices, twiddles)
    GRADIENT = "gradient"        # gradient of a weight (training)
    OPTIMIZER_STATE = "optimizer_state"


# roles that enter the graph from outside rather than being produced by an op
EXTERNAL_ROLES = frozenset({TensorRole.INPUT, TensorRole.WEIGHT, TensorRole.KV_CACHE,
                            TensorRole.CONSTANT, TensorRole.OPTIMIZER_STATE})


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: DType = DType.BF16
    role: TensorRole = TensorRole.ACTIVATION
    density: float = 1.0   # fraction of elements stored (sparse weights); 1.0 = dense
    # quantisation scales stored with the tensor: one scale of ``scale_bytes`` per
    # ``scale_group`` elements (0: one per tensor); no scales when scale_bytes is 0
    scale_group: int = 0
    scale_bytes: float = 0.0

    def __post_init__(self) -> None:
        if any((not isinstance(d, int)) or d <= 0 for d in self.shape):
            raise ValueError(f"tensor {self.name}: every dimension must be a positive int, got {self.shape}")
        if not 0 < self.density <= 1:
            raise ValueError(f"tensor {self.name}: density must be in (0, 1], got {self.density}")

    @derived
    def numel(self) -> int:
        return math.prod(self.shape)

    @derived
    def nbytes(self) -> float:
        """Bytes stored: dense elements x dtype, or non-zeros plus a 2-byte index each if
        sparse; plus the quantisation scales (one per ``scale_group`` elements)."""
        scales = 0.0
        if self.scale_bytes:
            groups = math.ceil(self.numel / self.scale_group) if self.scale_group else 1
            scales = groups * self.scale_bytes
        if self.density >= 1.0:
            return float(self.numel * self.dtype.nbytes) + scales
        return self.numel * self.density * (self.dtype.nbytes + 2) + scales

    def renamed(self, name: str, role: TensorRole | None = None) -> "Tensor":
        return Tensor(name, self.shape, self.dtype, role or self.role, self.density, self.scale_group,
                      self.scale_bytes)
