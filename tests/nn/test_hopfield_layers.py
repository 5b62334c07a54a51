"""Hopfield layers against kvmem.core.ModernHopfield (the reference) and the attention layer."""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core.modern_hopfield import ModernHopfield
from kvmem.nn import Hopfield, HopfieldLayer, HopfieldPooling
from kvmem.nn.hopfield_layers import hopfield_retrieve

SETTINGS = settings(max_examples=25, deadline=None)


@SETTINGS
@given(
    b=st.integers(1, 3),
    p=st.integers(1, 8),
    d=st.integers(1, 6),
    q=st.integers(1, 5),
    steps=st.integers(1, 4),
    beta=st.floats(0.1, 8.0),
    seed=st.integers(0, 2**16),
)
def test_retrieve_with_keys_equal_values_is_the_core_modern_hopfield(
    b, p, d, q, steps, beta, seed
) -> None:
    """keys = values = stored patterns X: xi <- softmax(beta xi X^T) X, ``steps`` times."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(b, p, d, generator=gen, dtype=torch.float64)
    xi = torch.randn(b, q, d, generator=gen, dtype=torch.float64)
    ours, w = hopfield_retrieve(xi, X, X, beta, steps)
    core = ModernHopfield(beta=beta, max_steps=steps, tol=0.0).store(X)
    assert torch.allclose(ours, core.retrieve(xi), atol=1e-6)  # the core softmax runs in float32
    assert torch.allclose(w.sum(-1), torch.ones(b, q, dtype=torch.float64))


def test_hopfield_layer_with_identity_query_is_a_lookup_of_its_learned_table() -> None:
    torch.manual_seed(0)
    layer = HopfieldLayer(4, n_patterns=6, beta=2.0, update_steps=3).double()
    with torch.no_grad():
        layer.W_q.weight.copy_(torch.eye(4))
        layer.values.copy_(layer.keys)  # d_hidden = d_model: an autoassociative table
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    core = ModernHopfield(beta=2.0, max_steps=3, tol=0.0).store(layer.keys.detach())
    out, w = layer(x, return_weights=True)
    assert out.shape == (2, 5, 4) and w.shape == (2, 5, 6)
    assert torch.allclose(out, core.retrieve(x), atol=1e-6)  # the core softmax runs in float32


def test_one_step_hopfield_is_softmax_attention_with_beta() -> None:
    """Ramsauer et al.: the update is attention; beta = 1/sqrt(d_hidden) by default."""
    torch.manual_seed(1)
    layer = Hopfield(6, d_hidden=4)
    assert layer.beta == pytest.approx(1 / math.sqrt(4))
    R, Y = torch.randn(2, 3, 6), torch.randn(2, 7, 6)
    with torch.no_grad():
        q, k, v = layer.W_q(R), layer.W_k(Y), layer.W_v(Y)
        ref = layer.W_o(torch.softmax(q @ k.mT / 2.0, dim=-1) @ v)
        assert torch.allclose(layer(R, Y), ref, atol=1e-6)


def test_causal_hopfield_reads_only_the_past() -> None:
    torch.manual_seed(2)
    layer = Hopfield(5, causal=True, update_steps=2)
    x = torch.randn(1, 8, 5)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 3, 5)
    with torch.no_grad():
        out, w = layer(x, return_weights=True)
        assert float(w[0].triu(1).abs().max()) == 0.0
        assert torch.allclose(out[:, :5], layer(y)[:, :5], atol=1e-6)


def test_pooling_gives_a_fixed_size_output_and_learns() -> None:
    torch.manual_seed(3)
    pool = HopfieldPooling(6, n_queries=2, update_steps=2)
    x = torch.randn(3, 11, 6, requires_grad=True)
    out, w = pool(x, return_weights=True)
    assert out.shape == (3, 2, 6) and w.shape == (3, 2, 11)
    out.square().sum().backward()
    for name, p in pool.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_gradients_flow_and_gradcheck() -> None:
    torch.manual_seed(4)
    layer = HopfieldLayer(3, n_patterns=4, update_steps=2).double()
    x = torch.randn(1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: layer(z), (x,))
    h = Hopfield(4, update_steps=2)
    h(torch.randn(2, 5, 4)).sum().backward()
    for name, p in h.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_state_dict_bfloat16_and_compile() -> None:
    torch.manual_seed(5)
    a, b = HopfieldLayer(6, 5), HopfieldLayer(6, 5)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(2, 4, 6)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        ref = a(x)
        assert torch.allclose(torch.compile(a, backend="eager", fullgraph=True)(x), ref, atol=1e-6)
        low = a.to(torch.bfloat16)(x.bfloat16())
    assert low.dtype == torch.bfloat16 and float((low.float() - ref).abs().max()) < 0.1


def test_errors() -> None:
    with pytest.raises(ValueError, match="beta"):
        Hopfield(4, beta=0.0)
    with pytest.raises(ValueError, match="update_steps"):
        HopfieldLayer(4, 3, update_steps=0)
    with pytest.raises(ValueError, match="n_patterns"):
        HopfieldLayer(4, 0)
    with pytest.raises(ValueError, match=r"stored: expected shape \[batch, T, 4\]"):
        Hopfield(4)(torch.randn(1, 3, 4), torch.randn(1, 3, 5))
    with pytest.raises(ValueError, match=r"x: expected shape"):
        HopfieldPooling(4)(torch.randn(3, 4))
