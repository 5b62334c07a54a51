"""``python -m kvmem.bench [--threads 1,2] [--json F] [--markdown F] [--readme F] [--quick]``.

Throughput of the core memories.

Measures this machine's float32 matmul peak first, then reports GFLOP/s and the fraction of
that peak for the hot paths of ``kvmem.core`` (docs/science.md 1.1-1.3): the Hebbian batch write,
the primal read ``q M``, the dual ``SlotMemory`` read (identity and softmax separation), a
chunked softmax read over more memories than one score matrix should hold, the
chunkwise-parallel delta rule against its step-by-step reference, and the batched write /
read against a plain per-memory Python loop. For the ``kvmem.nn`` layers: the chunked delta
rule of ``FastWeightMemory`` (forward + backward) against its step-by-step reference and
against a straightforward chunked implementation written from the DeltaNet paper, and
``KeyValueAttention`` against ``scaled_dot_product_attention`` on the same projections.
Every speed-up row also checks that the two results agree. Timings are the median of
several runs after a warm-up, with PyTorch's default thread count, or once per thread
count of ``--threads`` (each pass measures its own ``matmul_peak`` and states % peak against
it; the rows of ``kvmem.bench_ops`` and ``kvmem.bench_hopfield`` fix their own thread counts,
so they are measured once, in the first pass). Every row records the thread count it ran
with. ``--markdown`` / ``--readme`` write the table as Markdown (``kvmem.bench_readme``), the
latter between the ``<!-- bench:start -->`` / ``<!-- bench:end -->`` lines of a README.
Speed is reported here, never asserted in tests (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

if __name__ == "__main__":  # before torch loads: huge pages, kept malloc memory (see module)
    from kvmem.process_memory import configure as _configure_process_memory

    _configure_process_memory()

import torch

from kvmem.bench_hopfield import HOPFIELD_ROW_NAMES, hopfield_rows
from kvmem.bench_ops import OP_ROW_NAMES, op_rows
from kvmem.bench_readme import measured_cells
from kvmem.core.matrix_memory import MatrixMemory
from kvmem.core.slot_memory import SlotMemory
from kvmem.core.write_rules import delta_write_chunked, delta_write_sequential, hebbian_write
from kvmem.nn.attention import KeyValueAttention
from kvmem.nn.fast_weights import fast_weight_chunked, fast_weight_reference
from kvmem.process_memory import DEFAULTS as MEMORY_SETTINGS

__all__ = ["Row", "ROW_NAMES", "run", "main"]

ROW_NAMES: tuple[str, ...] = (
    "matmul_peak",
    "hebbian_write",
    "primal_read",
    "dual_read_identity",
    "dual_read_identity_quadratic",
    "dual_read_softmax",
    "dual_read_softmax_chunked",
    "delta_chunked_vs_sequential",
    "hebbian_write_vs_loop",
    "dual_read_vs_loop",
    "fast_weight_delta_vs_reference",
    "fast_weight_delta_vs_paper_chunked",
    "fast_weight_delta_vs_paper_chunked_long",
    "kv_attention_vs_sdpa",
    *OP_ROW_NAMES,
    *HOPFIELD_ROW_NAMES,
)


@dataclass
class Row:
    """One line of the table. ``gflops``/``pct_peak`` are None for pure speed-up rows."""

    name: str
    shape: str
    seconds: float
    gflops: float | None = None
    pct_peak: float | None = None
    target: str = ""
    status: str = ""  # "ok", "MISS" or "" (no target)
    speedup: float | None = None
    max_error: float | None = None  # agreement check of two ways of computing one result
    note: str = ""
    #: intra-op threads the row ran with: torch's setting when the row is built, which every
    #: row builder does right after timing, under the thread count it timed with
    threads: int = field(default_factory=torch.get_num_threads)


def _median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs; and a result."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _drop_cache(slots: SlotMemory) -> None:
    """Forget SlotMemory's cached ``K^T V`` so a timed read pays for the work it reports."""
    slots._invalidate()


def _max_rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(1, max |b|): agreement relative to the result's scale."""
    scale = max(1.0, float(b.abs().max()))
    return float((a.double() - b.double()).abs().max()) / scale


def _rate(flops: float, seconds: float, peak: float) -> tuple[float, float]:
    g = flops / seconds / 1e9
    return g, 100.0 * g / peak


