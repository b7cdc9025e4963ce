"""Tensors: a name, a shape, a dtype and a role (activation, weight, KV cache...)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import cached_property


class DType(enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"

    @property
    def nbytes(self) -> int:
        return {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}[self.value]


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

    def __post_init__(self) -> None:
        if any((not isinstance(d, int)) or d <= 0 for d in self.shape):
            raise ValueError(f"tensor {self.name}: every dimension must be a positive int, got {self.shape}")
        if not 0 < self.density <= 1:
            raise ValueError(f"tensor {self.name}: density must be in (0, 1], got {self.density}")

    @cached_property
    def numel(self) -> int:
        return math.prod(self.shape)

    @cached_property
    def nbytes(self) -> float:
        """Bytes stored: dense elements x dtype, or non-zeros plus a 2-byte index each if sparse."""
        if self.density >= 1.0:
            return float(self.numel * self.dtype.nbytes)
        return self.numel * self.density * (self.dtype.nbytes + 2)

    def renamed(self, name: str, role: TensorRole | None = None) -> "Tensor":
        return Tensor(name, self.shape, self.dtype, role or self.role, self.density)
