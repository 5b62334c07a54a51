"""Write rules (docs/science.md 1.1, 1.3): Hebbian, sequential delta rule, chunked delta rule."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core.write_rules import (
    delta_write_chunked,
    delta_write_sequential,
    hebbian_dual_values,
    hebbian_write,
    later_decay,
    total_decay,
)

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _keys(gen: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Keys with norms in [0.5, 1]: with lr <= 1.5 the delta rule stays stable (eta |k|^2 < 2)."""
    k = torch.randn(*shape, generator=gen, dtype=torch.float64)
    k = k / k.norm(dim=-1, keepdim=True)
    k = k * (0.5 + 0.5 * torch.rand(*shape[:-1], 1, generator=gen, dtype=torch.float64))
    return k.to(dtype)


def _problem(seed, batch, n, d_k, d_v, lr_kind, decay_kind, dtype):
    gen = torch.Generator().manual_seed(seed)
    K = _keys(gen, (*batch, n, d_k), dtype)
    V = torch.randn(*batch, n, d_v, generator=gen, dtype=torch.float64).to(dtype)
    M0 = torch.randn(*batch, d_k, d_v, generator=gen, dtype=torch.float64).to(dtype)
    if lr_kind == "scalar":
        lr = 0.7
    else:
        lr = (0.05 + 1.45 * torch.rand(*batch, n, generator=gen, dtype=torch.float64)).to(dtype)
    if decay_kind == "none":
        decay = None
    elif decay_kind == "scalar":
        decay = 0.9
    else:
        decay = (0.5 + 0.5 * torch.rand(*batch, n, generator=gen, dtype=torch.float64)).to(dtype)
        if n > 2:
            decay[..., n // 2] = 0.0  # a full erasure must stay exact
    return M0, K, V, lr, decay


def _loop_reference(M0, K, V, lr, decay, rule):
    """Plain float64 step-by-step loop, written independently of the module."""
    M = M0.double().clone()
    n = K.shape[-2]
    us = []
    for i in range(n):
        k = K[..., i, :].double()[..., None, :]
        v = V[..., i, :].double()[..., None, :]
        eta = lr if not torch.is_tensor(lr) else lr[..., i].double()[..., None, None]
        if decay is None:
            lam = 1.0
        elif torch.is_tensor(decay):
            lam = decay[..., i].double()[..., None, None]
        else:
            lam = decay
        M = lam * M
        u = eta * v if rule == "hebbian" else eta * (v - k @ M)
        M = M + k.transpose(-1, -2) @ u
        us.append(u)
    return M, torch.cat(us, dim=-2)


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> None:
    scale = max(1.0, float(b.abs().max()) if b.numel() else 1.0)
    err = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    assert err <= TOL[dtype] * scale, f"max error {err:.3e} > {TOL[dtype]:.0e} * {scale:.2f}"


shapes = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "batch": st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
        "n": st.integers(1, 70),
        "d_k": st.integers(1, 9),
        "d_v": st.integers(1, 7),
        "lr_kind": st.sampled_from(["scalar", "item"]),
        "decay_kind": st.sampled_from(["none", "scalar", "item"]),
        "dtype": st.sampled_from([torch.float32, torch.float64]),
    }
)


@settings(max_examples=60, deadline=None)
@given(p=shapes, chunk_size=st.sampled_from([1, 3, 7, 16, 64]))
def test_chunked_delta_equals_sequential(p, chunk_size):
    M0, K, V, lr, decay = _problem(**p)
    dtype = p["dtype"]
    Ms, us = delta_write_sequential(M0, K, V, lr, decay)
    Mc, uc = delta_write_chunked(M0, K, V, lr, decay, chunk_size=chunk_size)
    assert Mc.shape == Ms.shape == M0.shape
    assert uc.shape == us.shape == V.shape
    assert Mc.dtype == dtype and uc.dtype == dtype
    _close(Mc, Ms, dtype)
    _close(uc, us, dtype)


@settings(max_examples=40, deadline=None)
@given(p=shapes)
def test_sequential_rules_match_plain_loop_and_dual_form(p):
    M0, K, V, lr, decay = _problem(**p)
    dtype, n = p["dtype"], p["n"]
    M_ref, u_ref = _loop_reference(M0, K, V, lr, decay, "delta")
    Ms, us = delta_write_sequential(M0, K, V, lr, decay)
    _close(Ms, M_ref, dtype)
    _close(us, u_ref, dtype)
    # Dual form: M_N = (prod lambda) M0 + sum_n (prod_{m>n} lambda_m) k_n^T u_n.
    if decay is None:
        gam, tot = torch.ones(n, dtype=dtype), torch.ones((), dtype=dtype)
    else:
        d = decay if torch.is_tensor(decay) else torch.tensor(decay, dtype=dtype)
        gam, tot = later_decay(d, n), total_decay(d, n)
    rebuilt = (tot[..., None, None] if tot.ndim else tot) * M0 + K.mT @ (us * gam[..., None])
    _close(rebuilt, Ms, dtype)

    H_ref, _ = _loop_reference(M0, K, V, lr, decay, "hebbian")
    _close(hebbian_write(M0, K, V, lr, decay), H_ref, dtype)
    dual = hebbian_dual_values(V, lr, decay)
    rebuilt_h = (tot[..., None, None] if tot.ndim else tot) * M0 + K.mT @ dual
    _close(rebuilt_h, H_ref, dtype)


