"""MatrixMemory (docs/science.md 1.1, 1.3) and its exact dual SlotMemory (docs/science.md 1.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load, save

from kvmem.core.matrix_memory import _COPY_MAX_ELEMENTS, MatrixMemory
from kvmem.core.slot_memory import SlotMemory

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
# Writes of more elements than N (d_k + d_v) = _COPY_MAX_ELEMENTS are kept by reference,
# smaller ones copied (issue 15): BIG pairs of d_k = 3, d_v = 2 are the smallest kept write.
BIG = _COPY_MAX_ELEMENTS // 5 + 1


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> None:
    scale = max(1.0, float(b.abs().max()) if b.numel() else 1.0)
    err = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    assert err <= TOL[dtype] * scale, f"max error {err:.3e} > {TOL[dtype]:.0e} * {scale:.2f}"


def _keys(gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """float64 keys with norms in [0.5, 1] (eta |k|^2 < 2 keeps the delta rule stable)."""
    k = torch.randn(*shape, generator=gen, dtype=torch.float64)
    k = k / k.norm(dim=-1, keepdim=True)
    return k * (0.5 + 0.5 * torch.rand(*shape[:-1], 1, generator=gen, dtype=torch.float64))


def _reference(M0, calls, rule):
    """float64 step-by-step loop over every item of every call (independent of the module)."""
    M = M0.clone()
    for K, V, lr, decay in calls:
        for i in range(K.shape[-2]):
            k, v = K[..., i : i + 1, :], V[..., i : i + 1, :]
            eta = lr[..., i, None, None] if torch.is_tensor(lr) else lr
            if decay is None:
                lam = 1.0
            elif torch.is_tensor(decay):
                lam = decay[..., i, None, None]
            else:
                lam = decay
            M = lam * M
            u = eta * v if rule == "hebbian" else eta * (v - k @ M)
            M = M + k.mT @ u
    return M


memories = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "rule": st.sampled_from(["hebbian", "delta"]),
        "batch": st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
        "sizes": st.lists(st.integers(1, 40), min_size=1, max_size=3),
        "d_k": st.integers(1, 8),
        "d_v": st.integers(1, 6),
        "lr_kind": st.sampled_from(["default", "scalar", "item"]),
        "decay_kind": st.sampled_from(["none", "ctor", "scalar", "item"]),
        "with_m0": st.booleans(),
        "chunk_size": st.sampled_from([1, 5, 16, 64]),
        "dtype": st.sampled_from([torch.float32, torch.float64]),
    }
)


def _build(p):
    gen = torch.Generator().manual_seed(p["seed"])
    batch, d_k, d_v, dtype = p["batch"], p["d_k"], p["d_v"], p["dtype"]
    M0 = torch.randn(*batch, d_k, d_v, generator=gen, dtype=torch.float64) if p["with_m0"] else None
    mem = MatrixMemory(
        d_k,
        d_v,
        rule=p["rule"],
        lr=0.9,
        decay=0.95 if p["decay_kind"] == "ctor" else None,
        chunk_size=p["chunk_size"],
        M0=None if M0 is None else M0.to(dtype),
    )
    calls = []
    for n in p["sizes"]:
        K, V = _keys(gen, (*batch, n, d_k)), torch.randn(*batch, n, d_v, generator=gen).double()
        lr_arg: float | torch.Tensor | None = None
        lr_ref: float | torch.Tensor = 0.9
        if p["lr_kind"] == "scalar":
            lr_arg = lr_ref = 0.6
        elif p["lr_kind"] == "item":
            lr_ref = 0.05 + 1.4 * torch.rand(*batch, n, generator=gen, dtype=torch.float64)
            lr_arg = lr_ref.to(dtype)
        dec_arg: float | torch.Tensor | None = None
        dec_ref: float | torch.Tensor | None = 0.95 if p["decay_kind"] == "ctor" else None
        if p["decay_kind"] == "scalar":
            dec_arg = dec_ref = 0.8
        elif p["decay_kind"] == "item":
            dec_ref = 0.5 + 0.5 * torch.rand(*batch, n, generator=gen, dtype=torch.float64)
            dec_arg = dec_ref.to(dtype)
        # Round inputs to the memory dtype first, so the reference sees the same numbers.
        K, V = K.to(dtype), V.to(dtype)
        if torch.is_tensor(lr_ref):
            lr_ref = lr_arg.double()
        if torch.is_tensor(dec_ref):
            dec_ref = dec_arg.double()
        mem.write(K, V, lr=lr_arg, decay=dec_arg)
        calls.append((K.double(), V.double(), lr_ref, dec_ref))
    m0_ref = (
        M0.to(dtype).double()
        if M0 is not None
        else torch.zeros(*batch, d_k, d_v, dtype=torch.float64)
    )
    return mem, calls, m0_ref, gen


@settings(max_examples=60, deadline=None)
@given(p=memories)
def test_primal_read_equals_dual_read(p):
    mem, calls, M0, gen = _build(p)
    dtype, batch = p["dtype"], p["batch"]
    n = sum(p["sizes"])
    assert len(mem) == n
    assert mem.M.shape == (*batch, p["d_k"], p["d_v"]) and mem.M.dtype == dtype
    _close(mem.M, _reference(M0, calls, p["rule"]), dtype)

    q = torch.randn(*batch, 7, p["d_k"], generator=gen, dtype=torch.float64).to(dtype)
    primal = mem.read(q)
    assert primal.shape == (*batch, 7, p["d_v"]) and primal.dtype == dtype
    slots = mem.to_slots()
    extra = p["d_k"] if p["with_m0"] else 0
    assert len(slots) == n + extra
    _close(slots.read(q), primal, dtype)
    # Without the M0 slots the dual holds only what was written: q (M - Lambda M0).
    scale = mem.initial_scale
    m0_left = M0 * (scale.double()[..., None, None] if scale.ndim else float(scale))
    _close(
        mem.to_slots(include_initial=False).read(q), q.double() @ (mem.M.double() - m0_left), dtype
    )
    # The stored keys are the written keys, in order.
    assert torch.equal(mem.keys, torch.cat([c[0].to(dtype) for c in calls], dim=-2))


def test_dual_values_hebbian_with_decay_across_calls():
    gen = torch.Generator().manual_seed(5)
    K, V = _keys(gen, (5, 3)), torch.randn(5, 2, generator=gen, dtype=torch.float64)
    mem = MatrixMemory(3, 2, lr=2.0, decay=0.5)
    mem.write(K[:2], V[:2])
    mem.write(K[2:], V[2:], lr=torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64))
    # Item n is scaled by its rate and by the product of all decays after it.
    expected = torch.stack(
        [2 * 0.5**4 * V[0], 2 * 0.5**3 * V[1], 0.5**2 * V[2], 3 * 0.5 * V[3], V[4]]
    )
    assert torch.allclose(mem.dual_values, expected, atol=1e-14)


def test_delta_rule_split_writes_equal_one_write():
    gen = torch.Generator().manual_seed(6)
    K, V = _keys(gen, (2, 30, 6)), torch.randn(2, 30, 4, generator=gen, dtype=torch.float64)
    one = MatrixMemory(6, 4, rule="delta", lr=0.7, decay=0.9, chunk_size=8).write(K, V)
    split = MatrixMemory(6, 4, rule="delta", lr=0.7, decay=0.9, chunk_size=8)
    for a, b in [(0, 7), (7, 8), (8, 30)]:
        split.write(K[:, a:b], V[:, a:b])
    assert torch.allclose(one.M, split.M, atol=1e-12)
    assert torch.allclose(one.dual_values, split.dual_values, atol=1e-12)


def test_order_dependence():
    gen = torch.Generator().manual_seed(7)
    K, V = _keys(gen, (25, 5)), torch.randn(25, 3, generator=gen, dtype=torch.float64)
    perm = torch.randperm(25, generator=gen)
    q = torch.randn(10, 5, generator=gen, dtype=torch.float64)
    h1 = MatrixMemory(5, 3).write(K, V).read(q)
    h2 = MatrixMemory(5, 3).write(K[perm], V[perm]).read(q)
    assert torch.allclose(h1, h2, atol=1e-12)
    d1 = MatrixMemory(5, 3, rule="delta").write(K, V).read(q)
    d2 = MatrixMemory(5, 3, rule="delta").write(K[perm], V[perm]).read(q)
    assert float((d1 - d2).abs().max()) > 1e-3


def test_delta_rule_orthonormal_keys_stores_values_exactly():
    gen = torch.Generator().manual_seed(8)
    Q, _ = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))
    K, V = Q[:9], torch.randn(9, 4, generator=gen, dtype=torch.float64)
    mem = MatrixMemory(12, 4, rule="delta", lr=1.0, chunk_size=4)
    mem.write(K, V + 1.0)  # a first, wrong association is overwritten...
    mem.write(K, V)  # ...by the delta rule's error correction
    assert torch.allclose(mem.read(K), V, atol=1e-12)
    heb = MatrixMemory(12, 4).write(K, V + 1.0).write(K, V)
    assert not torch.allclose(heb.read(K), V, atol=1e-3)


def test_empty_memory_reads_zeros_and_refuses_to_slots():
    mem = MatrixMemory(4, 3)
    out = mem.read(torch.ones(2, 5, 4, dtype=torch.float64))
    assert out.shape == (2, 5, 3) and out.dtype == torch.float64 and not out.any()
    assert len(mem) == 0
    with pytest.raises(ValueError, match="to_slots: the memory is empty"):
        mem.to_slots()


def test_m0_is_read_before_writing():
    M0 = torch.arange(6.0).reshape(3, 2)
    mem = MatrixMemory(3, 2, M0=M0)
    assert torch.equal(mem.read(torch.eye(3)), M0)


def test_numpy_input_and_dtypes():
    rng = np.random.default_rng(0)
    K, V = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    mem = MatrixMemory(4, 3).write(K, V)
    assert mem.M.dtype == torch.float64  # numpy float64 stays float64
    assert np.allclose(mem.M.numpy(), K.T @ V)
    out = mem.read(K.astype(np.float32))
    assert out.dtype == torch.float32  # output follows the query
    assert np.allclose(out.numpy(), K.astype(np.float32) @ (K.T @ V), atol=1e-4)
    mem32 = MatrixMemory(4, 3, dtype="float32").write(K, V)
    assert mem32.M.dtype == torch.float32 and mem32.to_slots().keys.dtype == torch.float32
    assert torch.allclose(mem32.to_slots().read(K).double(), mem.read(K), atol=1e-4)


@pytest.mark.parametrize("arg", ["keys", "values"])
@pytest.mark.parametrize("rule", ["hebbian", "delta"])
@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.add_(1.0),
        lambda t: t[0].zero_(),  # through a view: views share the version counter
        lambda t: t.copy_(t.flip(0)),
    ],
)
def test_in_place_change_after_write_raises_naming_the_argument(arg, rule, change):
    # a write above the copy threshold: kept by reference, checked by version counter
    gen = torch.Generator().manual_seed(3)
    K, V = torch.randn(BIG, 3, generator=gen), torch.randn(BIG, 2, generator=gen)
    K /= K.norm(dim=-1, keepdim=True)  # (|k| = 1: the delta rule at lr 0.3 is stable)
    mem = MatrixMemory(3, 2, rule=rule, lr=1.0 if rule == "hebbian" else 0.3).write(K, V)
    M = mem.M.clone()
    change(K if arg == "keys" else V)
    if rule == "delta" and arg == "values":
        # the delta rule keeps its own residuals, never the caller's values
        mem.to_slots()
        return
    msg = rf"{arg}: modified in place after MatrixMemory.write.*{arg}\.clone\(\).*keep_pairs=False"
    for use in (mem.to_slots, lambda: mem.keys, lambda: mem.dual_values, mem.state_tensors):
        with pytest.raises(RuntimeError, match=msg):
            use()
    assert torch.equal(mem.M, M)  # M never depends on the caller's tensors after a write
    # a later write (several chunks to concatenate) still checks the earlier ones
    mem.write(torch.randn(2, 3, generator=gen), torch.randn(2, 2, generator=gen))
    with pytest.raises(RuntimeError, match=msg):
        mem.to_slots()


def test_unchanged_tensors_pass_and_consolidation_drops_the_references():
    gen = torch.Generator().manual_seed(4)
    K1, V1 = torch.randn(5, 3, generator=gen), torch.randn(5, 2, generator=gen)
    K2, V2 = torch.randn(4, 3, generator=gen), torch.randn(4, 2, generator=gen)
    mem = MatrixMemory(3, 2).write(K1, V1).write(K2, V2)
    q = torch.randn(6, 3, generator=gen)
    before = mem.to_slots().read(q)  # concatenates: fresh tensors from here on
    assert torch.equal(mem.keys, torch.cat([K1, K2])) and torch.equal(
        mem.dual_values, torch.cat([V1, V2])
    )
    K1.add_(1.0)
    V2.mul_(2.0)
    assert torch.equal(mem.to_slots().read(q), before)


def test_rate_not_one_or_decay_copies_values_and_keeps_keys():
    # eta != 1 (or a decay) makes fresh dual values: changing V later is harmless
    gen = torch.Generator().manual_seed(6)
    for kwargs in ({"lr": 0.5}, {"decay": 0.9}):
        K, V = torch.randn(BIG, 3, generator=gen), torch.randn(BIG, 2, generator=gen)
        mem = MatrixMemory(3, 2, **kwargs).write(K, V)
        dual = mem.dual_values.clone()
        V.add_(1.0)
        assert torch.equal(mem.dual_values, dual)
        K.add_(1.0)
        with pytest.raises(RuntimeError, match="keys: modified in place"):
            mem.to_slots()
    # a rate of 1 given per call is the default's
    K, V = torch.randn(BIG, 3, generator=gen), torch.randn(BIG, 2, generator=gen)
    mem = MatrixMemory(3, 2, lr=0.5).write(K, V, lr=1)
    assert mem.dual_values.data_ptr() == V.data_ptr()
    # a small write with a decay keeps its keys by reference too (the copy needs no decay)
    K, V = torch.randn(5, 3, generator=gen), torch.randn(5, 2, generator=gen)
    mem = MatrixMemory(3, 2, decay=0.9).write(K, V)
    assert mem.keys.data_ptr() == K.data_ptr()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_input_changed_later_does_not_leak_in(dtype):
    rng = np.random.default_rng(1)
    K, V = rng.standard_normal((6, 4)).astype(dtype), rng.standard_normal((6, 3)).astype(dtype)
    K0, V0 = K.copy(), V.copy()
    mem = MatrixMemory(4, 3).write(K, V)
    K += 1.0  # numpy writes bump no torch version counter: the memory must hold copies
    V[:] = 0.0
    assert torch.equal(mem.keys, torch.from_numpy(K0))
    assert torch.equal(mem.dual_values, torch.from_numpy(V0))
    slots = mem.to_slots()
    q = rng.standard_normal((2, 4)).astype(dtype)
    assert np.allclose(slots.read(q).numpy(), q @ K0.T @ V0, atol=1e-5)


def test_converted_input_is_private():
    # float64 keys into a float32 memory are converted (a fresh tensor): no check needed
    gen = torch.Generator().manual_seed(7)
    K, V = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randn(5, 2, generator=gen)
    mem = MatrixMemory(3, 2, dtype="float32").write(K, V)
    keys = mem.keys.clone()
    K.add_(1.0)
    assert torch.equal(mem.keys, keys) and keys.dtype == torch.float32
    # non-contiguous keys are copied as before; inference tensors (no version counter) too
    Kt = torch.randn(3, 5, generator=gen).mT
    mem = MatrixMemory(3, 2).write(Kt, V)
    assert mem.keys.data_ptr() != Kt.data_ptr() and torch.equal(mem.keys, Kt)
    with torch.inference_mode():
        Ki, Vi = torch.randn(5, 3), torch.randn(5, 2)
        mem = MatrixMemory(3, 2).write(Ki, Vi)
        keys, dual = mem.keys.clone(), mem.dual_values.clone()
        Ki.add_(1.0)
        Vi.add_(1.0)
        assert torch.equal(mem.keys, keys) and torch.equal(mem.dual_values, dual)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.one_of(st.integers(1, 300), st.integers(1, 20).map(lambda i: 800 * i)),
    d_k=st.integers(1, 40),
    d_v=st.integers(1, 40),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    with_m0=st.booleans(),
)
def test_default_write_keeps_by_reference_and_m_is_the_bare_product(
    seed, n, d_k, d_v, dtype, with_m0
):
    gen = torch.Generator().manual_seed(seed)
    K = torch.randn(n, d_k, generator=gen, dtype=dtype)
    V = torch.randn(n, d_v, generator=gen, dtype=dtype)
    M0 = (
        torch.randn(d_k, d_v, generator=gen, dtype=dtype)
        if with_m0
        else torch.zeros(d_k, d_v, dtype=dtype)
    )
    mem = MatrixMemory(d_k, d_v, M0=M0 if with_m0 else None).write(K, V)
    # bit for bit the bare product (the default rate 1 multiplies nothing)
    assert torch.equal(mem.M, M0 + K.T @ V)
    # above the copy threshold no copy: the kept pairs are the caller's tensors; below, copies
    by_reference = n * (d_k + d_v) > _COPY_MAX_ELEMENTS
    assert (mem.keys.data_ptr() == K.data_ptr()) == by_reference
    assert (mem.dual_values.data_ptr() == V.data_ptr()) == by_reference
    # the same dual as the old arithmetic (keys copied, dual = v * eta)
    assert torch.equal(mem.keys, K.clone()) and torch.equal(
        mem.dual_values, V * torch.tensor(1.0, dtype=dtype)
    )
    q = torch.randn(3, d_k, generator=gen, dtype=dtype)
    old = SlotMemory("dot", "identity")
    old.write(K.clone(), V * torch.tensor(1.0, dtype=dtype))
    assert torch.equal(mem.to_slots(include_initial=False).read(q), old.read(q))


def test_clear_and_batch_shape():
    mem = MatrixMemory(3, 2).write(torch.randn(4, 5, 3), torch.randn(4, 5, 2))
    assert mem.batch_shape == (4,)
    mem.write(torch.randn(5, 3), torch.randn(4, 5, 2))  # keys broadcast over the batch
    assert len(mem) == 10 and mem.keys.shape == (4, 10, 3)
    with pytest.raises(ValueError, match=r"keys: expected leading \(batch\) dimensions \[4\]"):
        mem.write(torch.randn(3, 5, 3), torch.randn(3, 5, 2))
    mem.clear()
    assert len(mem) == 0 and mem.batch_shape is None and not mem.M.any()
    mem.write(torch.randn(2, 1, 3), torch.randn(2, 1, 2))  # a new batch shape after clear
    assert mem.M.shape == (2, 3, 2)


@pytest.mark.parametrize("rule", ["hebbian", "delta"])
def test_keep_pairs_false_stores_only_the_matrix(rule):
    gen = torch.Generator().manual_seed(10)
    K, V = _keys(gen, (2, 9, 3)), torch.randn(2, 9, 2, generator=gen, dtype=torch.float64)
    lr, dec = torch.rand(2, 9, generator=gen, dtype=torch.float64), 0.9
    full = (
        MatrixMemory(3, 2, rule=rule, decay=dec).write(K, V).write(K[:, :4], V[:, :4], lr=lr[:, :4])
    )
    lean = MatrixMemory(3, 2, rule=rule, decay=dec, keep_pairs=False)
    lean.write(K, V).write(K[:, :4], V[:, :4], lr=lr[:, :4])
    assert torch.allclose(lean.M, full.M, atol=1e-12)
    with pytest.raises(ValueError, match="keep_pairs=False"):
        lean.to_slots()
    assert set(lean.state_tensors()) == {"M", "count", "initial_scale"}


@pytest.mark.parametrize("rule", ["hebbian", "delta"])
def test_persistence_round_trip(rule):
    gen = torch.Generator().manual_seed(9)
    M0 = torch.randn(2, 4, 3, generator=gen)
    mem = MatrixMemory(4, 3, rule=rule, lr=0.5, decay=0.9, M0=M0, dtype="float32")
    mem.write(_keys(gen, (2, 7, 4)).float(), torch.randn(2, 7, 3, generator=gen))
    mem.write(_keys(gen, (2, 3, 4)).float(), torch.randn(2, 3, 3, generator=gen), lr=2.0)
    # Through safetensors bytes, as kvmem.core.persistence does.
    tensors = load(save(mem.state_tensors()))
    config = mem.state_config()
    assert config == {
        "d_k": 4,
        "d_v": 3,
        "rule": rule,
        "lr": 0.5,
        "decay": 0.9,
        "chunk_size": 64,
        "dtype": "float32",
        "keep_pairs": True,
    }
    back = MatrixMemory.from_state(config, tensors)
    q = torch.randn(2, 5, 4, generator=gen)
    assert len(back) == 10
    assert torch.equal(back.read(q), mem.read(q))
    assert torch.allclose(back.to_slots().read(q), mem.read(q), atol=1e-5)
    back.write(0.5 * torch.randn(2, 1, 4), torch.randn(2, 1, 3))  # keeps working after loading
    assert len(back) == 11


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (
            lambda m: m.write(torch.zeros(5, 4), torch.zeros(5, 2)),
            ValueError,
            ["keys", "3", "[5, 4]"],
        ),
        (
            lambda m: m.write(torch.zeros(5, 3), torch.zeros(5, 7)),
            ValueError,
            ["values", "2", "[5, 7]"],
        ),
        (
            lambda m: m.write(torch.zeros(5, 3), torch.zeros(4, 2)),
            ValueError,
            ["values", "N = 5", "[4, 2]"],
        ),
        (lambda m: m.write(torch.zeros(3), torch.zeros(1, 2)), ValueError, ["keys", "[3]"]),
        (
            lambda m: m.write(torch.full((5, 3), float("nan")), torch.zeros(5, 2)),
            ValueError,
            ["keys", "NaN or Inf"],
        ),
        (
            lambda m: m.write(torch.zeros(5, 3), torch.full((5, 2), float("inf"))),
            ValueError,
            ["values", "NaN or Inf"],
        ),
        (
            lambda m: m.write(torch.zeros(5, 3, dtype=torch.int64), torch.zeros(5, 2)),
            TypeError,
            ["keys", "int64"],
        ),
        (
            lambda m: m.write(np.zeros((5, 3), dtype=np.int32), np.zeros((5, 2))),
            TypeError,
            ["keys", "int32"],
        ),
        (
            lambda m: m.write(torch.zeros(5, 3), torch.zeros(5, 2), lr=float("nan")),
            ValueError,
            ["lr", "finite"],
        ),
        (
            lambda m: m.write(torch.zeros(5, 3), torch.zeros(5, 2), lr=torch.ones(4)),
            ValueError,
            ["lr", "[..., 5]", "[4]"],
        ),
        (
            lambda m: m.write(
                torch.zeros(5, 3), torch.zeros(5, 2), lr=torch.tensor([1, 1, 1, 1, float("inf")])
            ),
            ValueError,
            ["lr", "NaN or Inf"],
        ),
        (
            lambda m: m.write(torch.zeros(5, 3), torch.zeros(5, 2), decay=1.2),
            ValueError,
            ["decay", "[0.0, 1.0]"],
        ),
        (lambda m: m.read(torch.zeros(2, 4)), ValueError, ["queries", "3", "[2, 4]"]),
        (lambda m: m.read(torch.full((2, 3), float("nan"))), ValueError, ["queries", "NaN"]),
        (lambda m: m.write("keys", torch.zeros(5, 2)), TypeError, ["keys", "str"]),
    ],
)
def test_bad_inputs_name_the_argument(call, exc, words):
    mem = MatrixMemory(3, 2)
    with pytest.raises(exc) as info:
        call(mem)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert len(mem) == 0 and mem.batch_shape is None  # a rejected write changes nothing


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"rule": "oja"}, ValueError, ["rule", "'hebbian'", "'delta'", "'oja'"]),
        ({"lr": float("inf")}, ValueError, ["lr", "finite"]),
        ({"lr": "fast"}, TypeError, ["lr"]),
        ({"decay": -0.5}, ValueError, ["decay"]),
        ({"d_k": 0}, ValueError, ["d_k"]),
        ({"chunk_size": 0}, ValueError, ["chunk_size"]),
        ({"dtype": "int8"}, ValueError, ["dtype", "float32"]),
        ({"M0": torch.zeros(2, 2)}, ValueError, ["M0", "[..., 3, 2]", "[2, 2]"]),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, words):
    args = {"d_k": 3, "d_v": 2, **kwargs}
    with pytest.raises(exc) as info:
        MatrixMemory(**args)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_delta_rule_warns_when_unstable() -> None:
    keys = torch.full((3, 4), 1.0)  # |k|^2 = 4
    mem = MatrixMemory(4, 2, rule="delta", lr=0.6)  # 0.6 * 4 = 2.4 > 2
    with pytest.warns(RuntimeWarning, match=r"lr \* \|k\|\^2 > 2 \(largest here 2.4\)"):
        mem.write(keys, torch.ones(3, 2))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MatrixMemory(4, 2, rule="delta", lr=0.4).write(keys, torch.ones(3, 2))
        MatrixMemory(4, 2, rule="hebbian", lr=5.0).write(keys, torch.ones(3, 2))


def test_read_with_non_broadcasting_batch_names_queries() -> None:
    mem = MatrixMemory(3, 2).write(torch.randn(4, 5, 3), torch.randn(4, 5, 2))
    with pytest.raises(ValueError, match=r"queries: .*\[4\].*got shape \[3, 1, 3\]"):
        mem.read(torch.randn(3, 1, 3))
    assert mem.read(torch.randn(2, 1, 1, 3)).shape == (2, 4, 1, 2)  # broadcasting still works


def test_zero_m0_adds_no_slots_and_is_saved() -> None:
    mem = MatrixMemory(3, 2, M0=torch.zeros(3, 2)).write(torch.eye(3), torch.ones(3, 2))
    assert len(mem.to_slots()) == 3  # an all-zero M0 carries nothing into the dual form
    assert torch.equal(mem.state_tensors()["M0"], torch.zeros(3, 2))


def test_hebbian_per_item_rates_numpy_and_decay_match_dual_form() -> None:
    gen = torch.Generator().manual_seed(5)
    k = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    lr = np.linspace(0.5, 1.0, 6)
    dec = np.full(6, 0.9)
    mem = MatrixMemory(3, 2).write(k, v, lr=lr, decay=dec)
    lam = torch.as_tensor(dec)
    expected = sum(float(lam[i + 1 :].prod()) * lr[i] * torch.outer(k[i], v[i]) for i in range(6))
    torch.testing.assert_close(mem.M, expected, atol=1e-12, rtol=0)
    q = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(mem.to_slots().read(q), mem.read(q), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match=r"decay: expected values in \[0, 1\], got values"):
        mem.write(k, v, decay=np.full(6, 1.5))


@pytest.mark.parametrize("late", [True, False])
@pytest.mark.parametrize("keep_pairs", [True, False])
def test_non_finite_found_through_the_product(
    monkeypatch: pytest.MonkeyPatch, late: bool, keep_pairs: bool
) -> None:
    # Hebbian writes check NaN / Inf through M' (no pass over the inputs); a bad entry facing
    # only zeros still makes M' non-finite (0 * Inf = NaN), and the error names the argument.
    import kvmem.core.matrix_memory as mmod

    if not late:
        monkeypatch.setattr(mmod, "_propagates_non_finite", lambda device, dtype: False)
    mem = MatrixMemory(3, 2, keep_pairs=keep_pairs)
    mem.write(torch.ones(2, 3), torch.ones(2, 2))
    before = mem.M.clone()
    k = torch.zeros(4, 3)
    k[1, 2] = float("inf")
    with pytest.raises(ValueError, match="keys: contains 1 NaN or Inf"):
        mem.write(k, torch.zeros(4, 2))
    v = torch.zeros(4, 2)
    v[3, 0] = float("nan")
    with pytest.raises(ValueError, match="values: contains 1 NaN or Inf"):
        mem.write(torch.zeros(4, 3), v, lr=0.0)
    assert torch.equal(mem.M, before) and len(mem) == 2  # rejected writes change nothing
    # finite inputs whose product overflows are accepted, as before
    mem.write(torch.full((2, 3), 1e30), torch.full((2, 2), 1e30))
    assert torch.isinf(mem.M).all()


def test_rate_set_after_construction_is_used() -> None:
    # the memory's rate is cached as a tensor per value: changing mem.lr takes effect
    k, v = torch.eye(3), torch.ones(3, 2)
    mem = MatrixMemory(3, 2)
    mem.write(k, v)
    mem.lr = 0.5
    mem.write(k, v)
    torch.testing.assert_close(mem.M, 1.5 * torch.ones(3, 2), rtol=0, atol=0)


# ----------------------------------------------------------------- fast paths (issue 15)


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (tells -0.0 from 0.0, unlike torch.equal)."""
    return t.contiguous().view({torch.float32: torch.int32, torch.float64: torch.int64}[t.dtype])


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(_bits(a), _bits(b))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    d_k=st.integers(1, 12),
    d_v=st.integers(1, 12),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    with_m0=st.booleans(),
    keep_pairs=st.booleans(),
    lr=st.sampled_from([None, 1.0]),
)
def test_plain_write_and_read_match_the_general_path_bit_for_bit(
    seed, sizes, d_k, d_v, dtype, with_m0, keep_pairs, lr
):
    # The 2-D, rate-1, no-decay write and the 2-D read skip the general path's conversions
    # (_write_plain, MatrixMemory.read); M, kept pairs, dual reads and reads are unchanged.
    from unittest import mock

    gen = torch.Generator().manual_seed(seed)
    M0 = torch.randn(d_k, d_v, generator=gen, dtype=dtype) if with_m0 else None
    fast = MatrixMemory(d_k, d_v, M0=M0, keep_pairs=keep_pairs)
    slow = MatrixMemory(d_k, d_v, M0=M0, keep_pairs=keep_pairs)
    taken = []
    plain = MatrixMemory._write_plain
    for n in sizes:
        K = torch.randn(n, d_k, generator=gen, dtype=dtype)
        V = torch.randn(n, d_v, generator=gen, dtype=dtype)
        V[V.abs() < 0.3] = -0.0  # signed zeros must survive as in the general path
        with mock.patch.object(
            MatrixMemory, "_write_plain", lambda *a: taken.append(plain(*a)) or taken[-1]
        ):
            fast.write(K, V, lr=lr)
        with mock.patch.object(MatrixMemory, "_write_plain", lambda *a: False):
            slow.write(K, V, lr=lr)
    # every write after the first (or every write, with M0) takes the fast path
    assert taken == [with_m0] + [True] * (len(sizes) - 1)
    assert _same(fast.M, slow.M) and len(fast) == len(slow) == sum(sizes)
    assert fast.batch_shape == slow.batch_shape == ()
    q = torch.randn(5, d_k, generator=gen, dtype=dtype)
    # the numpy query goes through the general read (as_float_tensor, broadcast, q @ M)
    assert _same(fast.read(q), slow.read(q.numpy())) and _same(fast.read(q), q @ slow.M)
    if keep_pairs:
        assert _same(fast.keys, slow.keys) and _same(fast.dual_values, slow.dual_values)
        assert _same(fast.to_slots().read(q), slow.to_slots().read(q))


