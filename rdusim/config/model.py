"""Model configurations (models/*.yaml): Hugging Face config.json fields, Llama naming.

Fields keep the Hugging Face LlamaConfig names. Families whose HF config uses other
names (Falcon's n_head/num_kv_heads, BLOOM's n_layer/n_head, OPT's ffn_dim) are written
with the Llama names; the file says which HF field each came from.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rdusim.config.formats import Formats, ResolvedFormats
from rdusim.config.strict import Ctx, build, positive
from rdusim.config.yamlio import load_yaml
from rdusim.errors import InputError
from rdusim.paths import DATA_ROOT
from rdusim.graph.tensor import DType


class Activation(enum.Enum):
    SILU = "silu"
    GELU = "gelu"              # HF gelu / gelu_new / bloom_gelu (tanh approximation)
    RELU = "relu"
    QUICK_GELU = "quick_gelu"  # CLIP: x * sigmoid(1.702 x)


class NormKind(enum.Enum):
    RMSNORM = "rmsnorm"
    LAYERNORM = "layernorm"


class PositionKind(enum.Enum):
    ROPE = "rope"
    ALIBI = "alibi"
    LEARNED = "learned"


@dataclass(frozen=True)
class VisionConfig:
    """A CLIP ViT image encoder (ViT-L/14-336 for LLaVA) and its MLP projector into the LM.

    The encoder is pre-LN with LayerNorms and linears that all carry biases, a bias-free
    patch-embedding convolution, a class token and learned position embeddings. The
    projector is ``projector_layers`` linears with biases and ``projector_act`` between
    them (LLaVA-1.5 mlp2x_gelu: 2 layers). Features are taken from layer
    ``feature_layer`` (negative counts from the end, LLaVA uses -2) without the class token.
    """

    hidden_size: int = field(metadata=positive())
    intermediate_size: int = field(metadata=positive())
    num_attention_heads: int = field(metadata=positive())
    num_hidden_layers: int = field(metadata=positive())
    image_size: int = field(metadata=positive())
    patch_size: int = field(metadata=positive())
    num_channels: int = field(default=3, metadata=positive())
    hidden_act: Activation = Activation.QUICK_GELU
    projector_layers: int = field(default=2, metadata=positive())   # mlp2x_gelu
    projector_act: Activation = Activation.GELU
    feature_layer: int = -2
    images_per_sequence: int = field(default=1, metadata=positive())

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError("image_size", f"a multiple of patch_size ({self.patch_size})", self.image_size)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size", f"a multiple of num_attention_heads ({self.num_attention_heads})",
                             self.hidden_size)
        if not -self.num_hidden_layers <= self.feature_layer < 0:
            raise ValueError("feature_layer", f"a negative layer index in -{self.num_hidden_layers}..-1",
                             self.feature_layer)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def image_tokens(self) -> int:
        """Tokens the images of one sequence add to the LM sequence."""
        return self.num_patches * self.images_per_sequence


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: str
    hidden_size: int = field(metadata=positive())
    intermediate_size: int = field(metadata=positive())
    num_attention_heads: int = field(metadata=positive())
    num_key_value_heads: int = field(metadata=positive())
    num_hidden_layers: int = field(metadata=positive())
    vocab_size: int = field(metadata=positive())
    max_position_embeddings: int = field(metadata=positive())
    learned_position_offset: int = field(default=0, metadata={"ge": 0})  # OPT: 2 extra learned rows
    hidden_act: Activation = Activation.SILU
    mlp_gated: bool = True                 # SwiGLU-style gate/up/down
    norm: NormKind = NormKind.RMSNORM
    position_embedding: PositionKind = PositionKind.ROPE
    parallel_attn: bool = False            # attention and MLP read the same input (Falcon)
    parallel_attn_norms: int = 1           # Falcon-40B new_decoder_architecture: ln_attn + ln_mlp
    attention_bias: bool = False           # biases on q/k/v/o
    mlp_bias: bool = False                 # biases on MLP linears
    embedding_norm: bool = False           # BLOOM word_embeddings_layernorm
    tie_word_embeddings: bool = False
    sliding_window: Optional[int] = None
    num_local_experts: int = field(default=1, metadata=positive())
    num_experts_per_tok: int = field(default=1, metadata=positive())
    # MoE: each expert's share of a layer's token-to-expert assignments, most loaded first,
    # the same at every layer (rdusim.finetune.expert_load); None: the expected load, even
    expert_load: Optional[tuple[float, ...]] = None
    torch_dtype: DType = DType.BF16
    formats: Formats = Formats()           # stored/compute formats (weights, KV cache, compute)
    vision: Optional[VisionConfig] = None
    published_params: Optional[float] = None   # for the library's own check, with its source
    published_params_source: str = ""
    # the published figure counts a tied LM head a second time (a checkpoint storing both)
    published_params_counts_tied_head: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size", f"a multiple of num_attention_heads ({self.num_attention_heads})",
                             self.hidden_size)
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_key_value_heads", f"a divisor of num_attention_heads ({self.num_attention_heads})",
                             self.num_key_value_heads)
        if self.parallel_attn_norms not in (1, 2):
            raise ValueError("parallel_attn_norms", "1 (one shared norm) or 2 (ln_attn and ln_mlp)",
                             self.parallel_attn_norms)
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError("sliding_window", "a positive number of tokens or null", self.sliding_window)
        try:
            self.formats.resolved(self.torch_dtype)
        except ValueError as exc:
            raise ValueError(f"formats.{exc.args[0]}", *exc.args[1:]) from None
        if self.num_experts_per_tok > self.num_local_experts:
            raise ValueError("num_experts_per_tok", f"<= num_local_experts ({self.num_local_experts})",
                             self.num_experts_per_tok)
        if self.expert_load is not None and (len(self.expert_load) != self.num_local_experts
                                             or min(self.expert_load) < 0 or abs(sum(self.expert_load) - 1) > 1e-9):
            raise ValueError("expert_load", f"{self.num_local_experts} non-negative shares summing to 1",
                             self.expert_load)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def is_moe(self) -> bool:
        return self.num_local_experts > 1

    @property
    def position_table_rows(self) -> int:
        """Rows of a learned position-embedding table."""
        return self.max_position_embeddings + self.learned_position_offset

    @property
    def fmt(self) -> "ResolvedFormats":
        """The model's formats with the model dtype filled in (rdusim.config.formats)."""
        return self.formats.resolved(self.torch_dtype)

    @property
    def kv_dtype(self) -> DType:
        """The format K and V are stored in (``formats.kv_cache``, else the model dtype)."""
        return self.formats.kv_cache or self.torch_dtype

    @property
    def kv_scale_group(self) -> int:
        """KV elements per scale (formats.kv_group_size, else one scale per head vector)."""
        return self.fmt.kv_scale_group or self.head_dim

    @property
    def kv_bytes_per_head_vector(self) -> float:
        """One K (or V) head vector of one token at the KV format, with its scales (int8/int4)."""
        f = self.fmt
        scales = math.ceil(self.head_dim / self.kv_scale_group) * f.kv_scale_bytes if f.kv_scale_bytes else 0
        return self.head_dim * self.kv_dtype.nbytes + scales

    @property
    def kv_cache_bytes_per_token(self) -> int:
        """K and V for every layer, one token of one sequence, at the KV-cache format."""
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.kv_bytes_per_head_vector

    def kv_cache_bytes(self, tokens: int) -> int:
        """KV cache of one sequence holding ``tokens`` tokens (a sliding window keeps at
        most ``sliding_window`` of them: a rolling buffer)."""
        kept = min(tokens, self.sliding_window) if self.sliding_window else tokens
        return kept * self.kv_cache_bytes_per_token

    def kv_cache_bytes_per_rank(self, tokens: int, tp: int) -> int:
        """The KV cache one tensor-parallel rank holds for one sequence of ``tokens`` tokens:
        its share of the KV heads (a head is replicated when there are fewer than ranks).
        The one KV formula every engine, memory check and study uses."""
        kept = min(tokens, self.sliding_window) if self.sliding_window else tokens
        heads = max(1, self.num_key_value_heads // tp)
        return 2 * self.num_hidden_layers * heads * self.kv_bytes_per_head_vector * kept

    def with_formats(self, formats: Formats) -> "ModelConfig":
        """This model stored and computed in ``formats``."""
        import dataclasses
        return dataclasses.replace(self, formats=formats)


MODELS_DIR = DATA_ROOT / "models"    # the shipped models (checkout or installed wheel)


def model_path(name_or_path: str) -> Path:
    """A model name in models/ (``llama2-7b``) or a path to a YAML file (as given, else
    the same relative path in the shipped data)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if p.exists() or p.is_absolute():
            return p
        shipped = MODELS_DIR.parent / p
        return shipped if shipped.is_file() else p
    return MODELS_DIR / f"{name_or_path}.yaml"


def load_model(name_or_path: str) -> ModelConfig:
    p = model_path(name_or_path)
    if not p.is_file():
        known = sorted(f.stem for f in MODELS_DIR.glob("*.yaml")) if MODELS_DIR.is_dir() else []
        raise InputError(str(p), "model", f"a model name in models/ (one of {known}) or a YAML path",
                         name_or_path)
    return build(ModelConfig, load_yaml(p), Ctx(file=str(p)))
