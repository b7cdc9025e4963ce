"""Monarch FFT (an FFT as a chain of small dense GEMMs) and FlashFFTConv built from it.

An n-point FFT with n = n_1 * ... * n_p (order p) runs as p stages. Stage s contracts
the last factor axis with the n_s x n_s DFT matrix (a batched GEMM); between stages an
elementwise Mul by twiddle factors and a Transpose that brings the next factor axis
last (SN40L paper, Figure 3: Gemm0 -> Mul -> Transpose -> Gemm1 for order 2). The
output comes out in digit-reversed order; the inverse FFT, run by the same procedure,
takes that order back to natural order, so an FFT convolution needs no reordering.

Complex numbers and dtypes: a complex tensor is a real tensor with an axis of size 2
(real, imaginary planes) right after the leading (batch/channel) axes:
``(*lead, 2, n_a, n_b, ...)``. Data, DFT matrices and twiddles are BF16 (FlashFFTConv
runs its DFT GEMMs in 16-bit on tensor cores with fp32 accumulation; the SN40L PCUs
do BF16 with FP32 accumulation); DFT matrices and twiddles are CONSTANT tensors
(2, f, f) and (2, ...). Real FLOPs: a complex GEMM is 8*M*N*K (4 real multiplies and
4 real adds per complex multiply-add), a real-by-complex GEMM 4*M*N*K (first stage of
an FFT of a real signal; last stage of an inverse FFT whose output is real), a complex
elementwise multiply 6 FLOPs per complex element. The 1/n of the inverse is folded into
its DFT matrices.
"""

from __future__ import annotations

import math

from rdusim.errors import InputError
from rdusim.graph import ops as O
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.ops import Op, OpKind, ShapeError
from rdusim.graph.tensor import DType, Tensor, TensorRole

CONST = TensorRole.CONSTANT

# FlashFFTConv benchmark defaults for the SN40L fusion study's "sequence 1M" entry:
# FlashFFTConv (Fu et al., arXiv 2311.05908) evaluates HyenaDNA at 1M tokens; the
# HyenaDNA-1M model (Nguyen et al., arXiv 2306.15794, hyenadna-large-1m-seqlen) has
# d_model 256, i.e. 256 long convolutions (channels); one sequence per batch at 1M.
# ``seq`` is the FFT length (FlashFFTConv's ``seqlen``); 2^20 = 32^4 gives order 4.
FLASHFFTCONV_DEFAULTS = {"seq": 2 ** 20, "batch": 1, "channels": 256, "order": 4}


