"""KeyValueAttention: the SDPA path equals the explicit softmax read; any kvmem kernel works."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core.slot_memory import SlotMemory
from kvmem.nn import KeyValueAttention

SETTINGS = settings(max_examples=25, deadline=None)


def _explicit(layer: KeyValueAttention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """Multi-head softmax(Q K^T / sqrt(d_k)) V written out by hand from the layer's weights."""
    b, t, _ = x.shape
    h, dk, dv = layer.heads, layer.d_k, layer.d_v
    q = (x @ layer.W_q.weight.T).view(b, t, h, dk).transpose(1, 2)
    k = (x @ layer.W_k.weight.T).view(b, t, h, dk).transpose(1, 2)
    v = (x @ layer.W_v.weight.T).view(b, t, h, dv).transpose(1, 2)
    s = q @ k.mT / math.sqrt(dk)
    if causal:
        s = s.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    o = torch.softmax(s, dim=-1) @ v
    return o.transpose(1, 2).reshape(b, t, h * dv) @ layer.W_o.weight.T


@SETTINGS
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 9),
    d_model=st.integers(1, 12),
    d_k=st.integers(1, 6),
    heads=st.integers(1, 3),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sdpa_path_equals_explicit_softmax(b, t, d_model, d_k, heads, causal, seed) -> None:
    torch.manual_seed(seed)
    layer = KeyValueAttention(d_model, d_k, heads=heads, causal=causal)
    x = torch.randn(b, t, d_model)
    with torch.no_grad():
        fast = layer(x)  # SDPA
        slow, w = layer(x, return_weights=True)  # explicit weights path
        ref = _explicit(layer, x, causal)
    assert torch.allclose(fast, ref, atol=1e-5, rtol=1e-5)
    assert torch.allclose(slow, ref, atol=1e-5, rtol=1e-5)
    assert w.shape == (b, heads, t, t)
    assert torch.allclose(w.sum(-1), torch.ones(b, heads, t), atol=1e-6)
    if causal and t > 1:
        assert float(w[..., 0, 1:].abs().max()) == 0.0


def test_equals_torch_sdpa_on_the_same_projections() -> None:
    torch.manual_seed(0)
    layer = KeyValueAttention(16, 8, heads=2, out_proj=False)
    x = torch.randn(4, 10, 16)
    q, k, v = layer.project(x)
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(4, 10, 16)
    assert torch.allclose(layer(x, return_weights=True)[0], ref, atol=1e-5)


@pytest.mark.parametrize("similarity", ["dot", "scaled_dot"])
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_beta_takes_the_sdpa_path_and_matches(similarity, causal) -> None:
    torch.manual_seed(1)
    layer = KeyValueAttention(
        6, 4, heads=2, similarity=similarity, separation_params={"beta": 2.5}, causal=causal
    )
    assert layer._sdpa_scale is not None
    x = torch.randn(2, 7, 6)
    assert torch.allclose(layer(x), layer(x, return_weights=True)[0], atol=1e-5)


def test_causal_with_a_longer_context_is_aligned_at_the_end() -> None:
    torch.manual_seed(2)
    layer = KeyValueAttention(5, 3, causal=True)
    x, ctx = torch.randn(2, 3, 5), torch.randn(2, 6, 5)
    out, w = layer(x, ctx, return_weights=True)
    assert torch.allclose(layer(x, ctx), out, atol=1e-5)
    # token t reads the first N - T + t + 1 = 4 + t items
    w = w.detach()
    for t in range(3):
        if 4 + t < 6:
            assert float(w[..., t, 4 + t :].abs().max()) == 0.0
        assert torch.allclose(w[..., t, : 4 + t].sum(-1), torch.ones(2, 1))
    with pytest.raises(ValueError, match="N >= T"):
        layer(torch.randn(2, 7, 5), ctx)