def test_plain_write_checks_and_errors_as_the_general_path() -> None:
    # Once written (the fast path applies), bad input still raises the same errors, and a
    # rejected write changes nothing.
    nan = float("nan")
    calls = [
        lambda m: m.write(torch.full((5, 3), nan), torch.zeros(5, 2)),
        lambda m: m.write(torch.zeros(5, 3), torch.full((5, 2), float("inf"))),
        lambda m: m.write(torch.zeros(5, 4), torch.zeros(5, 2)),
        lambda m: m.write(torch.zeros(5, 3), torch.zeros(4, 2)),
        lambda m: m.write(torch.zeros(5, 3, dtype=torch.int64), torch.zeros(5, 2)),
        lambda m: m.write(torch.zeros(5, 3), torch.zeros(5, 2), lr=True),
        lambda m: m.read(torch.full((2, 3), nan)),
        lambda m: m.read(torch.zeros(2, 4)),
        lambda m: m.read(torch.zeros(2, 3, dtype=torch.int32)),
        lambda m: m.read(torch.zeros(3)),
    ]
    for call in calls:
        mem = MatrixMemory(3, 2).write(torch.ones(2, 3), torch.ones(2, 2))
        M, n = mem.M.clone(), len(mem)
        with pytest.raises((ValueError, TypeError)) as fast_err:
            call(mem)
        assert torch.equal(mem.M, M) and len(mem) == n and len(mem.keys) == n
        ref = MatrixMemory(3, 2)  # empty: the general path for every call
        with pytest.raises(fast_err.type) as ref_err:
            call(ref)
        assert str(fast_err.value) == str(ref_err.value)