def test_later_decay_and_total_decay_values():
    lam = torch.tensor([0.5, 0.0, 0.25, 0.8], dtype=torch.float64)
    assert torch.equal(later_decay(lam, 4), torch.tensor([0.0, 0.2, 0.8, 1.0], dtype=torch.float64))
    assert float(total_decay(lam, 4)) == 0.0
    assert torch.allclose(later_decay(0.5, 3), torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64))
    assert later_decay(0.9, 3).dtype == torch.float64  # Python numbers are not rounded to float32


def test_zero_decay_erases_everything_before_it():
    gen = torch.Generator().manual_seed(1)
    K, V = (
        _keys(gen, (12, 5), torch.float64),
        torch.randn(12, 3, generator=gen, dtype=torch.float64),
    )
    decay = torch.ones(12, dtype=torch.float64)
    decay[6] = 0.0
    M0 = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    for rule in ("hebbian", "delta"):
        if rule == "hebbian":
            full = hebbian_write(M0, K, V, 1.0, decay)
            tail = hebbian_write(torch.zeros(5, 3, dtype=torch.float64), K[6:], V[6:], 1.0)
        else:
            full, _ = delta_write_chunked(M0, K, V, 0.5, decay, chunk_size=4)
            tail, _ = delta_write_sequential(
                torch.zeros(5, 3, dtype=torch.float64), K[6:], V[6:], 0.5
            )
        assert torch.allclose(full, tail, atol=1e-12), rule


def test_hebbian_is_order_independent_delta_is_not():
    gen = torch.Generator().manual_seed(2)
    K = torch.randn(20, 6, generator=gen, dtype=torch.float64) / 3
    V = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    lr = torch.rand(20, generator=gen, dtype=torch.float64) + 0.1
    perm = torch.randperm(20, generator=gen)
    M0 = torch.zeros(6, 4, dtype=torch.float64)
    h1 = hebbian_write(M0, K, V, lr)
    h2 = hebbian_write(M0, K[perm], V[perm], lr[perm])
    assert torch.allclose(h1, h2, atol=1e-12)
    d1, _ = delta_write_chunked(M0, K, V, lr)
    d2, _ = delta_write_chunked(M0, K[perm], V[perm], lr[perm])
    assert float((d1 - d2).abs().max()) > 1e-3


def test_delta_rule_with_orthonormal_keys_stores_values_exactly():
    gen = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen, dtype=torch.float64))
    K = Q[:10]  # 10 orthonormal rows
    V = torch.randn(10, 5, generator=gen, dtype=torch.float64)
    M0 = torch.randn(16, 5, generator=gen, dtype=torch.float64)  # overwritten on the key span
    for chunk_size in (1, 4, 64):
        M, u = delta_write_chunked(M0, K, V, 1.0, chunk_size=chunk_size)
        assert torch.allclose(K @ M, V, atol=1e-12)
        # The residual is exactly the error of M0 on each key (keys do not interfere).
        assert torch.allclose(u, V - K @ M0, atol=1e-12)
    # The Hebbian rule on the same keys adds to M0 instead of correcting it.
    assert not torch.allclose(K @ hebbian_write(M0, K, V), V, atol=1e-3)


def test_batch_dims_broadcast():
    gen = torch.Generator().manual_seed(4)
    K = _keys(gen, (9, 4), torch.float64)  # shared keys
    V = torch.randn(3, 9, 2, generator=gen, dtype=torch.float64)  # per-batch values
    M0 = torch.zeros(4, 2, dtype=torch.float64)
    Mc, uc = delta_write_chunked(M0, K, V, 0.8, chunk_size=4)
    assert Mc.shape == (3, 4, 2) and uc.shape == (3, 9, 2)
    for b in range(3):
        Mb, ub = delta_write_sequential(M0, K, V[b], 0.8)
        assert torch.allclose(Mc[b], Mb, atol=1e-12) and torch.allclose(uc[b], ub, atol=1e-12)
    assert hebbian_write(M0, K, V, 0.5).shape == (3, 4, 2)