def monarch_factors(n: int, order: int, *, origin: str = "monarch_fft", n_key: str = "n") -> tuple[int, ...]:
    """n as ``order`` factors as equal as possible (largest first), each >= 2.
    Errors name ``origin`` (e.g. the workload file and entry) and ``n_key``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise InputError(origin, n_key, "an integer FFT length >= 2", n)
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InputError(origin, "order", "a positive integer", order)
    primes, m, p = [], n, 2
    while p * p <= m:
        while m % p == 0:
            primes.append(p)
            m //= p
        p += 1
    if m > 1:
        primes.append(m)
    if order > len(primes):
        raise InputError(origin, "order", f"at most {len(primes)} (the prime factors of {n_key}={n})", order)
    factors = [1] * order
    for q in sorted(primes, reverse=True):
        i = min(range(order), key=lambda j: factors[j])
        factors[i] *= q
    return tuple(sorted(factors, reverse=True))


def complex_gemm(name: str, x: Tensor, dft: Tensor, out: str, *, lead: int, real_in: bool = False,
                 real_out: bool = False, **kw) -> Op:
    """Contract the last axis of x with a complex (2, K, N) matrix.

    x is ``(*lead, 2, ..., K)`` (or ``(*lead, ..., K)`` if ``real_in``); the output keeps
    every axis but the last, which becomes N, and is real if ``real_out``."""
    if len(dft.shape) != 3 or dft.shape[0] != 2:
        raise ShapeError(f"{name}: complex matrix {dft.name}{list(dft.shape)} must be (2, K, N)")
    k, n = dft.shape[1], dft.shape[2]
    if x.shape[-1] != k:
        raise ShapeError(f"{name}: {x.name}{list(x.shape)} @ {dft.name}{list(dft.shape)}: {x.shape[-1]} != {k}")
    body = x.shape[lead:] if real_in else x.shape[lead + 1:]
    if not real_in and x.shape[lead] != 2:
        raise ShapeError(f"{name}: {x.name}{list(x.shape)} has no complex axis at position {lead}")
    rows = math.prod(x.shape[:lead]) * math.prod(body[:-1])
    shape = (*x.shape[:lead], *(() if real_out else (2,)), *body[:-1], n)
    y = Tensor(out, shape, x.dtype)
    mult = 4.0 if (real_in or real_out) else 8.0
    return O._mk(name, OpKind.GEMM, (x, dft), (y,), mult * rows * n * k,
                 attrs=(("m", rows), ("n", n), ("k", k), ("batch", 1), ("complex", True)), **kw)


def _fft(x: Tensor, lead: int, prefix: str, inverse: bool, real_in: bool, real_out: bool) -> list[Op]:
    """Stages of a Monarch FFT over the factor axes of x (everything after lead [+ complex])."""
    dims = list(x.shape[lead:] if real_in else x.shape[lead + 1:])
    p, dt = len(dims), x.dtype
    kind = "idft" if inverse else "dft"
    ops: list[Op] = []
    cur = x
    for s in range(p):
        f = dims[-1]
        dft = Tensor(f"{prefix}.{kind}{f}", (2, f, f), dt, CONST)
        ops.append(complex_gemm(f"{prefix}.gemm{s}", cur, dft, f"{prefix}.gemm{s}.out", lead=lead,
                                real_in=real_in and s == 0, real_out=real_out and s == p - 1,
                                tag="fft.gemm"))
        cur = ops[-1].outputs[0]
        if s == p - 1:
            break
        tw = Tensor(f"{prefix}.twiddle{s}", (2, *dims), dt, CONST)
        ops.append(O.elementwise(f"{prefix}.twiddle{s}.mul", [cur, tw], f"{prefix}.twiddle{s}.out",
                                 flops_per_element=3.0, tag="fft.twiddle"))
        cur = ops[-1].outputs[0]
        base = lead + 1
        perm = (*range(base), base + p - 1, *range(base, base + p - 1))
        ops.append(O.transpose(f"{prefix}.transpose{s}", cur, perm, f"{prefix}.transpose{s}.out",
                               tag="fft.transpose"))
        cur = ops[-1].outputs[0]
        dims = [dims[-1], *dims[:-1]]
    return ops


def monarch_fft_ops(n: int, order: int = 2, batch: int = 1, prefix: str = "fft", inverse: bool = False,
                    *, real_input: bool = False, real_output: bool = False,
                    dtype: DType = DType.BF16, origin: str = "monarch_fft") -> list[Op]:
    """Ops of ``batch`` independent n-point FFTs (complex in and out unless told otherwise)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(origin, "batch", "a positive integer", batch)
    factors = monarch_factors(n, order, origin=origin)
    shape = (batch, *factors) if real_input else (batch, 2, *factors)
    x = Tensor(f"{prefix}.in", shape, dtype, TensorRole.INPUT)
    return _fft(x, 1, prefix, inverse, real_input, real_output)


def monarch_fft_graph(n: int, order: int = 2, batch: int = 1, *, origin: str = "monarch_fft") -> OpGraph:
    """The SN40L paper's Figure 3 example: for order 2, Gemm0 -> Mul -> Transpose -> Gemm1."""
    return OpGraph(f"monarch_fft.n{n}.p{order}.b{batch}", monarch_fft_ops(n, order, batch, origin=origin),
                   source=origin)


def flashfftconv_graph(seq: int = FLASHFFTCONV_DEFAULTS["seq"], batch: int = FLASHFFTCONV_DEFAULTS["batch"],
                       channels: int = FLASHFFTCONV_DEFAULTS["channels"],
                       order: int = FLASHFFTCONV_DEFAULTS["order"], *, origin: str = "flashfftconv") -> OpGraph:
    """FFT convolution y = iFFT(FFT(u) * FFT(k)) of ``batch x channels`` real signals.

    The kernel's FFT is precomputed (a CONSTANT per channel, as FlashFFTConv caches
    k_f); the FFT of the real input and the inverse FFT to a real output use the
    real-by-complex GEMMs at their ends. FlashFFTConv's extras (skip term u*D, gating)
    are not included."""
    for key, val in (("batch", batch), ("channels", channels)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise InputError(origin, key, "a positive integer", val)
    factors = monarch_factors(seq, order, origin=origin, n_key="seq")
    u = Tensor("conv.u", (batch, channels, seq), DType.BF16, TensorRole.INPUT)
    ops: list[Op] = [O.reshape("conv.split", u, (batch, channels, *factors), "conv.u_factored",
                               tag="fft.reshape")]
    ops += _fft(ops[-1].outputs[0], 2, "conv.fft", False, True, False)
    spec = ops[-1].outputs[0]
    k_f = Tensor("conv.kernel_f", spec.shape[1:], spec.dtype, CONST)
    ops.append(O.elementwise("conv.pointwise", [spec, k_f], "conv.product", flops_per_element=3.0,
                             tag="fft.pointwise"))
    ops += _fft(ops[-1].outputs[0], 2, "conv.ifft", True, False, True)
    ops.append(O.reshape("conv.join", ops[-1].outputs[0], (batch, channels, seq), "conv.y", tag="fft.reshape"))
    return OpGraph(f"flashfftconv.s{seq}.b{batch}.c{channels}.p{order}", ops, source=origin)