def test_plain_write_keeps_by_reference_and_checks_versions() -> None:
    # writes above the copy threshold (BIG pairs): by reference, checked by version counter
    gen = torch.Generator().manual_seed(9)
    K1, V1 = torch.randn(4, 3, generator=gen), torch.randn(4, 2, generator=gen)
    K2, V2 = torch.randn(BIG, 3, generator=gen), torch.randn(BIG, 2, generator=gen)
    mem = MatrixMemory(3, 2).write(K1, V1).write(K2, V2)  # the second write: fast path
    keys, dual = mem.keys.clone(), mem.dual_values.clone()
    assert torch.equal(keys, torch.cat([K1, K2])) and torch.equal(dual, torch.cat([V1, V2]))
    mem = MatrixMemory(3, 2).write(K1, V1).write(K2, V2)
    V2.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"values: modified in place after MatrixMemory"):
        mem.to_slots()
    # the stored chunks are views of their own: a swap of the caller's tensor data (which
    # bumps no version counter) does not reach them
    K3, V3 = torch.randn(BIG, 3, generator=gen), torch.randn(BIG, 2, generator=gen)
    mem = MatrixMemory(3, 2).write(K1, V1).write(K3, V3)
    assert mem._key_chunks[-1].data_ptr() == K3.data_ptr()  # by reference indeed
    K3_before = K3.clone()
    K3.data = torch.zeros(2, 7)
    assert torch.equal(mem.keys[4:], K3_before)
    # non-contiguous keys on a later write are copied, as on the first
    Kt = torch.randn(3, 5, generator=gen).mT
    mem = MatrixMemory(3, 2).write(K1, V1).write(Kt, V3[:5].clone())
    Kt_before = Kt.clone()
    Kt.add_(1.0)
    assert torch.equal(mem.keys[4:], Kt_before)


