"""The LLaVA vision path: a CLIP ViT encoder and the MLP projector into the language model.

Run once per image in prefill (and training); decode reuses the image tokens already in
the KV cache. The encoder is replicated on every TP rank (0.3 B parameters; no
collectives). As in the reference implementations (HF LlavaForConditionalGeneration and
the original LLaVA code), every encoder layer runs and the features are read from
``feature_layer`` (-2: the output of the penultimate layer), without the class token.
Ops are named ``vision.*`` (layers ``vision.L<i>.*``, block ``vision.L<i>``) with
``layer = -1`` and the same tags as decoder layers.
"""

from __future__ import annotations

from rdusim.config.model import ModelConfig, NormKind, PositionKind, VisionConfig
from rdusim.graph import ops as O
from rdusim.graph.decoder import LayerBuilder
from rdusim.graph.ops import Op
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import Tensor, TensorRole

W = TensorRole.WEIGHT


def encoder_config(cfg: ModelConfig) -> ModelConfig:
    """The vision tower as a (bidirectional) transformer config for the layer builder."""
    v: VisionConfig = cfg.vision
    return ModelConfig(
        name=f"{cfg.name}.vision", family="clip", hidden_size=v.hidden_size,
        intermediate_size=v.intermediate_size, num_attention_heads=v.num_attention_heads,
        num_key_value_heads=v.num_attention_heads, num_hidden_layers=v.num_hidden_layers,
        vocab_size=1, max_position_embeddings=v.num_patches + 1, hidden_act=v.hidden_act,
        mlp_gated=False, norm=NormKind.LAYERNORM, position_embedding=PositionKind.LEARNED,
        attention_bias=True, mlp_bias=True, torch_dtype=cfg.torch_dtype)


def vision_ops(cfg: ModelConfig, batch: int) -> tuple[list[Op], Tensor]:
    """Ops that turn ``batch`` sequences' images into LM-width image tokens
    ``(batch, image_tokens, hidden_size)``."""
    v = cfg.vision
    enc = encoder_config(cfg)
    dt, hv = cfg.torch_dtype, v.hidden_size
    images = batch * v.images_per_sequence
    side = v.image_size // v.patch_size
    patches, tokens = v.num_patches, v.num_patches + 1
    patch_in = v.num_channels * v.patch_size ** 2
    ops: list[Op] = []

    def add(op: Op) -> Tensor:
        ops.append(op)
        return op.outputs[0]

    def wt(name: str, *shape: int) -> Tensor:
        return Tensor(f"vision.{name}", tuple(shape), dt, W)

    kw = {"tag": "vision.embed"}
    pixels = Tensor("vision.pixels", (images, v.num_channels, side, v.patch_size, side, v.patch_size),
                    dt, TensorRole.INPUT)
    # patchify: (n, c, ph, p, pw, p) -> (n, ph, pw, c, p, p): the conv's im2col, a copy
    cols = add(O.transpose("vision.patchify", pixels, (0, 2, 4, 1, 3, 5), "vision.patch_cols", **kw))
    cols = add(O.reshape("vision.patch_rows", cols, (images, patches, patch_in), "vision.patch_in", **kw))
    emb = add(O.linear("vision.patch_embed", cols, wt("patch_embed.weight", patch_in, hv),
                       "vision.patch_emb", **kw))
    # the class token is one learned vector, broadcast over images: count it once
    cls_w = wt("class_embedding", hv)
    cls = add(O.elementwise("vision.class_token", [cls_w], "vision.cls", out_shape=(images, 1, hv),
                            flops_per_element=0.0, **kw))
    x = add(O.concat("vision.cat_class", [cls, emb], 1, "vision.tokens", **kw))
    x = add(O.elementwise("vision.pos_add", [x, wt("position_embedding", tokens, hv)], "vision.embedded", **kw))
    x = add(O.norm("vision.pre_norm", x, [wt("pre_norm.weight", hv), wt("pre_norm.bias", hv)],
                   "vision.pre_norm.out", rms=False, tag="norm"))
    keep = v.num_hidden_layers + v.feature_layer     # layers whose output LLaVA reads
    features = None
    for i in range(v.num_hidden_layers):
        lb = LayerBuilder(enc, Phase.PREFILL, images, tokens, 1, -1, kv_cache=False, prefix=f"vision.L{i}.")
        x = lb.build(x)
        ops.extend(lb.ops)
        if i == keep:
            features = x
    # the pooled class-token output (unused by LLaVA, computed by the reference code)
    pooled = add(O.slice_("vision.pool", x, 1, 0, 1, "vision.pooled", tag="vision.pool"))
    add(O.norm("vision.post_norm", pooled, [wt("post_norm.weight", hv), wt("post_norm.bias", hv)],
               "vision.post_norm.out", rms=False, tag="norm"))
    y = add(O.slice_("vision.select", features, 1, 1, tokens, "vision.features", tag="vision.select"))
    # projector: linear -> act -> linear ... (mlp2x_gelu), every linear with a bias
    width = cfg.hidden_size
    n_in = hv
    for j in range(v.projector_layers):
        if j:
            y = add(O.elementwise(f"projector.act{j}", [y], f"projector.act{j}.out",
                                  flops_per_element=O.ACT_FLOPS[v.projector_act.value], tag="projector.act"))
        name = f"projector.linear{j}"
        y = add(O.linear(name, y, Tensor(f"{name}.weight", (n_in, width), dt, W), f"{name}.out",
                         tag="projector"))
        y = add(O.elementwise(f"{name}.bias_add", [y, Tensor(f"{name}.bias", (width,), dt, W)],
                              f"{name}.biased", tag="projector.bias"))
        n_in = width
    y = add(O.reshape("vision.to_tokens", y, (batch, v.image_tokens, width), "vision.image_tokens",
                      tag="vision.select"))
    return ops, y



def vision_weights(cfg: ModelConfig) -> list[Tensor]:
    """Weights of the encoder and projector (held in decode, where they do not run)."""
    ops, _ = vision_ops(cfg, 1)
    seen: dict[str, Tensor] = {}
    for op in ops:
        for t in op.inputs:
            if t.role == TensorRole.WEIGHT:
                seen.setdefault(t.name, t)
    return list(seen.values())