def test_empty_write_returns_initial_memory():
    M0 = torch.randn(3, 2, dtype=torch.float64)
    K, V = torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64)
    for fn in (delta_write_sequential, delta_write_chunked):
        M, u = fn(M0, K, V)
        assert torch.equal(M, M0) and u.shape == (0, 2)
    assert torch.equal(hebbian_write(M0, K, V), M0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"keys": torch.zeros(5, 4)}, ValueError, ["keys", "d_k = 3", "[5, 4]"]),
        ({"values": torch.zeros(5, 3)}, ValueError, ["values", "d_v = 2", "[5, 3]"]),
        ({"values": torch.zeros(6, 2)}, ValueError, ["values", "N = 5", "[6, 2]"]),
        ({"lr": torch.ones(4)}, ValueError, ["lr", "[..., 5]", "[4]"]),
        ({"lr": float("nan")}, ValueError, ["lr", "finite"]),
        ({"lr": torch.tensor([1.0, 1, 1, 1, float("inf")])}, ValueError, ["lr", "NaN or Inf"]),
        ({"decay": 1.5}, ValueError, ["decay", "[0, 1]"]),
        ({"decay": torch.full((5,), -0.1)}, ValueError, ["decay", "[0, 1]"]),
        ({"lr": True}, TypeError, ["lr"]),
    ],
)
@pytest.mark.parametrize("fn", [hebbian_write, delta_write_sequential, delta_write_chunked])
def test_bad_inputs_name_the_argument(fn, kwargs, exc, words):
    args = {
        "M": torch.zeros(3, 2),
        "keys": torch.zeros(5, 3),
        "values": torch.zeros(5, 2),
        "lr": 1.0,
        "decay": None,
    }
    args.update(kwargs)
    with pytest.raises(exc) as info:
        fn(**args)
    for w in words:
        assert w in str(info.value)


def test_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        delta_write_chunked(torch.zeros(3, 2), torch.zeros(5, 3), torch.zeros(5, 2), chunk_size=0)


def test_chunked_delta_gradients_match_sequential():
    """Autograd through the triangular solve gives the recurrence's gradients."""
    gen = torch.Generator().manual_seed(11)
    K0 = _keys(gen, (2, 11, 4), torch.float64)
    V0 = torch.randn(2, 11, 3, generator=gen, dtype=torch.float64)
    lr0 = torch.rand(2, 11, generator=gen, dtype=torch.float64) + 0.2
    dec0 = torch.rand(2, 11, generator=gen, dtype=torch.float64) * 0.5 + 0.5
    w = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    grads = []
    for fn, kw in ((delta_write_sequential, {}), (delta_write_chunked, {"chunk_size": 4})):
        leaves = [t.clone().requires_grad_(True) for t in (K0, V0, lr0, dec0)]
        M, u = fn(torch.zeros(4, 3, dtype=torch.float64), *leaves, **kw)
        ((M * w).sum() + (u**2).sum()).backward()
        grads.append([t.grad for t in leaves])
    for gs, gc in zip(*grads, strict=True):
        assert torch.allclose(gs, gc, atol=1e-10)


def test_half_precision_chunked_delta():
    gen = torch.Generator().manual_seed(12)
    K = _keys(gen, (20, 8), torch.float32)
    V = torch.randn(20, 4, generator=gen)
    ref, _ = delta_write_sequential(torch.zeros(8, 4), K, V, 0.5)
    M, u = delta_write_chunked(torch.zeros(8, 4).bfloat16(), K.bfloat16(), V.bfloat16(), 0.5)
    assert M.dtype == torch.bfloat16 and u.dtype == torch.bfloat16
    assert torch.allclose(M.float(), ref, atol=0.1)


@pytest.mark.parametrize("with_decay", [False, True])
def test_per_item_rates_with_their_own_batch_dims(with_decay: bool) -> None:
    # lr / decay [B, N] with unbatched M, keys and values: both forms give [B, ...] results
    gen = torch.Generator().manual_seed(11)
    k = _keys(gen, (6, 3), torch.float64)
    v = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    M = torch.zeros(3, 2, dtype=torch.float64)
    lr = 0.2 + torch.rand(4, 6, generator=gen, dtype=torch.float64)
    dec = 0.5 + 0.5 * torch.rand(4, 6, generator=gen, dtype=torch.float64) if with_decay else None
    Ms, us = delta_write_sequential(M, k, v, lr, dec)
    Mc, uc = delta_write_chunked(M, k, v, lr, dec, chunk_size=4)
    assert Ms.shape == (4, 3, 2) and us.shape == (4, 6, 2)
    torch.testing.assert_close(Mc, Ms, atol=1e-10, rtol=0)
    torch.testing.assert_close(uc, us, atol=1e-10, rtol=0)
    for b in range(4):  # each batch element is the unbatched write with its own rates
        Mb, ub = delta_write_sequential(M, k, v, lr[b], None if dec is None else dec[b])
        torch.testing.assert_close(Ms[b], Mb, atol=1e-12, rtol=0)
        torch.testing.assert_close(us[b], ub, atol=1e-12, rtol=0)


def test_rate_errors_name_argument_and_received_value() -> None:
    k, v, M = torch.zeros(5, 3), torch.zeros(5, 2), torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"decay: expected values in \[0, 1\], got 1.5"):
        hebbian_write(M, k, v, decay=1.5)
    with pytest.raises(ValueError, match=r"decay: .* got values from -0.25 to 0.5"):
        hebbian_write(M, k, v, decay=torch.tensor([0.5, -0.25, 0.5, 0.5, 0.5]))
    with pytest.raises(TypeError, match="lr: expected a real number or tensor, got str"):
        hebbian_write(M, k, v, lr="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"batch\) dimensions do not broadcast"):
        delta_write_sequential(M, k, v, lr=torch.ones(2, 5), decay=torch.ones(3, 5))