def _target(row: Row, pct: float) -> Row:
    row.target = f">= {pct:.0f}% peak"
    row.status = "ok" if row.pct_peak is not None and row.pct_peak >= pct else "MISS"
    return row


def measure_peak(sizes: Sequence[int], repeats: int) -> Row:
    """Best float32 GFLOP/s over square matmuls of the given sizes (2 n^3 flops each)."""
    best, best_n, best_t = 0.0, sizes[0], 0.0
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        a = torch.randn(n, n, generator=gen)
        b = torch.randn(n, n, generator=gen)
        out = torch.empty(n, n)
        times = []
        torch.mm(a, b, out=out)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - t0)
        t = min(times)  # peak: the best run, not the median
        g = 2 * n**3 / t / 1e9
        if g > best:
            best, best_n, best_t = g, n, t
    return Row(
        "matmul_peak",
        f"{best_n}x{best_n} @ {best_n}x{best_n} (sizes {', '.join(map(str, sizes))})",
        best_t,
        best,
        100.0,
        note="best of several square float32 matmuls",
    )


def run(
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
    threads: int | None = None,
    peer_rows: bool = True,
) -> list[Row]:
    """Run every benchmark; ``quick`` uses tiny shapes (a smoke test, seconds).

    ``threads``: run on that many intra-op threads (``torch.set_num_threads``, restored
    after); ``None`` keeps torch's setting. ``peer_rows=False`` leaves out the rows of
    ``kvmem.bench_ops`` and ``kvmem.bench_hopfield``, which set their own thread counts and
    so would only repeat themselves in a second pass.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(quick, progress or (lambda _msg: None), peer_rows)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _run(quick: bool, say: Callable[[str], None], peer_rows: bool) -> list[Row]:
    """The body of ``run`` at the current thread count."""
    torch.manual_seed(0)
    if quick:
        sizes, rep, rep_big = (128, 256), 2, 1
        N, d, Q_read, Q_dual = 1024, 32, 256, 64
        N_big, Q_big, chunk_big, N_eq, Q_eq, chunk_eq = 4096, 32, 512, 600, 16, 128
        N_delta, d_delta, chunk_delta = 256, 16, 32
        N_loop, d_loop, Q_loop = 128, 16, 16
    else:
        sizes, rep, rep_big = (2048, 4096), 5, 3
        N, d, Q_read, Q_dual = 65536, 256, 4096, 1024
        N_big, Q_big, chunk_big, N_eq, Q_eq, chunk_eq = 131072, 256, 16384, 20000, 64, 3000
        N_delta, d_delta, chunk_delta = 4096, 64, 64
        N_loop, d_loop, Q_loop = 2048, 64, 64
    rows: list[Row] = []

    say("matmul peak")
    peak_row = measure_peak(sizes, rep)
    peak = float(peak_row.gflops or 1.0)
    rows.append(peak_row)

    gen = torch.Generator().manual_seed(1)
    K = torch.randn(N, d, generator=gen) / d**0.5
    V = torch.randn(N, d, generator=gen)
    M0 = torch.zeros(d, d)

    # --- Hebbian batch write: M + K^T V, 2 N d_k d_v flops (docs/science.md 1.1)
    say("hebbian write")
    t, M = _median_time(lambda: hebbian_write(M0, K, V, 1.0), rep)
    g, p = _rate(2 * N * d * d, t, peak)
    rows.append(_target(Row("hebbian_write", f"N={N}, d_k=d_v={d}", t, g, p), 60))

    # --- primal read q M: 2 Q d_k d_v flops
    say("primal read")
    mem = MatrixMemory(d, d, keep_pairs=False).write(K, V)
    Qr = torch.randn(Q_read, d, generator=gen)
    t, _ = _median_time(lambda: mem.read(Qr), rep)
    g, p = _rate(2 * Q_read * d * d, t, peak)
    rows.append(Row("primal_read", f"Q={Q_read}, d_k=d_v={d}", t, g, p))

    # --- dual read, identity separation. SlotMemory takes the associative shortcut
    # q (K^T V) when it is cheaper and caches K^T V; dropping the cache before each run makes
    # every run pay for K^T V: 2 N d_k d_v + 2 Q d_k d_v flops actually performed.
    say("dual read (identity)")
    Qd = torch.randn(Q_dual, d, generator=gen)
    slots_id = SlotMemory(similarity="dot", separation="identity")
    slots_id.write(K, V)

    def identity_read() -> torch.Tensor:
        _drop_cache(slots_id)
        return slots_id.read(Qd)

    t, out_id = _median_time(identity_read, rep)
    g, p = _rate(2 * N * d * d + 2 * Q_dual * d * d, t, peak)
    err = _max_rel_error(out_id, Qd @ M)
    rows.append(
        _target(
            Row(
                "dual_read_identity",
                f"N={N}, Q={Q_dual}, d={d}",
                t,
                g,
                p,
                max_error=err,
                note="SlotMemory used the associative shortcut q (K^T V): flops counted "
                "2Nd^2 + 2Qd^2 (what it performs), K^T V recomputed every run; checked vs q M",
            ),
            60,
        )
    )

    # The quadratic form (q K^T) V itself, 4 Q N d flops: forced through SlotMemory's
    # generic path with a user-callable identity (no shortcut for unknown operators).
    say("dual read (identity, quadratic form)")
    slots_q = SlotMemory(similarity="dot", separation=lambda s: s)
    slots_q.write(K, V)
    t, out_q = _median_time(lambda: slots_q.read(Qd), rep_big)
    g, p = _rate(4 * Q_dual * N * d, t, peak)
    rows.append(
        Row(
            "dual_read_identity_quadratic",
            f"N={N}, Q={Q_dual}, d={d}",
            t,
            g,
            p,
            max_error=_max_rel_error(out_q, out_id),
            note="(q K^T) V without the shortcut (callable identity), 4QNd flops",
        )
    )

    # --- dual read, softmax separation (default SlotMemory settings), 4 Q N d flops
    say("dual read (softmax)")
    slots_s = SlotMemory(similarity="dot", separation="softmax", beta=1.0)
    slots_s.write(K, V)
    t, _ = _median_time(lambda: slots_s.read(Qd), rep_big)
    g, p = _rate(4 * Q_dual * N * d, t, peak)
    rows.append(
        _target(
            Row(
                "dual_read_softmax",
                f"N={N}, Q={Q_dual}, d={d}",
                t,
                g,
                p,
                note="4QNd flops (exp and normalisation not counted); SlotMemory defaults",
            ),
            35,
        )
    )

    # --- softmax read over many memories in chunks with bounded memory; equality of the
    # chunked (online softmax) and one-pass reads is checked on a smaller shape.
    say("dual read (softmax, chunked)")
    gen2 = torch.Generator().manual_seed(2)
    Kb = torch.randn(N_big, d, generator=gen2) / d**0.5
    Vb = torch.randn(N_big, d, generator=gen2)
    Qb = torch.randn(Q_big, d, generator=gen2)
    slots_c = SlotMemory(similarity="dot", separation="softmax", beta=4.0, chunk_size=chunk_big)
    slots_c.write(Kb, Vb)
    t, _ = _median_time(lambda: slots_c.read(Qb), rep_big)
    g, p = _rate(4 * Q_big * N_big * d, t, peak)
    one = SlotMemory(similarity="dot", separation="softmax", beta=4.0, chunk_size=N_eq)
    chk = SlotMemory(similarity="dot", separation="softmax", beta=4.0, chunk_size=chunk_eq)
    one.write(Kb[:N_eq], Vb[:N_eq])
    chk.write(Kb[:N_eq], Vb[:N_eq])
    err = _max_rel_error(chk.read(Qb[:Q_eq]), one.read(Qb[:Q_eq]))
    full_mib = Q_big * N_big * 4 / 2**20
    chunk_mib = Q_big * chunk_big * 4 / 2**20
    rows.append(
        Row(
            "dual_read_softmax_chunked",
            f"N={N_big}, Q={Q_big}, d={d}, chunk={chunk_big}",
            t,
            g,
            p,
            max_error=err,
            note=f"score block {chunk_mib:.3g} MiB instead of {full_mib:.3g} MiB; "
            f"checked vs one pass at N={N_eq}, Q={Q_eq}, chunk={chunk_eq}",
        )
    )

    # --- chunkwise-parallel delta rule vs the step-by-step recurrence (docs/science.md 1.3)
    say("delta rule: chunked vs sequential")
    gen3 = torch.Generator().manual_seed(3)
    Kd = torch.nn.functional.normalize(torch.randn(N_delta, d_delta, generator=gen3), dim=-1)
    Vd = torch.randn(N_delta, d_delta, generator=gen3)
    Md = torch.zeros(d_delta, d_delta)
    t_seq, (Ms, us) = _median_time(
        lambda: delta_write_sequential(Md, Kd, Vd, 0.5), max(1, rep_big - 1)
    )
    t_chk, (Mc, uc) = _median_time(
        lambda: delta_write_chunked(Md, Kd, Vd, 0.5, chunk_size=chunk_delta), rep
    )
    rows.append(
        Row(
            "delta_chunked_vs_sequential",
            f"N={N_delta}, d_k=d_v={d_delta}, chunk={chunk_delta}",
            t_chk,
            speedup=t_seq / t_chk,
            max_error=max(_max_rel_error(Mc, Ms), _max_rel_error(uc, us)),
            note=f"sequential {t_seq:.4f} s; error over M_N and residuals u",
        )
    )

    # --- batched Hebbian write and dual read vs a plain per-memory Python loop
    say("batched vs per-memory loop")
    gen4 = torch.Generator().manual_seed(4)
    Kl = torch.randn(N_loop, d_loop, generator=gen4) / d_loop**0.5
    Vl = torch.randn(N_loop, d_loop, generator=gen4)
    Ql = torch.randn(Q_loop, d_loop, generator=gen4)
    Ml0 = torch.zeros(d_loop, d_loop)

    def loop_write() -> torch.Tensor:
        Ml = Ml0.clone()
        for i in range(N_loop):
            Ml += torch.outer(Kl[i], Vl[i])
        return Ml

    t_loop, M_loop = _median_time(loop_write, max(1, rep_big - 1))
    t_bat, M_bat = _median_time(lambda: hebbian_write(Ml0, Kl, Vl, 1.0), rep)
    rows.append(
        Row(
            "hebbian_write_vs_loop",
            f"N={N_loop}, d_k=d_v={d_loop}",
            t_bat,
            speedup=t_loop / t_bat,
            max_error=_max_rel_error(M_bat, M_loop),
            note=f"loop {t_loop:.4f} s (one outer product per memory)",
        )
    )

    def loop_read() -> torch.Tensor:
        out = torch.zeros(Q_loop, d_loop)
        for i in range(N_loop):
            out += torch.outer(Ql @ Kl[i], Vl[i])  # (q . k_n) v_n for every query
        return out

    slots_l = SlotMemory(similarity="dot", separation="identity")
    slots_l.write(Kl, Vl)

    def batched_read() -> torch.Tensor:
        _drop_cache(slots_l)
        return slots_l.read(Ql)

    t_loop, r_loop = _median_time(loop_read, max(1, rep_big - 1))
    t_bat, r_bat = _median_time(batched_read, rep)
    rows.append(
        Row(
            "dual_read_vs_loop",
            f"N={N_loop}, Q={Q_loop}, d={d_loop}",
            t_bat,
            speedup=t_loop / t_bat,
            max_error=_max_rel_error(r_bat, r_loop),
            note=f"loop {t_loop:.4f} s (one memory at a time); SlotMemory identity read, "
            "K^T V recomputed every run",
        )
    )

    rows += _layer_rows(quick, rep, rep_big, peak, say)
    if peer_rows:
        say("operations against their peers (SDPA, topk, bare tensor ops)")
        rows += op_rows(quick)
        say("ClassicalHopfield asynchronous sweeps against a plain numpy loop")
        rows += hopfield_rows(quick)

    # The peak again: if other processes took the cores during the run, the two disagree
    # and every "% peak" above is suspect (flagged in the note and by main()).
    say("matmul peak, again")
    end = measure_peak(sizes[:1], rep)
    drift = float(end.gflops or 0.0) / peak
    peak_row.note += f"; {end.gflops:.1f} GFLOP/s at the end of the run ({100 * drift:.0f}%)"
    if not 0.8 <= drift <= 1.25:
        peak_row.note += " -- the machine's load changed during the run: % peak unreliable"
    return rows


def deltanet_paper_chunked(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """The chunkwise delta rule as written in Yang et al. (2024), Listing 1, batched over heads.

    ``q, k [..., T, d_k]``, ``v [..., T, d_v]``, ``beta [..., T]``, ``T`` a multiple of
    ``chunk_size``; same outputs as ``fast_weight_reference(rule="delta")``. The WY matrix
    ``T = (I + A)^{-1}`` is built row by row (a Python loop over the chunk), the state handed
    over chunk by chunk. The in-place row updates read ``clone()``d slices so autograd can
    differentiate them (as flash-linear-attention's naive chunked reference does).
    """
    *batch, n, d_k = k.shape
    c = chunk_size
    q, k, v = (x.reshape(*batch, n // c, c, x.shape[-1]) for x in (q, k, v))
    b = beta.reshape(*batch, n // c, c)
    k_beta, v_beta = k * b[..., None], v * b[..., None]
    upper = torch.ones(c, c, dtype=torch.bool, device=q.device).triu()
    t_mat = -(k_beta @ k.mT).masked_fill(upper, 0.0)
    for i in range(1, c):  # the listing's row-by-row forward substitution
        t_mat[..., i, :i] = t_mat[..., i, :i].clone() + (
            t_mat[..., i, :, None].clone() * t_mat[..., :, :i].clone()
        ).sum(-2)
    t_mat = t_mat + torch.eye(c, dtype=q.dtype, device=q.device)
    w, u = t_mat @ k_beta, t_mat @ v_beta
    strict_upper = torch.ones(c, c, dtype=torch.bool, device=q.device).triu(1)
    S = q.new_zeros(*batch, d_k, v.shape[-1])
    outs = []
    for i in range(n // c):
        q_i, k_i = q[..., i, :, :], k[..., i, :, :]
        u_i = u[..., i, :, :] - w[..., i, :, :] @ S
        a_i = (q_i @ k_i.mT).masked_fill(strict_upper, 0.0)
        outs.append(q_i @ S + a_i @ u_i)
        S = S + k_i.mT @ u_i
    return torch.cat(outs, dim=-2)


def _delta_inputs(
    b: int, h: int, t: int, d: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(b, h, t, d, generator=gen), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(b, h, t, d, generator=gen), dim=-1)
    v = torch.randn(b, h, t, d, generator=gen)
    beta = torch.rand(b, h, t, generator=gen)
    return tuple(x.requires_grad_() for x in (q, k, v, beta))  # type: ignore[return-value]


def _fwd_bwd(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor]) -> Callable[[], Any]:
    """A closure running ``fn(*inputs)`` forward and backward; returns (output, gradients)."""

    def go() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        out = fn(*inputs)
        grads = torch.autograd.grad(out.sum(), inputs)
        return out.detach(), grads

    return go


def _fwd_bwd_error(ours: tuple[Any, Any], ref: tuple[Any, Any]) -> float:
    """Largest relative error over the outputs and every input gradient of ``_fwd_bwd``."""
    (o, g), (o_ref, g_ref) = ours, ref
    return max(_max_rel_error(o, o_ref), *map(_max_rel_error, g, g_ref))


def _chunked_delta_flops(b: int, h: int, t: int, d: int, c: int) -> float:
    """Forward flops of the chunked delta rule, times 3 for forward + backward.

    Per chunk and head: K K^T, Q K^T and (Q K^T) U (2 C^2 d each), the unit-triangular
    solve for [U~ | W] (2 C^2 d), and W S, Q S, K^T U (2 C d^2 each).
    """
    per_chunk = 8 * c * c * d + 6 * c * d * d
    return 3.0 * b * h * (t // c) * per_chunk


def _layer_rows(
    quick: bool, rep: int, rep_big: int, peak: float, say: Callable[[str], None]
) -> list[Row]:
    """Rows for the ``kvmem.nn`` layers: delta-rule fast weights and key-value attention."""
    if quick:
        B, H, d, c, T_short, T_long, T_ref = 1, 2, 16, 16, 64, 128, 64
        T_attn, d_attn = 64, 16
    else:
        B, H, d, c, T_short, T_long, T_ref = 2, 4, 64, 64, 1024, 4096, 1024
        T_attn, d_attn = 1024, 64
    rows: list[Row] = []

    say("fast weights (delta): chunked vs step-by-step reference")
    inp = _delta_inputs(B, H, T_ref, d, 5)
    t_ref, (o_ref, g_ref) = _median_time(
        _fwd_bwd(lambda *a: fast_weight_reference(*a, rule="delta"), inp), 1, warmup=0
    )
    t_ours, (o_ours, g_ours) = _median_time(
        _fwd_bwd(lambda *a: fast_weight_chunked(*a, rule="delta", chunk_size=c), inp), rep
    )
    err = _fwd_bwd_error((o_ours, g_ours), (o_ref, g_ref))
    g, p = _rate(_chunked_delta_flops(B, H, T_ref, d, c), t_ours, peak)
    rows.append(
        Row(
            "fast_weight_delta_vs_reference",
            f"B={B}, H={H}, T={T_ref}, d={d}, chunk={c}, fwd+bwd",
            t_ours,
            g,
            p,
            speedup=t_ref / t_ours,
            max_error=err,
            note=f"step-by-step reference {t_ref:.4f} s (one run); error over outputs and "
            "the gradients of q, k, v, beta",
        )
    )

    for name, T in (
        ("fast_weight_delta_vs_paper_chunked", T_short),
        ("fast_weight_delta_vs_paper_chunked_long", T_long),
    ):
        say(f"fast weights (delta): chunked vs the DeltaNet paper's chunked form, T={T}")
        inp = _delta_inputs(B, H, T, d, 6)
        t_paper, (o_paper, g_paper) = _median_time(
            _fwd_bwd(lambda *a: deltanet_paper_chunked(*a, chunk_size=c), inp), rep_big
        )
        t_ours, (o_ours, g_ours) = _median_time(
            _fwd_bwd(lambda *a: fast_weight_chunked(*a, rule="delta", chunk_size=c), inp), rep_big
        )
        err = _fwd_bwd_error((o_ours, g_ours), (o_paper, g_paper))
        g, p = _rate(_chunked_delta_flops(B, H, T, d, c), t_ours, peak)
        rows.append(
            Row(
                name,
                f"B={B}, H={H}, T={T}, d={d}, chunk={c}, fwd+bwd",
                t_ours,
                g,
                p,
                target=">= 1.0x paper chunked",
                status="ok" if t_paper / t_ours >= 1.0 else "MISS",
                speedup=t_paper / t_ours,
                max_error=err,
                note="DeltaNet paper's chunked form (Yang et al. 2024, Listing 1) "
                f"{t_paper:.4f} s; "
                "GFLOP/s = 3 x forward flops of the chunked algorithm / time",
            )
        )

    say("KeyValueAttention vs scaled_dot_product_attention")
    torch.manual_seed(7)
    layer = KeyValueAttention(H * d_attn, d_attn, heads=H, causal=True)
    x = torch.randn(B, T_attn, H * d_attn, requires_grad=True)

    def manual(z: torch.Tensor) -> torch.Tensor:
        q, k, v = layer.project(z)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(B, T_attn, H * d_attn)
        assert layer.W_o is not None
        return layer.W_o(o)

    t_sdpa, (o_sdpa, _) = _median_time(_fwd_bwd(manual, [x]), rep)
    t_layer, (o_layer, _) = _median_time(_fwd_bwd(layer, [x]), rep)
    t_expl, (o_expl, _) = _median_time(
        _fwd_bwd(lambda z: layer(z, return_weights=True)[0], [x]), rep
    )
    proj = 4 * 2 * B * T_attn * (H * d_attn) ** 2
    attn_flops = 3.0 * (proj + 4 * B * H * T_attn * T_attn * d_attn / 2)  # causal half
    g, p = _rate(attn_flops, t_layer, peak)
    rows.append(
        Row(
            "kv_attention_vs_sdpa",
            f"B={B}, H={H}, T={T_attn}, d_head={d_attn}, causal, fwd+bwd",
            t_layer,
            g,
            p,
            speedup=t_sdpa / t_layer,
            max_error=max(_max_rel_error(o_layer, o_sdpa), _max_rel_error(o_expl, o_sdpa)),
            note=f"projections + torch SDPA by hand {t_sdpa:.4f} s (speedup ~1: no overhead); "
            f"explicit weights path (return_weights) {t_expl:.4f} s; "
            "GFLOP/s = 3 x (projections + causal half of 4 T^2 d) / time",
        )
    )
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """A fixed-width text table of the rows (name, shape, threads, seconds, GFLOP/s, % peak, ...).

    ``speedup`` is peer seconds / kvmem seconds (above 1x: kvmem faster).
    """
    head = (
        "name",
        "shape",
        "threads",
        "seconds",
        "GFLOP/s",
        "% peak",
        "target",
        "status",
        "speedup",
        "error",
    )
    body = []
    for r in rows:
        body.append(
            (
                r.name,
                r.shape,
                str(r.threads),
                *measured_cells(r),
                r.target or "-",
                r.status or "-",
                "-" if r.speedup is None else f"{r.speedup:.1f}x",
                "-" if r.max_error is None else f"{r.max_error:.1e}",
            )
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    lines.append("")
    lines += [f"{r.name} ({r.threads} thread(s)): {r.note}" for r in rows if r.note]
    return "\n".join(lines)


def _load() -> float | None:
    """The 1-minute load average (None where the OS has none): timings on a busy machine lie."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _thread_counts(text: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``: distinct positive thread counts, in the order given."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"need distinct thread counts >= 1: {text!r}")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the table, write ``--json`` / ``--markdown`` / ``--readme``.

    Returns 0, or 2 (before measuring anything) when the ``--readme`` file lacks the
    ``<!-- bench:start -->`` / ``<!-- bench:end -->`` lines.
    """
    from kvmem.bench_readme import (
        BENCH_END,
        BENCH_START,
        MarkersMissing,
        check_markers,
        markdown_table,
        readme_block,
        replace_between_markers,
    )

    parser = argparse.ArgumentParser(prog="python -m kvmem.bench", description=__doc__)
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON (atomic)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    parser.add_argument(
        "--threads",
        metavar="N[,N...]",
        type=_thread_counts,
        help="run the rows once per thread count, e.g. 1,2 (default: torch's current count); "
        "the kvmem.bench_ops / bench_hopfield rows fix their own and run once, in the first pass",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write a Markdown table (atomic)")
    parser.add_argument(
        "--readme",
        metavar="FILE",
        help=f"replace the lines between {BENCH_START} and {BENCH_END} in FILE with the table",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.readme:
        try:  # fail now, not after many minutes of measuring
            check_markers(args.readme)
        except (MarkersMissing, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    before = torch.get_num_threads()
    passes: list[int | None] = list(args.threads) if args.threads else [None]
    load_before = _load()
    started = time.perf_counter()
    rows: list[Row] = []
    for k, n_threads in enumerate(passes):
        label = f"[{n_threads} thread(s)] " if n_threads is not None else ""
        rows += run(
            quick=args.quick,
            progress=lambda m, label=label: print(f"... {label}{m}", file=sys.stderr),
            threads=n_threads,
            peer_rows=k == 0,
        )
    assert torch.get_num_threads() == before  # run() restores the setting
    duration = time.perf_counter() - started
    print(format_table(rows))
    load_after = _load()
    counts = sorted({r.threads for r in rows})
    print(
        f"\n{'/'.join(map(str, counts))} threads, torch {torch.__version__}, "
        f"{duration:.1f} s total, load average {load_before} before / {load_after} after"
    )
    if max(load_before or 0.0, load_after or 0.0) > 1.0:
        print("warning: other processes were running; timings and % peak are pessimistic")
    peaks = {r.threads: r.gflops for r in rows if r.name == "matmul_peak"}
    environment = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "threads": before,
        "thread_counts": [r.threads for r in rows if r.name == "matmul_peak"],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": duration,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "memory_settings": {k: os.environ.get(k, "unset") for k in MEMORY_SETTINGS},
    }
    from kvmem.results import atomic_write_text, to_jsonable

    if args.json:
        doc = {
            "benchmark": "kvmem.bench",
            "quick": bool(args.quick),
            "peak_gflops": rows[0].gflops,
            "peak_gflops_by_threads": {str(t): g for t, g in peaks.items()},
            "rows": [asdict(r) for r in rows],
            "environment": environment,
        }
        atomic_write_text(args.json, json.dumps(to_jsonable(doc), indent=2) + "\n")
    if args.markdown or args.readme:
        md = markdown_table(rows, environment, shlex.join(["python", "-m", "kvmem.bench", *argv]))
        if args.markdown:
            atomic_write_text(args.markdown, md)
        if args.readme:
            try:
                replace_between_markers(args.readme, readme_block(md))
            except (MarkersMissing, OSError) as exc:  # the file changed during the run
                print(f"error: {exc}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