def test_plain_write_gradients_match_the_general_path() -> None:
    from unittest import mock

    gen = torch.Generator().manual_seed(10)
    K = torch.randn(6, 3, generator=gen, requires_grad=True)
    V = torch.randn(6, 2, generator=gen, requires_grad=True)
    q = torch.randn(4, 3, generator=gen)
    grads = []
    for force_general in (False, True):
        mem = MatrixMemory(3, 2).write(torch.ones(1, 3), torch.ones(1, 2))
        with mock.patch.object(
            MatrixMemory,
            "_write_plain",
            (lambda *a: False) if force_general else MatrixMemory._write_plain,
        ):
            mem.write(K, V)
        mem.read(q).square().sum().backward()
        grads.append((K.grad.clone(), V.grad.clone()))
        K.grad = V.grad = None
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def test_plain_write_leaves_other_rates_to_the_general_path() -> None:
    # a rate set later as a tensor is not "the number 1": general path, as before
    k, v = torch.eye(3), torch.ones(3, 2)
    mem = MatrixMemory(3, 2).write(k, v)
    mem.lr = torch.tensor(1.0)
    V = torch.ones(3, 2)
    mem.write(k, V)
    V.add_(1.0)  # the dual values of a tensor rate are a copy (v * eta): no RuntimeError
    assert torch.equal(mem.dual_values, torch.ones(6, 2))


