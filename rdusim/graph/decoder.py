"""One decoder layer of the Llama family and its variants, per tensor-parallel rank.

Covers multi-head, grouped-query and multi-query attention, RoPE or ALiBi, RMSNorm or
LayerNorm, SwiGLU or plain GeLU/ReLU MLPs, optional biases, parallel attention+MLP
(Falcon), sliding-window attention (Mistral) and mixture-of-experts FFNs (Mixtral); the
same builder makes the bidirectional, cache-free layers of a ViT encoder (``kv_cache=False``).
Megatron-style TP: column-parallel QKV/gate/up, row-parallel O/down, one all-reduce
after attention and one after the MLP (a single one when they run in parallel). KV
heads fewer than ranks are replicated (each rank keeps one).

Modelling choices: attention is computed as score GEMM -> softmax -> context GEMM with
the full (unmasked) score matrix, as an unfused implementation does; the 1/sqrt(d) scale
and the causal mask are part of the softmax op. With a sliding window shorter than the
context each query attends to ``window`` keys: the score GEMM runs against a
window-long slice of K. Linear biases are separate ops (tag ``<linear>.bias``).
Number formats (rdusim.config.formats) add ops of their own: a weight dequantised on the fly
(``weight.dequant``), a quantised GEMM's input (``act.quant``), K and V read from a quantised
cache (``attn.kv_dequant``); the fusion rules of each machine decide where they run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rdusim.config.model import ModelConfig, NormKind, PositionKind
from rdusim.graph import ops as O
from rdusim.graph.ops import Op, OpKind
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import Tensor, TensorRole
from rdusim.config.formats import DEQUANT_FLOPS_PER_ELEMENT
from rdusim.config.formats import QUANT_FLOPS_PER_ELEMENT

W = TensorRole.WEIGHT
DEQUANT_TAG = "weight.dequant"    # a weight dequantised on the fly (rdusim.config.formats rule 3)
MATERIALISED = "materialised"     # op attr: its implementation writes its output to memory (no fusion)
QUANT_TAG = "act.quant"           # a GEMM input quantised to the compute format (formats rule 5)
KV_DEQUANT_TAG = "attn.kv_dequant"  # K or V read from a quantised cache, dequantised (formats rule 6)


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


@dataclass
class LayerBuilder:
    """Appends the ops of one layer to ``ops``; names are prefixed ``L<i>.`` (or ``prefix``).

    ``idle_weights`` collects weights the rank holds but this step does not read
    (MoE experts no token is routed to)."""

    cfg: ModelConfig
    phase: Phase
    batch: int
    seq: int
    tp: int = 1
    layer: int = 0
    weight_density: float = 1.0
    kv_cache: bool = True            # False: encoder layer (bidirectional, no cache)
    prefix: str = ""                 # default "L<layer>."
    new_tokens: int = 1              # decode: tokens computed over the cache (k+1 to verify a draft)
    ops: list[Op] = field(default_factory=list)
    idle_weights: list[Tensor] = field(default_factory=list)
    pending_bias: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shape = LayerShape(self.cfg, self.tp)
        self.dt = self.cfg.torch_dtype
        self.kv_dt = self.cfg.kv_dtype       # K and V as stored (formats.kv_cache)
        # int8/int4 K and V carry one scale per kv_scale_group elements (a group never spans head vectors)
        f = self.cfg.fmt
        self.kv_scales = ({"scale_group": self.cfg.kv_scale_group, "scale_bytes": f.kv_scale_bytes}
                          if f.kv_scale_bytes else {})
        self.p = self.prefix or f"L{self.layer}."
        self.block = self.p.rstrip(".")
        self.decode = self.phase == Phase.DECODE
        # tokens processed now, and how many keys each query attends to
        self.q_len = self.new_tokens if self.decode else self.seq
        ctx = self.seq + self.new_tokens if self.decode else self.seq
        window = self.cfg.sliding_window
        self.ctx = min(ctx, window) if window else ctx
        self.writes_cache = self.kv_cache and self.phase != Phase.TRAIN
        self.quantised: dict[str, Tensor] = {}   # activation -> its quantised copy (formats rule 5)

    # ---- helpers ----
    def add(self, op: Op) -> Tensor:
        self.ops.append(op)
        return op.outputs[0]

    def w(self, name: str, *shape: int, sparse: bool = False) -> Tensor:
        return Tensor(self.p + name, tuple(shape), self.dt, W, self.weight_density if sparse else 1.0)

    def stored_w(self, name: str, *shape: int, sparse: bool = True) -> Tensor:
        """A linear weight of a decoder layer as stored: at the weight format, with its scales
        (rdusim.config.formats); encoder layers keep the model dtype."""
        if not self.kv_cache:
            return self.w(name, *shape, sparse=sparse)
        f = self.cfg.fmt
        return Tensor(self.p + name, tuple(shape), f.weight, W, self.weight_density if sparse else 1.0,
                      f.scale_group, f.scale_bytes)

    def gemm_w(self, name: str, *shape: int, sparse: bool = True) -> Tensor:
        """The weight operand a GEMM reads: the stored weight, or (formats rule 3) its
        dequantisation to the compute format, an op of the graph (2 FLOPs per element)."""
        stored = self.stored_w(name, *shape, sparse=sparse)
        if not self.kv_cache or not self.cfg.fmt.dequantises:
            return stored
        out = Tensor(stored.name + ".dequantized", stored.shape, self.cfg.fmt.compute, TensorRole.ACTIVATION,
                     stored.density)
        self.ops.append(Op(stored.name + ".dequant", OpKind.ELEMENTWISE, (stored,), (out,),
                           DEQUANT_FLOPS_PER_ELEMENT * stored.numel * stored.density,
                           bytes_read=stored.nbytes, bytes_written=out.nbytes, **self.kw(DEQUANT_TAG)))
        return out

    def quantise(self, x: Tensor) -> Tensor:
        """``x`` at the compute format, for a quantised GEMM (formats rule 5): one ``act.quant``
        op per activation (static per-tensor scale: multiply and cast, 2 FLOPs per element)."""
        got = self.quantised.get(x.name)
        if got is None:
            got = Tensor(x.name + ".q", x.shape, self.cfg.fmt.compute, TensorRole.ACTIVATION)
            self.ops.append(Op(x.name + ".quant", OpKind.ELEMENTWISE, (x,), (got,), QUANT_FLOPS_PER_ELEMENT * x.numel,
                               bytes_read=x.nbytes, bytes_written=got.nbytes, **self.kw(QUANT_TAG)))
            self.quantised[x.name] = got
        return got

    def dequantise_kv(self, kv: Tensor, name: str) -> Tensor:
        """K or V read from a quantised cache, at the model dtype for attention (formats rule 6)."""
        if not self.kv_dt.is_quantized or self.kv_dt == self.dt:
            return kv
        out = Tensor(kv.name + ".dequantized", kv.shape, self.dt, TensorRole.ACTIVATION)
        self.ops.append(Op(self.p + name, OpKind.ELEMENTWISE, (kv,), (out,), DEQUANT_FLOPS_PER_ELEMENT * kv.numel,
                           bytes_read=kv.nbytes, bytes_written=out.nbytes, **self.kw(KV_DEQUANT_TAG)))
        return out

    def kw(self, tag: str) -> dict:
        return {"layer": self.layer, "tag": tag, "block": self.block}

    def norm(self, x: Tensor, name: str) -> Tensor:
        h = x.shape[-1]
        rms = self.cfg.norm == NormKind.RMSNORM
        params = [self.w(f"{name}.weight", h)] + ([] if rms else [self.w(f"{name}.bias", h)])
        return self.add(O.norm(self.p + name, x, params, self.p + name + ".out", rms=rms, **self.kw("norm")))

    def linear(self, x: Tensor, name: str, n_in: int, n_out: int, bias: bool, tag: str,
               sparse: bool = True, row_parallel: bool = False) -> Tensor:
        """A linear layer; the bias of a row-parallel one (o, down) waits for the all-reduce.
        Its weight is at the weight format unless ``sparse`` is False (the MoE router)."""
        weight = self.gemm_w(f"{name}.weight", n_in, n_out) if sparse else self.w(f"{name}.weight", n_in, n_out)
        if weight.dtype.is_quantized and weight.dtype == self.cfg.fmt.compute:   # W8A8: the input too
            x = self.quantise(x)
        y = self.add(O.linear(self.p + name, x, weight, self.p + name + ".out", out_dtype=self.dt, **self.kw(tag)))
        if bias and row_parallel and self.tp > 1:
            self.pending_bias.append((name, tag))
        elif bias:
            y = self.bias(y, name, tag)
        return y

    def bias(self, y: Tensor, name: str, tag: str) -> Tensor:
        return self.add(O.elementwise(self.p + name + ".bias_add", [y, self.w(f"{name}.bias", y.shape[-1])],
                                      self.p + name + ".biased", **self.kw(tag + ".bias")))

    def _view(self, fn, name: str, x: Tensor, *args, tag: str) -> Tensor:
        return self.add(fn(self.p + name, x, *args, self.p + name + ".out", **self.kw(tag)))

    # ---- attention ----
    def attention(self, x: Tensor) -> Tensor:
        cfg, s = self.cfg, self.shape
        b, q, d = self.batch, self.q_len, cfg.head_dim
        h, kvh = s.heads, s.kv_heads
        g = h // kvh
        qkv = self.linear(x, "attn.qkv", cfg.hidden_size, (h + 2 * kvh) * d, cfg.attention_bias, "attn.qkv")
        heads = self._view(O.reshape, "attn.split", qkv, (b, q, h + 2 * kvh, d), tag="attn.split")
        # (b, q, heads, d) -> (b, heads, q, d): an access pattern when fused
        heads_t = self._view(O.transpose, "attn.to_heads", heads, (0, 2, 1, 3), tag="attn.transpose")
        qh = self._view(O.slice_, "attn.q", heads_t, 1, 0, h, tag="attn.split")
        kh = self._view(O.slice_, "attn.k", heads_t, 1, h, h + kvh, tag="attn.split")
        vh = self._view(O.slice_, "attn.v", heads_t, 1, h + kvh, h + 2 * kvh, tag="attn.split")
        if cfg.position_embedding == PositionKind.ROPE:
            qh = self.add(O.rotary(self.p + "attn.rope_q", qh, self.p + "attn.q_roped", **self.kw("attn.rope")))
            kh = self.add(O.rotary(self.p + "attn.rope_k", kh, self.p + "attn.k_roped", **self.kw("attn.rope")))
        if self.writes_cache:
            # write this step's K and V into the cache (bytes written = the new entries)
            k_new = Tensor(self.p + "kv.k_new", kh.shape, self.kv_dt, TensorRole.KV_CACHE, **self.kv_scales)
            v_new = Tensor(self.p + "kv.v_new", vh.shape, self.kv_dt, TensorRole.KV_CACHE, **self.kv_scales)
            quant = QUANT_FLOPS_PER_ELEMENT * (k_new.numel + v_new.numel) if self.kv_dt.is_quantized else 0.0
            self.ops.append(Op(self.p + "kv.append", OpKind.ELEMENTWISE, (kh, vh), (k_new, v_new), quant,
                               bytes_read=0.0, bytes_written=k_new.nbytes + v_new.nbytes,
                               **self.kw("attn.kv_append")))
        if self.decode:
            k = Tensor(self.p + "kv.k", (b, kvh, self.ctx, d), self.kv_dt, TensorRole.KV_CACHE,
                       **self.kv_scales)
            v = Tensor(self.p + "kv.v", (b, kvh, self.ctx, d), self.kv_dt, TensorRole.KV_CACHE,
                       **self.kv_scales)
        elif self.ctx < q:   # sliding window shorter than the prompt: window keys per query
            k = self._view(O.slice_, "attn.k_window", kh, 2, 0, self.ctx, tag="attn.split")
            v = self._view(O.slice_, "attn.v_window", vh, 2, 0, self.ctx, tag="attn.split")
        else:
            k, v = kh, vh
        # query heads sharing a KV head are stacked: (b, kvh, g*q, d)
        qg = self._view(O.reshape, "attn.q_group", qh, (b, kvh, g * q, d), tag="attn.split")
        if self.decode:
            k = self.dequantise_kv(k, "attn.k_dequant")
        scores = self.add(O.gemm(self.p + "attn.score", qg, k, self.p + "attn.scores", transpose_b=True,
                                 **self.kw("attn.score")))
        if cfg.position_embedding == PositionKind.ALIBI:
            scores = self.add(O.elementwise(self.p + "attn.alibi", [scores], self.p + "attn.alibi_scores",
                                            **self.kw("attn.alibi")))
        probs = self.add(O.softmax(self.p + "attn.softmax", scores, self.p + "attn.probs", **self.kw("attn.softmax")))
        if self.decode:
            v = self.dequantise_kv(v, "attn.v_dequant")
        ctx = self.add(O.gemm(self.p + "attn.context", probs, v, self.p + "attn.ctx", **self.kw("attn.context")))
        ctx4 = self._view(O.reshape, "attn.ungroup", ctx, (b, h, q, d), tag="attn.merge")
        merged = self._view(O.transpose, "attn.from_heads", ctx4, (0, 2, 1, 3), tag="attn.transpose")
        flat = self._view(O.reshape, "attn.merge", merged, (b, q, h * d), tag="attn.merge")
        return self.linear(flat, "attn.o", h * d, cfg.hidden_size, cfg.attention_bias, "attn.o",
                           row_parallel=True)

    # ---- MLP ----
    def mlp(self, x: Tensor, prefix: str = "mlp") -> Tensor:
        cfg, f = self.cfg, self.shape.ffn
        act_flops = O.ACT_FLOPS[cfg.hidden_act.value]
        if cfg.mlp_gated:
            gu = self.linear(x, f"{prefix}.gate_up", cfg.hidden_size, 2 * f, cfg.mlp_bias, "mlp.gate_up")
            hmid = self.add(O.glu(self.p + f"{prefix}.act_mul", gu, self.p + f"{prefix}.hidden",
                                  act_flops=act_flops, **self.kw("mlp.act")))
        else:
            up = self.linear(x, f"{prefix}.up", cfg.hidden_size, f, cfg.mlp_bias, "mlp.up")
            hmid = self.add(O.elementwise(self.p + f"{prefix}.act", [up], self.p + f"{prefix}.hidden",
                                          flops_per_element=act_flops, **self.kw("mlp.act")))
        return self.linear(hmid, f"{prefix}.down", f, cfg.hidden_size, cfg.mlp_bias, "mlp.down",
                           row_parallel=True)

    def moe(self, x: Tensor) -> Tensor:
        """Top-k routed experts, each a TP-sharded MLP.

        Expected-load model: the tokens*k assignments are spread as evenly as possible
        over min(e, tokens*k) experts; only experts that receive tokens run (and stream
        their weights), the others' weights are held but idle this step."""
        cfg, hdim = self.cfg, self.cfg.hidden_size
        e, k = cfg.num_local_experts, cfg.num_experts_per_tok
        logits = self.linear(x, "moe.router", hdim, e, False, "moe.router", sparse=False)
        probs = self.add(O.softmax(self.p + "moe.router_softmax", logits, self.p + "moe.router_probs",
                                   **self.kw("moe.router")))
        assignments = self.batch * self.q_len * k
        hit = min(e, assignments)
        base, extra = divmod(assignments, hit)
        outs = []
        for i in range(e):
            if i >= hit:
                self.idle_weights.extend(self._expert_weights(f"moe.e{i}"))
                continue
            n_tok = base + (1 if i < extra else 0)
            xi = Tensor(f"{self.p}moe.e{i}.in", (n_tok, hdim), self.dt)
            # gather the rows routed to expert i
            self.ops.append(Op(f"{self.p}moe.e{i}.dispatch", OpKind.ELEMENTWISE, (x, probs), (xi,), 0.0,
                               xi.nbytes, xi.nbytes, **self.kw("moe.dispatch")))
            outs.append(self.mlp(xi, prefix=f"moe.e{i}"))
        # weighted scatter-add of the expert outputs back to token order: 2 FLOPs per element
        y = Tensor(self.p + "moe.out", x.shape, self.dt)
        self.ops.append(Op(self.p + "moe.combine", OpKind.ELEMENTWISE, (*outs, probs), (y,),
                           2.0 * assignments * hdim, sum(t.nbytes for t in outs) + probs.nbytes,
                           y.nbytes, **self.kw("moe.combine")))
        return y

    def _expert_weights(self, prefix: str) -> list[Tensor]:
        cfg, f = self.cfg, self.shape.ffn
        shapes = ([("gate_up", cfg.hidden_size, 2 * f)] if cfg.mlp_gated else [("up", cfg.hidden_size, f)]) \
            + [("down", f, cfg.hidden_size)]
        out = [self.stored_w(f"{prefix}.{n}.weight", a, b) for n, a, b in shapes]
        if cfg.mlp_bias:
            out += [self.w(f"{prefix}.{n}.bias", b) for n, _, b in shapes]
        return out

    def ffn(self, x: Tensor) -> Tensor:
        return self.moe(x) if self.cfg.is_moe else self.mlp(x)

    def allreduce(self, x: Tensor, name: str) -> Tensor:
        """Sum the row-parallel partial outputs, then add the biases that waited for it."""
        if self.tp > 1:
            x = self.add(O.allreduce(self.p + name, x, self.tp, self.p + name + ".out", **self.kw("tp.allreduce")))
        for lin, tag in self.pending_bias:
            x = self.bias(x, lin, tag)
        self.pending_bias.clear()
        return x

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
                  *, tp: int = 1, layer: int = 0, weight_density: float = 1.0,
                  idle_weights: list[Tensor] | None = None, new_tokens: int = 1) -> tuple[list[Op], Tensor]:
    """Ops of one decoder layer on one TP rank, and its output tensor. Weights of MoE
    experts that get no tokens are appended to ``idle_weights`` when it is given."""
    b = LayerBuilder(cfg, phase, batch, seq, tp, layer, weight_density=weight_density, new_tokens=new_tokens)
    out = b.build(x)
    if idle_weights is not None:
        idle_weights.extend(b.idle_weights)
    return b.ops, out
