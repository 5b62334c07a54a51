"""Keys learned by gradient descent (kvmem.nn.learned_keys; docs/science.md 1.5, 3.1)."""

from __future__ import annotations

import math

import pytest
import torch

from kvmem.core.key_maps import LinearKeys
from kvmem.nn.learned_keys import LearnedLinearKeys, retrieval_loss


def _items(gen: torch.Generator, n: int = 40, d: int = 32, *batch: int) -> torch.Tensor:
    """Correlated items: a shared template plus small item-specific deviations."""
    template = torch.randn(d, generator=gen)
    return template + 0.3 * torch.randn(*batch, n, d, generator=gen)


def _noise(sigma: float):  # noqa: ANN202
    """Structured corruption: strong noise on the first half of the features only, so the
    best key ignores those features (which a map fitted to clean items cannot know)."""

    def corrupt(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        eps = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        eps[..., x.shape[-1] // 2 :] = 0.0
        return x + sigma * eps

    return corrupt


def test_retrieval_loss_matches_its_definition() -> None:
    gen = torch.Generator().manual_seed(0)
    x = _items(gen, 10, 6)
    q = x + 0.1 * torch.randn(x.shape, generator=gen)
    w = torch.randn(6, 4, generator=gen)
    mu = x.mean(0)
    k = torch.nn.functional.normalize((x - mu) @ w, dim=-1)
    kq = torch.nn.functional.normalize((q - mu) @ w, dim=-1)
    expected = torch.nn.functional.cross_entropy(5.0 * kq @ k.T, torch.arange(10))
    torch.testing.assert_close(retrieval_loss(w, mu, x, q, 5.0), expected)
    # a map that sends everything to 0 cannot discriminate: chance, log N
    zero = retrieval_loss(torch.zeros(6, 4), mu, x, q, 5.0)
    assert math.isclose(float(zero), math.log(10), rel_tol=1e-6)


@pytest.mark.parametrize("init", ["pca", "random"])
def test_learned_keys_improve_the_retrieval_objective(init: str) -> None:
    gen = torch.Generator().manual_seed(1)
    items = _items(gen)
    learner = LearnedLinearKeys(_noise(1.0), d_k=8, steps=60, lr=0.02, beta=10.0, init=init)
    keys = learner.fit(items)
    assert isinstance(keys, LinearKeys)
    assert learner.loss_initial is not None and learner.loss_final is not None
    # measured on the same held-out corrupted copies before and after training
    assert float(learner.loss_final) < 0.7 * float(learner.loss_initial)
    assert len(learner.loss_history) == 60
    assert learner.loss_history[-1] < learner.loss_history[0]
    # the trained map keys items and (corrupted) queries alike: unit keys of dimension 8
    out = keys(items)
    assert out.shape == (40, 8)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(40))
    # and retrieves corrupted copies better than the initial map
    q = _noise(1.0)(items, torch.Generator().manual_seed(99))
    acc = float(((keys(q) @ keys(items).T).argmax(-1) == torch.arange(40)).float().mean())
    init_map = LearnedLinearKeys(_noise(1.0), d_k=8, steps=0, init=init).fit(items)
    acc0 = float(((init_map(q) @ init_map(items).T).argmax(-1) == torch.arange(40)).float().mean())
    assert acc > acc0 + 0.1


def test_learned_keys_fit_one_map_per_memory_in_a_batch() -> None:
    gen = torch.Generator().manual_seed(2)
    items = _items(gen, 20, 16, 3)
    learner = LearnedLinearKeys(_noise(1.0), d_k=4, steps=30, lr=0.02, seed=5).fit(items)
    assert learner.weight.shape == (3, 16, 4)
    assert learner.loss_initial.shape == (3,) and learner.loss_final.shape == (3,)
    assert (learner.loss_final < learner.loss_initial).all()
    assert learner(items).shape == (3, 20, 4)
    # reproducible from its seed
    again = LearnedLinearKeys(_noise(1.0), d_k=4, steps=30, lr=0.02, seed=5).fit(items)
    torch.testing.assert_close(again.weight, learner.weight)


def test_learned_keys_reject_bad_input() -> None:
    with pytest.raises(TypeError, match="corrupt"):
        LearnedLinearKeys("noise")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="init"):
        LearnedLinearKeys(_noise(0.1), init="zeros")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="fit"):
        LearnedLinearKeys(_noise(0.1)).transform(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least two items"):
        LearnedLinearKeys(_noise(0.1)).fit(torch.zeros(1, 3))
    bad = LearnedLinearKeys(lambda x, g: x[:-1], d_k=2, steps=1)
    with pytest.raises(ValueError, match="corrupt: expected queries"):
        bad.fit(torch.rand(5, 3))