# ---------------------------------------------------------------- small writes are copied
# Issue 15 (per-call overhead): writes of at most _COPY_MAX_ELEMENTS = N (d_k + d_v) elements
# are copied into a buffer the memory owns instead of kept by reference, so many small writes
# leave a few chunks (not one tensor object per write for the garbage collector to walk).


def _big(d_k: int, d_v: int) -> int:
    """The smallest N kept by reference for these widths."""
    return _COPY_MAX_ELEMENTS // (d_k + d_v) + 1


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    plan=st.lists(
        st.tuples(st.sampled_from(["small", "small", "large"]), st.integers(1, 30), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    d_k=st.integers(1, 6),
    d_v=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    general=st.booleans(),
    pending=st.integers(1, 4),
)
def test_small_and_large_writes_equal_the_concatenation_bit_for_bit(
    seed, plan, d_k, d_v, dtype, general, pending
):
    # (a), (c): any mix of small (copied) and large (by reference) 2-D writes, with reads of
    # the dual form in between, gives M, keys, dual values and dual reads of the plain
    # computation; general=True sends every write down the general path (which copies too).
    # The copies go to the buffer every `pending` writes (32 in use), so merges, growth and
    # flushes with blocks still pending all happen within a few writes.
    from unittest import mock

    from kvmem.core import matrix_memory

    with mock.patch.object(matrix_memory, "_PENDING_WRITES", pending):
        _small_and_large_writes(seed, plan, d_k, d_v, dtype, general)


def _small_and_large_writes(seed, plan, d_k, d_v, dtype, general):
    from unittest import mock

    gen = torch.Generator().manual_seed(seed)
    mem = MatrixMemory(d_k, d_v)
    M = torch.zeros(d_k, d_v, dtype=dtype)
    Ks: list[torch.Tensor] = []
    Vs: list[torch.Tensor] = []
    q = torch.randn(4, d_k, generator=gen, dtype=dtype)
    seen = []  # (tensor handed out, its value then): later writes must not change them
    for kind, n, look in plan:
        n = n if kind == "small" else _big(d_k, d_v) + n
        K = torch.randn(n, d_k, generator=gen, dtype=dtype)
        V = torch.randn(n, d_v, generator=gen, dtype=dtype)
        if general:
            with mock.patch.object(MatrixMemory, "_write_plain", lambda *a: False):
                mem.write(K, V)
        else:
            mem.write(K, V)
        M = M + K.mT @ V
        Ks.append(K)
        Vs.append(V)
        if look:
            slots = mem.to_slots()
            ref = SlotMemory("dot", "identity")
            ref.write(torch.cat(Ks), torch.cat(Vs))
            assert _same(slots.read(q), ref.read(q))
            seen += [(mem.keys, torch.cat(Ks)), (mem.dual_values, torch.cat(Vs))]
            seen.append((slots.read(q), ref.read(q)))
    assert _same(mem.M, M) and len(mem) == sum(len(k) for k in Ks)
    assert _same(mem.keys, torch.cat(Ks)) and _same(mem.dual_values, torch.cat(Vs))
    ref = SlotMemory("dot", "identity")
    ref.write(torch.cat(Ks), torch.cat(Vs))
    assert _same(mem.to_slots().read(q), ref.read(q)) and _same(mem.read(q), q @ M)
    for got, want in seen:
        assert _same(got, want)
    assert mem.keys.is_contiguous() and mem.dual_values.is_contiguous()
    # read: one chunk, nothing of the caller's kept (but a single large write's own tensors)
    assert len(mem._key_chunks) == 1
    assert mem._kept == [] or [kind for kind, _, _ in plan] == ["large"]


@pytest.mark.parametrize("lr", [1.0, 0.5])
def test_many_small_writes_leave_few_chunks(lr):
    # (b) the point of the change: 5000 writes, one chunk (the rate-1 fast path, and the
    # general path at another rate), nothing kept by reference
    gen = torch.Generator().manual_seed(21)
    K = torch.randn(5000, 4, 3, generator=gen)
    V = torch.randn(5000, 4, 2, generator=gen)
    mem = MatrixMemory(3, 2, lr=lr)
    M = torch.zeros(3, 2)
    eta = torch.tensor(lr)
    for k, v in zip(K, V, strict=True):
        mem.write(k, v)
        M = M + k.mT @ v if lr == 1.0 else M + k.mT @ (v * eta)
    assert len(mem._key_chunks) == len(mem._dual_chunks) == len(mem._call_decay) == 1
    assert mem._kept == [] and len(mem) == 20000
    assert torch.equal(mem.M, M)
    assert torch.equal(mem.keys, K.reshape(-1, 3))
    assert torch.equal(mem.dual_values, (V * eta).reshape(-1, 2) if lr != 1.0 else V.reshape(-1, 2))


@pytest.mark.parametrize("general", [False, True])
def test_small_writes_are_copies_unaffected_by_later_changes(general):
    gen = torch.Generator().manual_seed(22)
    K1, V1 = torch.randn(4, 3, generator=gen), torch.randn(4, 2, generator=gen)
    K2, V2 = torch.randn(5, 3, generator=gen), torch.randn(5, 2, generator=gen)
    lr = 0.5 if general else 1.0  # another rate: the general path
    mem = MatrixMemory(3, 2, lr=lr).write(K1, V1).write(K2, V2)
    keys, dual, M = torch.cat([K1, K2]), mem.dual_values.clone(), mem.M.clone()
    assert mem.keys.data_ptr() not in (K1.data_ptr(), K2.data_ptr())
    K1.add_(1.0)
    V2.zero_()
    K2.data = torch.zeros(7, 7)
    assert torch.equal(mem.keys, keys) and torch.equal(mem.dual_values, dual)
    assert torch.equal(mem.M, M)
    mem.to_slots()  # no RuntimeError: nothing of the caller's is kept
    # what the memory handed out is not written into by later writes either
    out = mem.keys
    before = out.clone()
    version = out._version
    mem.write(torch.randn(3, 3, generator=gen), torch.randn(3, 2, generator=gen))
    assert torch.equal(out, before) and out._version == version
    # clear drops the buffer: a new memory's worth of writes
    mem.clear()
    K3, V3 = torch.randn(2, 3, generator=gen), torch.randn(2, 2, generator=gen)
    mem.write(K3, V3)
    assert mem._tail is not None and torch.equal(mem.keys, K3) and mem._tail is None


def test_small_writes_with_decay_batch_or_grad_keep_the_old_behaviour():
    # a decay, batch dimensions or an autograd graph leave the general path as it was
    gen = torch.Generator().manual_seed(23)
    K, V = torch.randn(4, 3, generator=gen), torch.randn(4, 2, generator=gen)
    mem = MatrixMemory(3, 2, decay=0.9).write(K, V).write(K, V)
    assert mem._tail is None and len(mem._key_chunks) == 2
    mem = MatrixMemory(3, 2).write(K[None], V[None]).write(K[None], V[None])
    assert mem._tail is None and len(mem._key_chunks) == 2
    Kg = K.clone().requires_grad_()
    mem = MatrixMemory(3, 2).write(K, V).write(Kg, V)
    assert mem._key_chunks[-1].data_ptr() == Kg.data_ptr()
    assert mem.keys.requires_grad


@pytest.mark.parametrize("consolidated", [False, True])
def test_save_load_with_buffered_small_writes(tmp_path, consolidated):
    # (d) kvmem.save / kvmem.load with a live buffer (or after reading): bit for bit
    import kvmem

    gen = torch.Generator().manual_seed(24)
    mem = MatrixMemory(3, 2)
    Ks, Vs = [], []
    for n in (3, 4, BIG, 2, 6):
        Ks.append(torch.randn(n, 3, generator=gen))
        Vs.append(torch.randn(n, 2, generator=gen))
        mem.write(Ks[-1], Vs[-1])
    if consolidated:
        mem.to_slots()
    path = tmp_path / "mem.safetensors"
    kvmem.save(mem, path)
    back = kvmem.load(path)
    assert _same(back.M, mem.M) and len(back) == len(mem)
    assert _same(back.keys, torch.cat(Ks)) and _same(back.dual_values, torch.cat(Vs))
    state, state_back = mem.state_tensors(), back.state_tensors()
    assert set(state) == set(state_back)
    assert all(_same(state[name], state_back[name]) for name in state if name != "count")
    assert torch.equal(state["count"], state_back["count"])
    # both keep working alike: more small writes after loading
    k, v = torch.randn(5, 3, generator=gen), torch.randn(5, 2, generator=gen)
    mem.write(k, v)
    back.write(k, v)
    assert _same(back.M, mem.M) and _same(back.keys, mem.keys)
    q = torch.randn(4, 3, generator=gen)
    assert _same(back.to_slots().read(q), mem.to_slots().read(q))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_2d_read_refuses_non_finite_queries_with_or_without_grad(requires_grad: bool) -> None:
    # the fast 2-D read's inlined check: a finite sum passes, anything else runs the full
    # check, which names the argument and counts the bad entries
    mem = MatrixMemory(3, 2).write(torch.randn(4, 3), torch.randn(4, 2))
    q = torch.zeros(2, 3)
    q[1, 2] = float("inf")
    q[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^queries: contains 2 NaN or Inf value\(s\)$"):
        mem.read(q.requires_grad_(requires_grad))
    big = torch.full((2, 3), 3e38, requires_grad=requires_grad)  # the sum overflows: accepted
    assert mem.read(big).shape == (2, 2)
