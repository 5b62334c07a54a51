"""Tests for the temporal context model (kvmem.behavior.tcm)."""

from __future__ import annotations

import math

import numpy as np
import torch

from kvmem.behavior import tcm

P = dict(
    B_enc=0.6,
    B_rec=0.5,
    B_start=0.1,
    gamma=0.3,
    alpha=0.05,
    delta=1.0,
    phi_s=2.0,
    phi_d=0.7,
    tau=4.0,
    stop_x1=0.05,
    stop_x2=0.3,
)


def test_drift_keeps_unit_length() -> None:
    g = torch.Generator().manual_seed(0)
    c = torch.nn.functional.normalize(torch.randn(50, 9, generator=g, dtype=torch.float64), dim=-1)
    c_in = torch.nn.functional.normalize(
        torch.randn(50, 9, generator=g, dtype=torch.float64), dim=-1
    )
    for beta in (0.0, 0.3, 0.9):
        out = tcm.drift(c, c_in, beta)
        assert torch.allclose(out.norm(dim=-1), torch.ones(50, dtype=torch.float64), atol=1e-12)
    enc = tcm.encode(P, 12)
    assert math.isclose(float(enc.context.norm()), 1.0, abs_tol=1e-12)


def _sequential(params: dict, seq: list[int], length: int) -> float:
    """Plain numpy, one trial, one event at a time."""
    n, d = length, length + 1
    proj = np.zeros((n, d))
    proj[np.arange(n), np.arange(1, d)] = 1
    mfc = (1 - params["gamma"]) * proj
    mcf = params["alpha"] * np.ones((d, n)) + params["delta"] * proj.T
    c = np.zeros(d)
    c[0] = 1

    def move(c, c_in, b):
        c_in = c_in / np.linalg.norm(c_in)
        dot = c @ c_in
        return (np.sqrt(1 + b * b * (dot * dot - 1)) - b * dot) * c + b * c_in

    for i in range(n):
        c = move(c, mfc[i], params["B_enc"])
        mfc[i] += params["gamma"] * c
        mcf[:, i] += (params["phi_s"] * np.exp(-params["phi_d"] * i) + 1) * c
    start = np.zeros(d)
    start[0] = 1
    c = move(c, start, params["B_start"])
    ll, done = 0.0, []
    for k in range(len(seq) + 1):
        p_stop = 1.0 if k == n else min(params["stop_x1"] * np.exp(params["stop_x2"] * k), 1 - 1e-9)
        if k == len(seq):
            return ll + math.log(p_stop)
        a = np.maximum(c @ mcf, 1e-12) ** params["tau"]
        a[done] = 0
        ll += math.log((1 - p_stop) * a[seq[k]] / a.sum())
        done.append(seq[k])
        c = move(c, mfc[seq[k]], params["B_rec"])
    return ll


def test_likelihood_matches_sequential_reference() -> None:
    length = 8
    seqs = [[7, 6, 5], [], [0, 1, 2, 7], [3], list(range(8)), [7, 0, 6, 1, 5]]
    rec = np.full((len(seqs), length), -1)
    for i, s in enumerate(seqs):
        rec[i, : len(s)] = s
    batched = tcm.log_likelihood(P, torch.tensor(rec), length)
    ref = [_sequential(P, s, length) for s in seqs]
    assert np.allclose(batched.numpy(), ref, rtol=1e-9, atol=1e-9)


def test_likelihood_gradient_and_simulation() -> None:
    x = torch.tensor([P[k] for k in tcm.PARAM_NAMES], dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    sim = tcm.simulate(P, 10, 300, g)
    ll = tcm.log_likelihood({k: x[i] for i, k in enumerate(tcm.PARAM_NAMES)}, sim, 10).sum()
    ll.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # no repeats, padding only at the end, deterministic
    valid = sim >= 0
    assert (valid[:, 1:] <= valid[:, :-1]).all()
    for row in sim.tolist():
        r = [v for v in row if v >= 0]
        assert len(set(r)) == len(r)
    assert torch.equal(sim, tcm.simulate(P, 10, 300, torch.Generator().manual_seed(1)))
    # the probabilities of all sequences sum to one (list of 3: enumerate every sequence)
    import itertools

    seqs = [list(p) for k in range(4) for p in itertools.permutations(range(3), k)]
    rec = np.full((len(seqs), 3), -1)
    for i, s in enumerate(seqs):
        rec[i, : len(s)] = s
    total = tcm.log_likelihood(P, torch.tensor(rec), 3).exp().sum()
    assert math.isclose(float(total), 1.0, rel_tol=1e-9)