@pytest.mark.parametrize(
    ("similarity", "separation", "params"),
    [
        ("dot", "identity", {}),
        ("cosine", "softmax", {"beta": 4.0}),
        ("neg_euclidean", "hard_max", {}),
        ("dot", "polynomial", {"n": 3}),
        ("scaled_dot", "sparsemax", {}),
    ],
)
def test_any_kvmem_kernel_equals_a_slot_memory_read(similarity, separation, params) -> None:
    """Single head, no output projection: the layer is SlotMemory on its projections."""
    torch.manual_seed(3)
    layer = KeyValueAttention(
        6, 4, similarity=similarity, separation=separation, out_proj=False, separation_params=params
    ).double()
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    q, k, v = layer.project(x)
    mem = SlotMemory(similarity=similarity, separation=separation, **params)
    mem.write(k[:, 0], v[:, 0])
    assert torch.allclose(layer(x), mem.read(q[:, 0]), atol=1e-10)


def test_causal_non_softmax_separation_zeroes_future_weights() -> None:
    torch.manual_seed(4)
    layer = KeyValueAttention(4, 4, separation="identity", causal=True)
    x = torch.randn(1, 5, 4)
    with torch.no_grad():
        _, w = layer(x, return_weights=True)
        q, k, _ = layer.project(x)
        full = q @ k.mT / 2.0  # identity separation: the weights are the scaled dot scores
    assert float(w[0, 0].triu(1).abs().max()) == 0.0
    assert torch.allclose(w[0, 0].tril(), full[0, 0].tril())


def test_gradients_reach_every_projection() -> None:
    torch.manual_seed(5)
    layer = KeyValueAttention(8, 4, heads=2, causal=True)
    x = torch.randn(2, 6, 8, requires_grad=True)
    layer(x).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_gradcheck_float64_explicit_path() -> None:
    torch.manual_seed(6)
    layer = KeyValueAttention(3, 2, heads=2, causal=True).double()
    x = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: layer(z, return_weights=True)[0], (x,))


def test_bfloat16_runs_and_stays_close() -> None:
    torch.manual_seed(7)
    layer = KeyValueAttention(8, 4, heads=2)
    x = torch.randn(2, 5, 8)
    ref = layer(x)
    out = layer.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert float((out.float() - ref).abs().max().detach()) < 0.1


def test_state_dict_round_trip_torch_save_and_safetensors(tmp_path) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(8)
    a, b = KeyValueAttention(6, 3, heads=2), KeyValueAttention(6, 3, heads=2)
    x = torch.randn(1, 4, 6)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(a(x), b(x))
    c = KeyValueAttention(6, 3, heads=2)
    safetensors_torch.save_file(a.state_dict(), str(tmp_path / "a.safetensors"))
    c.load_state_dict(safetensors_torch.load_file(str(tmp_path / "a.safetensors")))
    assert torch.equal(a(x), c(x))


def test_torch_compile_traces_the_layer() -> None:
    torch.manual_seed(9)
    layer = KeyValueAttention(8, 4, heads=2, causal=True)
    x = torch.randn(2, 5, 8)
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    assert torch.allclose(compiled(x), layer(x), atol=1e-6)


def test_clear_errors_for_wrong_shapes_and_arguments() -> None:
    layer = KeyValueAttention(6, 4)
    with pytest.raises(ValueError, match=r"x: expected shape \[batch, T, 6\]"):
        layer(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="x: expected shape"):
        layer(torch.randn(5, 6))
    with pytest.raises(TypeError, match="x: expected a tensor"):
        layer([[0.0] * 6])
    with pytest.raises(ValueError, match="context: expected batch size 2"):
        layer(torch.randn(2, 5, 6), torch.randn(3, 5, 6))
    with pytest.raises(ValueError, match="d_k"):
        KeyValueAttention(6, 0)
    with pytest.raises(ValueError, match="separation"):
        KeyValueAttention(6, 4, separation="nope")
