"""Benchmark rows of ``ClassicalHopfield``'s asynchronous dynamics (issue 15).

Asynchronous sign dynamics is sequential by definition: unit i of a state is updated from
the fields that every earlier update of the same sweep left behind, so a sweep of N units
is N dependent steps (docs/science.md 1.4). What can be batched is everything independent
of that order: cues and networks. These rows time ``ClassicalHopfield.retrieve(...,
dynamics="asynchronous")`` against a plain NumPy loop that does the same dynamics the
obvious way (one cue at a time, one unit at a time, ``h = C[i] @ s``), with the *same*
random unit orders (drawn from the same torch generator stream as the memory draws
them), so the two must end in identical states (``max_error`` 0).

- ``hopfield_async_one_cue``: one network, one cue (N = 200 units, 20 patterns, 15 % of
  the cue's bits flipped): the per-step cost of the inner loop.
- ``hopfield_async_batched``: 8 networks x 16 cues (N = 200): the batch over cues and
  networks against the reference looping over them.

``speedup`` is reference time / kvmem time (above 1: kvmem is faster); the note also gives
kvmem / reference, the ratio of issue 15's table. Timings are medians after a warm-up,
interleaved (kvmem, reference, kvmem, ...) so a change of load hits both, single thread.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HOPFIELD_ROW_NAMES", "hopfield_rows", "numpy_asynchronous"]

HOPFIELD_ROW_NAMES: tuple[str, ...] = ("hopfield_async_one_cue", "hopfield_async_batched")


def numpy_asynchronous(c: Any, cues: Any, seed: int, max_steps: int = 100) -> Any:
    """The plain reference: asynchronous dynamics cue by cue, unit by unit, in NumPy.

    ``c [B, N, N]`` (the integer Hebbian sums, float64), ``cues [B, Q, N]`` (+-1 or 0).
    Every sweep draws sort keys ``[B * Q, N]`` from ``torch.Generator().manual_seed(seed)``
    and visits each (network, cue) row's units in argsort order, exactly as
    ``ClassicalHopfield`` draws them; a row stops after its first sweep that changed
    nothing (it keeps no longer drawing its own keys: the keys of every row are drawn each
    sweep). Tie rule: h = 0 keeps the state, and a 0 state with h = 0 becomes +1.
    Returns the final states ``[B, Q, N]`` (float64 NumPy array).
    """
    import numpy as np
    import torch

    gen = torch.Generator().manual_seed(seed)
    c = np.asarray(c, dtype=np.float64)
    s = np.sign(np.asarray(cues, dtype=np.float64)).copy()
    b_n, q_n, n = s.shape
    done = np.zeros((b_n, q_n), dtype=bool)
    for _ in range(max_steps):
        orders = torch.rand((b_n * q_n, n), generator=gen).argsort(dim=-1).numpy()
        for b in range(b_n):
            cb = c[b]
            for q in range(q_n):
                if done[b, q]:
                    continue
                st = s[b, q]
                moved = False
                for i in orders[b * q_n + q]:
                    h = cb[i] @ st
                    new = (1.0 if h > 0 else -1.0) if h != 0 else (st[i] if st[i] != 0 else 1.0)
                    if new != st[i]:
                        st[i] = new
                        moved = True
                done[b, q] = not moved
        if done.all():
            break
    return s


def hopfield_rows(quick: bool = False) -> list:
    """The rows ``HOPFIELD_ROW_NAMES`` as ``kvmem.bench.Row`` (``quick``: smaller, 1 repeat)."""
    import statistics
    import time

    import numpy as np
    import torch

    from kvmem.bench import Row, _max_rel_error
    from kvmem.core.hopfield import ClassicalHopfield
    from kvmem.experiments.base import single_thread

    n, p = (64, 6) if quick else (200, 20)
    repeats = 1 if quick else 5
    batched = (2, 4) if quick else (8, 16)  # (networks, cues per network)
    shapes = {"hopfield_async_one_cue": (1, 1), "hopfield_async_batched": batched}
    rows = []
    with single_thread():
        for name, (b_n, q_n) in shapes.items():
            gen = torch.Generator().manual_seed(3)
            x = torch.randint(0, 2, (b_n, p, n), generator=gen, dtype=torch.float32) * 2 - 1
            cues = x[:, :1].expand(b_n, q_n, n).clone()
            cues[torch.rand(cues.shape, generator=gen) < 0.15] *= -1
            mem = ClassicalHopfield(dynamics="asynchronous").store(x)
            c = (mem.weights.double() * n).round().numpy()  # the integer sums C
            cues_np = cues.numpy()

            def ours(seed: int, mem: Any = mem, cues: Any = cues) -> Any:
                return mem.retrieve(cues, generator=seed)

            def ref(seed: int, c: Any = c, cues_np: Any = cues_np) -> Any:
                return numpy_asynchronous(c, cues_np, seed)

            ours(0), ref(0)  # warm-up
            t_ours, t_ref, err = [], [], 0.0
            for k in range(repeats):
                t0 = time.perf_counter()
                a = ours(k)
                t1 = time.perf_counter()
                r = ref(k)
                t2 = time.perf_counter()
                t_ours.append(t1 - t0)
                t_ref.append(t2 - t1)
                err = max(err, _max_rel_error(a, torch.from_numpy(np.asarray(r))))
            to, tr = statistics.median(t_ours), statistics.median(t_ref)
            rows.append(
                Row(
                    name,
                    f"networks={b_n}, cues={q_n}, N={n}, P={p}",
                    to,
                    speedup=tr / to,
                    max_error=err,
                    note=f"plain NumPy loop (same unit orders) {tr:.4f} s; kvmem / NumPy = "
                    f"{to / tr:.2f}; 1 thread, median of {repeats} interleaved",
                )
            )
    return rows
