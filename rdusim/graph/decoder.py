"""One decoder layer of the Llama family and its variants, per tensor-parallel rank.

Covers multi-head, grouped-query and multi-query attention, RoPE or ALiBi, RMSNorm or
LayerNorm, SwiGLU or plain GeLU/ReLU MLPs, optional biases, parallel attention+MLP
(Falcon), sliding-window attention (Mistral) and mixture-of-experts FFNs (Mixtral).
Megatron-style TP: column-parallel QKV/gate/up, row-parallel O/down, one all-reduce
after attention and one after the MLP (a single one when they run in parallel).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.config.model import Activation, ModelConfig, NormKind, PositionKind
from rdusim.graph import ops as O
from rdusim.graph.ops import Op
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import Tensor, TensorRole

W = TensorRole.WEIGHT


@dataclass(frozen=True)
class LayerShape:
    """Per-rank sizes of one layer under tensor parallelism."""

    cfg: ModelConfig
    tp: int

    @property
    def heads(self) -> int:
        return self.cfg.num_attention_heads // self.tp

    @property
    def kv_heads(self) -> int:
        # MQA/GQA with fewer KV heads than ranks replicates KV heads
        return max(1, self.cfg.num_key_value_heads // self.tp)

    @property
    def ffn(self) -> int:
        return self.cfg.intermediate_size // self.tp


class LayerBuilder:
    """Appends the ops of one layer to a list; names are prefixed ``L<i>.``."""

    def __init__(self, cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int, layer: int):
        self.cfg, self.phase, self.batch, self.seq, self.tp, self.layer = cfg, phase, batch, seq, tp, layer
        self.shape = LayerShape(cfg, tp)
        self.dt = cfg.torch_dtype
        self.ops: list[Op] = []
        self.p = f"L{layer}."
        # tokens processed now, and the context each attends to
        self.q_len = 1 if phase == Phase.DECODE else seq
        ctx = seq + 1 if phase == Phase.DECODE else seq
        self.ctx = min(ctx, cfg.sliding_window) if cfg.sliding_window else ctx

    # ---- helpers ----
    def add(self, op: Op) -> Tensor:
        self.ops.append(op)
        return op.outputs[0]

    def w(self, name: str, *shape: int) -> Tensor:
        return Tensor(self.p + name, tuple(shape), self.dt, W)

    def kw(self, tag: str) -> dict:
        return {"layer": self.layer, "tag": tag}

    def norm(self, x: Tensor, name: str) -> Tensor:
        h = self.cfg.hidden_size
        rms = self.cfg.norm == NormKind.RMSNORM
        params = [self.w(f"{name}.weight", h)] + ([] if rms else [self.w(f"{name}.bias", h)])
        return self.add(O.norm(self.p + name, x, params, self.p + name + ".out", rms=rms, **self.kw("norm")))

    def linear(self, x: Tensor, name: str, n_in: int, n_out: int, bias: bool, tag: str) -> Tensor:
        y = self.add(O.linear(self.p + name, x, self.w(f"{name}.weight", n_in, n_out), self.p + name + ".out",
                              **self.kw(tag)))
        if bias:
            y = self.add(O.elementwise(self.p + name + ".bias_add", [y, self.w(f"{name}.bias", n_out)],
                                       self.p + name + ".biased", **self.kw(tag + ".bias")))
        return y

    # ---- attention ----
    def attention(self, x: Tensor) -> Tensor:
        cfg, s = self.cfg, self.shape
        b, q, d = self.batch, self.q_len, cfg.head_dim
        h, kvh = s.heads, s.kv_heads
        g = h // kvh
        qkv_out = (h + 2 * kvh) * d
        qkv = self.linear(x, "attn.qkv", cfg.hidden_size, qkv_out, cfg.attention_bias, "attn.qkv")
        qkv5 = self.add(O.reshape(self.p + "attn.split", qkv, (b, q, h + 2 * kvh, d), self.p + "attn.heads",
                                  **self.kw("attn.split")))
        # (b, q, heads, d) -> (b, heads, q, d): an access pattern when fused
        qkv_t = self.add(O.transpose(self.p + "attn.to_heads", qkv5, (0, 2, 1, 3), self.p + "attn.heads_t",
                                     **self.kw("attn.transpose")))
        if cfg.position_embedding == PositionKind.ROPE:
            qkv_t = self.add(O.rotary(self.p + "attn.rope", qkv_t, self.p + "attn.roped", **self.kw("attn.rope")))
        dt = self.dt
        k_new = Tensor(self.p + "kv.k_new", (b, kvh, q, d), dt, TensorRole.KV_CACHE)
        v_new = Tensor(self.p + "kv.v_new", (b, kvh, q, d), dt, TensorRole.KV_CACHE)
        # write this step's K and V into the cache (bytes written = the new entries)
        self.ops.append(Op(self.p + "kv.append", O.OpKind.ELEMENTWISE, (qkv_t,), (k_new, v_new), 0.0,
                           bytes_read=0.0, bytes_written=k_new.nbytes + v_new.nbytes,
                           layer=self.layer, tag="attn.kv_append"))
        qg = Tensor(self.p + "attn.q", (b, kvh, g * q, d), dt)
        self.add(O.reshape(self.p + "attn.q_group", qkv_t, qg.shape, qg.name, **self.kw("attn.split"))
                 if qkv_t.numel == qg.numel else
                 Op(self.p + "attn.q_group", O.OpKind.RESHAPE, (qkv_t,), (qg,), 0.0, 0.0, 0.0,
                    layer=self.layer, tag="attn.split"))
        if self.phase == Phase.DECODE:
            k = Tensor(self.p + "kv.k", (b, kvh, self.ctx, d), dt, TensorRole.KV_CACHE)
            v = Tensor(self.p + "kv.v", (b, kvh, self.ctx, d), dt, TensorRole.KV_CACHE)
        else:
            k = Tensor(self.p + "kv.k", (b, kvh, self.ctx, d), dt, TensorRole.KV_CACHE)
            v = Tensor(self.p + "kv.v", (b, kvh, self.ctx, d), dt, TensorRole.KV_CACHE)
        scores = self.add(O.gemm(self.p + "attn.score", qg, k, self.p + "attn.scores", transpose_b=True,
                                 **self.kw("attn.score")))
        if cfg.position_embedding == PositionKind.ALIBI:
            scores = self.add(O.elementwise(self.p + "attn.alibi", [scores], self.p + "attn.alibi_scores",
                                            **self.kw("attn.alibi")))
        probs = self.add(O.softmax(self.p + "attn.softmax", scores, self.p + "attn.probs", **self.kw("attn.softmax")))
        ctx = self.add(O.gemm(self.p + "attn.context", probs, v, self.p + "attn.ctx", **self.kw("attn.context")))
        ctx4 = self.add(O.reshape(self.p + "attn.ungroup", ctx, (b, h, q, d), self.p + "attn.ctx_heads",
                                  **self.kw("attn.merge")))
        merged = self.add(O.transpose(self.p + "attn.from_heads", ctx4, (0, 2, 1, 3), self.p + "attn.ctx_t",
                                      **self.kw("attn.transpose")))
        flat = self.add(O.reshape(self.p + "attn.merge", merged, (b, q, h * d), self.p + "attn.ctx_flat",
                                  **self.kw("attn.merge")))
        return self.linear(flat, "attn.o", h * d, cfg.hidden_size, cfg.attention_bias, "attn.o")

    # ---- MLP ----
    def mlp(self, x: Tensor, prefix: str = "mlp") -> Tensor:
        cfg, f = self.cfg, self.shape.ffn
        act_flops = 8.0 if cfg.hidden_act == Activation.GELU else 4.0
        if cfg.mlp_gated:
            gu = self.linear(x, f"{prefix}.gate_up", cfg.hidden_size, 2 * f, cfg.mlp_bias, "mlp.gate_up")
            hmid = self.add(O.glu(self.p + f"{prefix}.act_mul", gu, self.p + f"{prefix}.hidden",
                                  act_flops=act_flops, **self.kw("mlp.act")))
        else:
            up = self.linear(x, f"{prefix}.up", cfg.hidden_size, f, cfg.mlp_bias, "mlp.up")
            hmid = self.add(O.elementwise(self.p + f"{prefix}.act", [up], self.p + f"{prefix}.hidden",
                                          flops_per_element=act_flops, **self.kw("mlp.act")))
        return self.linear(hmid, f"{prefix}.down", f, cfg.hidden_size, cfg.mlp_bias, "mlp.down")

    def moe(self, x: Tensor) -> Tensor:
        """Top-k routed experts. Tokens are spread evenly over experts (expected load)."""
        cfg = self.cfg
        e, k = cfg.num_local_experts, cfg.num_experts_per_tok
        logits = self.linear(x, "moe.router", cfg.hidden_size, e, False, "moe.router")
        self.add(O.softmax(self.p + "moe.router_softmax", logits, self.p + "moe.router_probs", **self.kw("moe.router")))
        tokens = self.batch * self.q_len
        out = None
        for i in range(e):
            # each expert sees about tokens*k/e tokens; in decode with few tokens, every
            # expert that is hit must still stream its weights
            n_tok = max(1, round(tokens * k / e))
            xi = Tensor(f"{self.p}moe.e{i}.in", (n_tok, cfg.hidden_size), self.dt)
            self.ops.append(Op(f"{self.p}moe.e{i}.dispatch", O.OpKind.ELEMENTWISE, (x,), (xi,), 0.0,
                               xi.nbytes, xi.nbytes, layer=self.layer, tag="moe.dispatch"))
            yi = self.mlp(xi, prefix=f"moe.e{i}")
            out = yi if out is None else self.add(O.elementwise(
                f"{self.p}moe.e{i}.combine", [out, yi], f"{self.p}moe.e{i}.sum",
                out_shape=yi.shape, **self.kw("moe.combine")))
        return self.add(O.reshape(self.p + "moe.gather", out, x.shape, self.p + "moe.out", **self.kw("moe.combine"))
                        if out.numel == x.numel else
                        Op(self.p + "moe.gather", O.OpKind.ELEMENTWISE, (out,), (Tensor(self.p + "moe.out", x.shape, self.dt),),
                           0.0, out.nbytes, x.numel * self.dt.nbytes, layer=self.layer, tag="moe.combine"))

    def ffn(self, x: Tensor) -> Tensor:
        return self.moe(x) if self.cfg.num_local_experts > 1 else self.mlp(x)

    def allreduce(self, x: Tensor, name: str) -> Tensor:
        if self.tp == 1:
            return x
        return self.add(O.allreduce(self.p + name, x, self.tp, self.p + name + ".out", **self.kw("tp.allreduce")))

    def residual(self, a: Tensor, b: Tensor, name: str) -> Tensor:
        return self.add(O.elementwise(self.p + name, [a, b], self.p + name + ".out", **self.kw("residual")))

    # ---- the layer ----
    def build(self, x: Tensor) -> Tensor:
        cfg = self.cfg
        if cfg.parallel_attn:
            xa = self.norm(x, "ln_attn")
            xm = self.norm(x, "ln_mlp") if cfg.parallel_attn_norms == 2 else xa
            a = self.attention(xa)
            m = self.ffn(xm)
            am = self.add(O.elementwise(self.p + "parallel.sum", [a, m], self.p + "parallel.out",
                                        **self.kw("residual")))
            am = self.allreduce(am, "tp.allreduce")
            return self.residual(x, am, "residual")
        a = self.allreduce(self.attention(self.norm(x, "input_norm")), "tp.allreduce_attn")
        h = self.residual(x, a, "residual_attn")
        m = self.allreduce(self.ffn(self.norm(h, "post_attn_norm")), "tp.allreduce_mlp")
        return self.residual(h, m, "residual_mlp")


def decoder_layer(cfg: ModelConfig, phase: Phase, batch: int, seq: int, x: Tensor,
                  *, tp: int = 1, layer: int = 0) -> tuple[list[Op], Tensor]:
    """Ops of one decoder layer on one TP rank, and its output tensor."""
    b = LayerBuilder(cfg, phase, batch, seq, tp, layer)
    out = b.build(x)
    return b.ops, out
