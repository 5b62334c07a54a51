"""FastWeightMemory: the chunkwise-parallel form against the step-by-step recurrence and core."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core.write_rules import delta_write_sequential
from kvmem.nn import FastWeightMemory, fast_weight_chunked, fast_weight_reference

SETTINGS = settings(max_examples=30, deadline=None)


def _inputs(shape, t, d_k, d_v, dtype, seed, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape, t, d_k, generator=gen, dtype=dtype)
    k = F.normalize(torch.randn(*shape, t, d_k, generator=gen, dtype=dtype), dim=-1)
    v = torch.randn(*shape, t, d_v, generator=gen, dtype=dtype)
    beta = torch.rand(*shape, t, generator=gen, dtype=dtype)
    out = (q, k, v, beta)
    return tuple(x.requires_grad_(requires_grad) for x in out)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


@SETTINGS
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    t=st.integers(1, 40),
    d_k=st.integers(1, 8),
    d_v=st.integers(1, 8),
    chunk=st.integers(1, 17),
    rule=st.sampled_from(["hebbian", "delta"]),
    decay=st.sampled_from([None, 1.0, 0.9, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_chunked_equals_reference_values_and_gradients(
    batch, t, d_k, d_v, chunk, rule, decay, seed
) -> None:
    q, k, v, beta = _inputs(batch, t, d_k, d_v, torch.float32, seed, requires_grad=True)
    ref = fast_weight_reference(q, k, v, beta, rule, decay)
    fast = fast_weight_chunked(q, k, v, beta, rule, decay, chunk_size=chunk)
    assert fast.shape == (*batch, t, d_v)
    assert _rel(fast.detach(), ref.detach()) < 1e-5
    w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed + 1))
    g_ref = torch.autograd.grad((ref * w).sum(), (q, k, v, beta))
    g_fast = torch.autograd.grad((fast * w).sum(), (q, k, v, beta))
    for a, b in zip(g_fast, g_ref, strict=True):
        assert _rel(a, b) < 1e-5


@pytest.mark.parametrize("rule", ["hebbian", "delta"])
@pytest.mark.parametrize("decay", [None, 0.8])
def test_gradcheck_chunked_float64(rule, decay) -> None:
    inputs = _inputs([2], 7, 3, 2, torch.float64, 0, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: fast_weight_chunked(*a, rule=rule, decay=decay, chunk_size=3), inputs
    )


@pytest.mark.parametrize("decay", [None, 0.7])
def test_every_output_reads_the_core_delta_memory_written_so_far(decay) -> None:
    """o_t = q_t M_t with M_t = kvmem.core's delta_write_sequential over items 1..t."""
    q, k, v, beta = _inputs([2], 9, 4, 3, torch.float64, 1)
    out = fast_weight_chunked(q, k, v, beta, "delta", decay, chunk_size=4)
    M0 = torch.zeros(4, 3, dtype=torch.float64)
    for t in (0, 4, 8):
        dec = None if decay is None else torch.full((t + 1,), decay, dtype=torch.float64)
        M, _ = delta_write_sequential(M0, k[:, : t + 1], v[:, : t + 1], beta[:, : t + 1], dec)
        assert torch.allclose(out[:, t], (q[:, t : t + 1] @ M)[:, 0], atol=1e-12)


def test_hebbian_is_causal_linear_attention_in_dual_form() -> None:
    """o = (Q K^T masked causally) diag(beta) V: the unnormalised linear-attention read."""
    q, k, v, beta = _inputs([3], 20, 5, 4, torch.float64, 2)
    dual = ((q @ k.mT).tril() * beta[:, None, :]) @ v
    assert torch.allclose(fast_weight_chunked(q, k, v, beta, "hebbian", chunk_size=6), dual)


def test_low_precision_is_computed_in_float32() -> None:
    q, k, v, beta = _inputs([2], 33, 8, 8, torch.float32, 3)
    ref = fast_weight_chunked(q, k, v, beta, "delta", chunk_size=8)
    low = fast_weight_chunked(*(x.bfloat16() for x in (q, k, v, beta)), "delta", chunk_size=8)
    assert low.dtype == torch.bfloat16
    assert float((low.float() - ref).abs().max()) < 0.1


def test_bad_inputs_raise_clear_errors() -> None:
    q, k, v, beta = _inputs([1], 4, 3, 2, torch.float32, 4)
    with pytest.raises(ValueError, match="rule"):
        fast_weight_chunked(q, k, v, beta, "oja")
    with pytest.raises(ValueError, match="beta: expected shape"):
        fast_weight_chunked(q, k, v, beta[..., :-1])
    with pytest.raises(ValueError, match="q, k, v"):
        fast_weight_reference(q[..., :2], k, v, beta)
    with pytest.raises(ValueError, match="chunk_size"):
        fast_weight_chunked(q, k, v, beta, chunk_size=0)


# ----------------------------------------------------------------------------- the module


@pytest.mark.parametrize("rule", ["hebbian", "delta"])
@pytest.mark.parametrize("decay", [None, 0.95])
def test_module_chunked_equals_naive_and_every_parameter_learns(rule, decay) -> None:
    torch.manual_seed(0)
    layer = FastWeightMemory(12, 4, d_v=3, heads=2, rule=rule, decay=decay, chunk_size=5)
    x = torch.randn(3, 23, 12, requires_grad=True)
    fast, naive = layer(x), layer(x, naive=True)
    assert fast.shape == (3, 23, 12)
    assert _rel(fast.detach(), naive.detach()) < 1e-5
    fast.square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_module_is_causal() -> None:
    torch.manual_seed(1)
    layer = FastWeightMemory(6, 3, chunk_size=4)
    x = torch.randn(1, 10, 6)
    y = x.clone()
    y[:, 6:] = torch.randn(1, 4, 6)  # change the future only
    with torch.no_grad():
        assert torch.allclose(layer(x)[:, :6], layer(y)[:, :6], atol=1e-6)
        assert not torch.allclose(layer(x)[:, 6:], layer(y)[:, 6:])


def test_module_bfloat16_state_dict_and_compile(tmp_path) -> None:
    torch.manual_seed(2)
    a, b = FastWeightMemory(8, 4, heads=2), FastWeightMemory(8, 4, heads=2)
    x = torch.randn(2, 9, 8)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        ref = a(x)
        compiled = torch.compile(a, backend="eager")
        assert torch.allclose(compiled(x), ref, atol=1e-6)
        low = a.to(torch.bfloat16)(x.bfloat16())
    assert low.dtype == torch.bfloat16 and float((low.float() - ref).abs().max()) < 0.1
    safetensors_torch = pytest.importorskip("safetensors.torch")
    c = FastWeightMemory(8, 4, heads=2)
    safetensors_torch.save_file(b.state_dict(), str(tmp_path / "fw.safetensors"))
    c.load_state_dict(safetensors_torch.load_file(str(tmp_path / "fw.safetensors")))
    with torch.no_grad():
        assert torch.equal(b(x), c(x))


def test_module_errors() -> None:
    with pytest.raises(ValueError, match="rule"):
        FastWeightMemory(4, 4, rule="oja")
    with pytest.raises(ValueError, match="decay"):
        FastWeightMemory(4, 4, decay=1.5)
    with pytest.raises(ValueError, match="d_model"):
        FastWeightMemory(0, 4)
    with pytest.raises(ValueError, match=r"x: expected shape \[batch, T, 4\]"):
        FastWeightMemory(4, 4)(torch.randn(2, 3, 5))
