"""SGDRecorder and KeyValueTrace: SGD training as an exact key-value memory (science 1.6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kvmem.nn.dual import KeyValueTrace
from kvmem.nn.recorder import (
    RecordingError,
    SGDRecorder,
    UnsupportedOptimizerError,
    check_optimizer,
)


def mlp(dtype: torch.dtype = torch.float64, bias: bool = True, seed: int = 0) -> nn.Sequential:
    """Two hidden layers, with biases: 12 -> 16 -> 10 -> 3."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(12, 16, bias=bias),
        nn.ReLU(),
        nn.Linear(16, 10, bias=bias),
        nn.Tanh(),
        nn.Linear(10, 3, bias=bias),
    ).to(dtype)


def data(dtype: torch.dtype = torch.float64, n: int = 150, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g, dtype=dtype)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def train(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 3,
    batch: int = 32,
    lr: float = 0.2,
    scheduler: bool = False,
    shuffle: bool = True,
) -> tuple[SGDRecorder, KeyValueTrace]:
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, 4, gamma=0.5) if scheduler else None
    rec = SGDRecorder(net, optimizer=opt)
    rec.register_dataset("train", x, y)
    g = torch.Generator().manual_seed(3)
    with rec:
        for epoch in range(epochs):
            rec.set_tags(epoch=epoch + 1, phase="warmup" if epoch == 0 else "main")
            order = torch.randperm(len(x), generator=g) if shuffle else torch.arange(len(x))
            for start in range(0, len(x), batch):
                i = order[start : start + batch]
                opt.zero_grad()
                F.cross_entropy(net(x[i]), y[i]).backward()
                opt.step()
                if sched is not None:
                    sched.step()
    return rec, rec.trace()


def rel_error(mem: KeyValueTrace, net: nn.Module) -> float:
    return max(mem.max_abs_error(net, relative=True).values())


# ----------------------------------------------------------------------------- exactness


def test_float64_exact_with_biases_minibatches_and_scheduler():
    net = mlp(torch.float64)
    w0 = {n: p.detach().clone() for n, p in net.named_parameters()}
    x, y = data(torch.float64)
    rec, mem = train(net, x, y, scheduler=True)
    assert rec.n_steps == 3 * 5
    assert mem.layers == ("0", "2", "4")
    assert mem.n_pairs("0") == 3 * 150  # one pair per example and step
    assert rel_error(mem, net) <= 1e-10
    # W = W0 + sum_n v_n^T k_n, written out by hand from the raw keys and values
    for name in mem.layers:
        k, v, vb = mem.keys(name), mem.values(name), mem.bias_values(name)
        W = w0[f"{name}.weight"] + v.T @ k
        b = w0[f"{name}.bias"] + vb.sum(0)
        mod = net.get_submodule(name)
        assert torch.allclose(W, mod.weight, rtol=0, atol=1e-12)
        assert torch.allclose(b, mod.bias, rtol=0, atol=1e-12)
    # the per-step learning rates were halved by the scheduler: values carry them
    lr = -mem.pairs("0").value_scale
    assert set(lr.unique().tolist()) == {0.2, 0.1, 0.05, 0.025}


def test_float32_exact_relative():
    net = mlp(torch.float32)
    x, y = data(torch.float32)
    _, mem = train(net, x, y, epochs=4)
    assert rel_error(mem, net) <= 1e-5


def test_half_precision_layers_record():
    # copied keys (hidden activations) are bfloat16; the step check's probe is float32
    net = mlp(torch.bfloat16)
    x, y = data(torch.bfloat16)
    _, mem = train(net, x, y, epochs=2)
    assert mem.n_pairs("2") == 2 * 150 and len(mem.pairs("2").key_copies) == 2 * 150
    # each bfloat16 update rounds W, so W0 + sum of the pairs matches only to bfloat16 precision
    assert rel_error(mem, net) <= 0.05


def test_dual_read_equals_layer_output_and_network():
    net = mlp(torch.float64)
    x, y = data(torch.float64)
    _, mem = train(net, x, y)
    q = torch.randn(7, 12, dtype=torch.float64)
    # each layer on its own input
    h = q
    for name, mod in net.named_children():
        if isinstance(mod, nn.Linear):
            assert torch.allclose(mem.read(name, h), mod(h), rtol=0, atol=1e-12)
        h = mod(h)
    # the whole network with every layer read in dual form
    assert torch.allclose(mem.dual_forward(net, q), net(q), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"\[\.\.\., 12\]"):
        mem.read("0", torch.randn(3, 5, dtype=torch.float64))


def test_bias_free_layers_and_float32_dual_read():
    net = mlp(torch.float32, bias=False)
    x, y = data(torch.float32)
    _, mem = train(net, x, y)
    assert rel_error(mem, net) <= 1e-5
    assert mem.bias("0") is None
    q = torch.randn(4, 12)
    assert torch.allclose(mem.dual_forward(net, q), net(q), rtol=0, atol=1e-5)


def test_gradient_accumulation_and_never_zeroed_gradients():
    # two backward passes per step (accumulated), then gradients never zeroed at all
    net = mlp(torch.float64)
    x, y = data(torch.float64)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with SGDRecorder(net) as rec:
        for start in range(0, 120, 40):
            opt.zero_grad()
            for half in (0, 20):
                i = slice(start + half, start + half + 20)
                F.cross_entropy(net(x[i]), y[i]).backward()
            opt.step()
        for start in range(0, 60, 30):  # no zero_grad: every old gradient is applied again
            F.cross_entropy(net(x[start : start + 30]), y[start : start + 30]).backward()
            opt.step()
    mem = rec.trace()
    assert rel_error(mem, net) <= 1e-10
    # the last accumulated gradients of the first loop are applied by 3 steps: -3 lr
    assert float(mem.pairs("0").value_scale.min()) == pytest.approx(-0.1 * 3)


def test_manual_steps_frozen_layers_and_repeated_calls():
    # layer "a" is called twice per forward (its pairs: one per call and example);
    # layer "c" is frozen for the second half and then writes nothing
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(6, 6)
            self.c = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(torch.tanh(self.a(torch.tanh(self.a(x)))))

    torch.manual_seed(0)
    net = Net().double()
    x = torch.randn(40, 6, dtype=torch.float64)
    y = torch.randint(0, 2, (40,))
    rec = SGDRecorder(net)
    with rec:
        for step in range(8):
            if step == 4:
                net.c.weight.requires_grad_(False)
                net.c.bias.requires_grad_(False)
            i = slice(5 * step, 5 * step + 5)
            for p in net.parameters():
                p.grad = None
            F.cross_entropy(net(x[i]), y[i]).backward()
            with torch.no_grad():
                for p in net.parameters():
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-0.3)
            rec.record_step(0.3)
    mem = rec.trace()
    assert rel_error(mem, net) <= 1e-10
    assert mem.n_pairs("a") == 8 * 5 * 2
    assert mem.n_pairs("c") == 4 * 5  # frozen: nothing written
    assert mem.count("step", layer="c") == {0: 5, 1: 5, 2: 5, 3: 5}


def test_maximize_sign():
    net = mlp(torch.float64)
    x, y = data(torch.float64)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, maximize=True)
    with SGDRecorder(net) as rec:
        for start in range(0, 90, 30):
            opt.zero_grad()
            F.cross_entropy(net(x[start : start + 30]), y[start : start + 30]).backward()
            opt.step()
    mem = rec.trace()
    assert rel_error(mem, net) <= 1e-10
    assert bool((mem.pairs("4").value_scale == 0.05).all())


@settings(max_examples=8, deadline=None)
@given(
    batch=st.integers(1, 40),
    lr=st.floats(1e-3, 0.5),
    epochs=st.integers(1, 3),
    bias=st.booleans(),
)
def test_exact_for_any_batching(batch: int, lr: float, epochs: int, bias: bool):
    net = mlp(torch.float64, bias=bias, seed=batch)
    x, y = data(torch.float64, n=60)
    _, mem = train(net, x, y, epochs=epochs, batch=batch, lr=lr)
    assert rel_error(mem, net) <= 1e-10


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), "momentum=0.9"),
        (lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=1e-4), "weight_decay=0.0001"),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), "nesterov"),
        (lambda p: torch.optim.SGD(p, lr=0.1, dampening=0.5), "dampening=0.5"),
        (lambda p: torch.optim.Adam(p, lr=0.1), "cannot record Adam"),
        (lambda p: torch.optim.AdamW(p, lr=0.1), "cannot record AdamW"),
    ],
)
def test_refuses_optimizers_that_break_the_identity(make, pattern):
    net = mlp()
    opt = make(net.parameters())
    with pytest.raises(UnsupportedOptimizerError, match=pattern) as err:
        SGDRecorder(net, optimizer=opt)
    assert "W = W0 + sum_n x_n^T e_n" in str(err.value)
    assert "momentum=0" in str(err.value)  # says what to use instead
    # also refused at the first step when the recorder was not told about the optimizer
    before = [p.detach().clone() for p in net.parameters()]
    x, y = data()
    with SGDRecorder(net):
        F.cross_entropy(net(x[:10]), y[:10]).backward()
        with pytest.raises(UnsupportedOptimizerError, match=pattern):
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_other_optimizers_on_unrecorded_parameters_are_fine():
    net = mlp()
    x, y = data()
    sgd = torch.optim.SGD(net[0].parameters(), lr=0.1)
    adam = torch.optim.Adam(list(net[2].parameters()) + list(net[4].parameters()), lr=0.01)
    check_optimizer(sgd)
    with SGDRecorder(net, layers=["0"]) as rec:
        for start in range(0, 60, 20):
            sgd.zero_grad()
            adam.zero_grad()
            F.cross_entropy(net(x[start : start + 20]), y[start : start + 20]).backward()
            sgd.step()
            adam.step()
    mem = rec.trace()
    assert mem.layers == ("0",)
    assert rel_error(mem, net) <= 1e-10


def test_gradient_clipping_is_detected():
    net = mlp()
    x, y = data()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with SGDRecorder(net):
        F.cross_entropy(net(x[:20]), y[:20]).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1e-3)
        with pytest.raises(RecordingError, match="clipping"):
            opt.step()


# ----------------------------------------------------------------------------- memory API


@pytest.fixture(scope="module")
def trained():
    net = mlp(torch.float64)
    w0 = {n: p.detach().clone() for n, p in net.named_parameters()}
    x, y = data(torch.float64)
    _, mem = train(net, x, y)
    return net, w0, x, y, mem


def test_metadata_and_counts(trained):
    net, _, x, y, mem = trained
    assert mem.count("epoch", layer="0") == {1: 150, 2: 150, 3: 150}
    assert mem.count("phase", layer="2") == {"warmup": 150, "main": 300}
    assert mem.count("visit", layer="4") == {0: 150, 1: 150, 2: 150}
    assert mem.count("dataset") == {n: {"train": 450} for n in ("0", "2", "4")}
    assert sum(mem.count("label", layer="0").values()) == 450
    # labels and example indices are those of the dataset, in every layer
    for name in mem.layers:
        ex = mem.field(name, "example_index")
        assert torch.equal(mem.field(name, "label"), y[ex])
    # first-layer keys are the dataset rows, stored by reference; deeper ones are copies
    assert bool((mem.pairs("0").key_source == 0).all())
    assert len(mem.pairs("0").key_copies) == 0
    assert torch.equal(mem.keys("0"), x[mem.field("0", "example_index")])
    assert bool((mem.pairs("2").key_source == -1).all())
    assert mem.field("0", "epoch").unique().tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="unknown filter"):
        mem.mask("0", color=1)
    with pytest.raises(ValueError, match="unknown layer"):
        mem.count("epoch", layer="9")


def test_tag_filters_accept_tensors_and_arrays(trained):
    import numpy as np

    mem = trained[-1]
    both = mem.mask("0", epoch=[1, 3])
    assert int(both.sum()) == 300
    assert torch.equal(mem.mask("0", epoch=torch.tensor([1, 3])), both)
    assert torch.equal(mem.mask("0", epoch=np.array([1, 3])), both)
    assert torch.equal(mem.mask("0", epoch=torch.tensor(2)), mem.mask("0", epoch=2))
    assert torch.equal(mem.mask("0", epoch=np.int64(2)), mem.mask("0", epoch=2))


def test_scale_by_one_and_delete_all(trained):
    net, w0, x, _, mem = trained
    same = mem.scale(1.0, epoch=[1, 2, 3]).materialize(net)
    base = mem.materialize(net)
    assert torch.equal(same(x), base(x))
    empty = mem.delete().materialize(net)
    for n, p in empty.named_parameters():
        assert torch.equal(p, w0[n])
    # W0 alone, read through the empty trace (float64: equal to rounding, not bit for bit,
    # as the read and F.linear may block the matmul differently)
    torch.testing.assert_close(
        mem.delete().read("0", x[:5]),
        F.linear(x[:5], w0["0.weight"], w0["0.bias"]),
        rtol=0,
        atol=1e-12,
    )


def test_subset_scaling_matches_explicit_sum(trained):
    net, w0, _, _, mem = trained
    view = mem.scale(2.5, label=0, epoch=3).scale(0.5, layer="4", phase="warmup")
    view = view.with_initial(1.5, layer="2")
    for name in mem.layers:
        s = torch.ones(mem.n_pairs(name), dtype=torch.float64)
        s[mem.mask(name, label=0, epoch=3)] *= 2.5
        if name == "4":
            s[mem.mask(name, phase="warmup")] *= 0.5
        alpha = 1.5 if name == "2" else 1.0
        W = alpha * w0[f"{name}.weight"] + (mem.values(name) * s[:, None]).T @ mem.keys(name)
        b = alpha * w0[f"{name}.bias"] + (mem.bias_values(name) * s[:, None]).sum(0)
        assert torch.allclose(view.weight(name), W, rtol=0, atol=1e-12)
        assert torch.allclose(view.bias(name), b, rtol=0, atol=1e-12)
        assert view.scale_of(name).tolist() == s.tolist()
    # keep = delete the complement; callables select too
    kept = mem.keep(step=lambda s: s < 5)
    assert torch.allclose(
        kept.weight("0"), mem.delete(step=lambda s: s >= 5).weight("0"), rtol=0, atol=0
    )
    assert float(kept.scale_of("0").sum()) == float((mem.field("0", "step") < 5).sum())
    # the examples chosen by index
    one = mem.keep(example_index=[3, 7])
    assert int((one.scale_of("0") > 0).sum()) == 2 * 3  # two examples, three epochs


def test_attribution_sums_and_ordering_bias_free_relu():
    # bias-free ReLU net: positively homogeneous, so the first layer decomposes the logit
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(12, 16, bias=False), nn.ReLU(), nn.Linear(16, 3, bias=False)
    ).double()
    x, y = data(torch.float64)
    _, mem = train(net, x, y)
    q = torch.randn(12, dtype=torch.float64)
    logits = net(q[None])[0].detach()
    for layers in (["0"], ["2"]):
        att = mem.attribute(net, q, layers=layers, by="pair")
        assert att.target == int(logits.argmax())
        assert att.output == pytest.approx(float(logits.max()), abs=1e-12)
        assert att.initial + float(att.scores.sum()) == pytest.approx(att.total, abs=1e-10)
        assert att.total == pytest.approx(att.output, abs=1e-10)
        assert bool((att.scores[:-1] >= att.scores[1:]).all())  # descending
        top = att.top(5)
        assert [t["score"] for t in top] == att.scores[:5].tolist()
        assert all(t["layer"] == layers[0] and t["dataset"] == "train" for t in top)
        # a pair's score by hand: (q . k_n)(v_n . u), u = one-hot for the last layer
        if layers == ["2"]:
            n = top[0]["pair_index"]
            h = torch.relu(net[0](q[None]))[0].detach()
            k, v = mem.keys("2")[n], mem.values("2")[n]
            assert top[0]["score"] == pytest.approx(float((h @ k) * v[att.target]), abs=1e-14)
    # grouped by example: the same total, each example once, scores sum the pairs
    by_pair = mem.attribute(net, q, layers=["0"], by="pair", target=1)
    by_ex = mem.attribute(net, q, layers=["0"], by="example", target=1)
    assert float(by_ex.scores.sum()) == pytest.approx(float(by_pair.scores.sum()), abs=1e-12)
    assert len(by_ex.scores) == 150
    ex = by_ex.top(1)[0]["example_index"]
    mask = torch.tensor([e == ex for e in by_pair.example_index.tolist()])
    assert float(by_pair.scores[mask].sum()) == pytest.approx(float(by_ex.scores[0]), abs=1e-14)
    # deleting the top example's pairs lowers the logit by exactly its score
    lowered = mem.delete(example_index=ex, layer="0").materialize(net)
    with torch.no_grad():
        drop = float(net(q[None])[0, 1] - lowered(q[None])[0, 1])
    assert drop == pytest.approx(float(by_ex.scores[0]), abs=1e-10)
    neg = mem.attribute(net, q, layers=["0"], order="negative", target=1)
    assert bool((neg.scores[:-1] <= neg.scores[1:]).all())


def test_storage_by_reference_is_compact(trained):
    _, _, _, _, mem = trained
    p0, p2 = mem.pairs("0"), mem.pairs("2")
    # a referenced key costs one index, a copied key in_features floats
    assert p0.key_copies.numel() == 0 and p2.key_copies.shape == (450, 16)
    assert mem.nbytes == sum(mem.pairs(n).nbytes for n in mem.layers)
    assert mem.dataset_nbytes == 150 * 12 * 8


def test_modified_dataset_is_detected():
    net = mlp()
    x, y = data()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    rec = SGDRecorder(net)
    rec.register_dataset("train", x, y)
    with rec:
        F.cross_entropy(net(x[:10]), y[:10]).backward()
        opt.step()
    x[0, 0] += 1.0
    with pytest.raises(RecordingError, match="modified"):
        rec.trace()


def test_bad_arguments():
    net = mlp()
    with pytest.raises(ValueError, match="no submodule"):
        SGDRecorder(net, layers=["nope"])
    with pytest.raises(ValueError, match="not nn.Linear"):
        SGDRecorder(net, layers=["1"])
    with pytest.raises(ValueError, match="no nn.Linear"):
        SGDRecorder(nn.ReLU())
    rec = SGDRecorder(net)
    with pytest.raises(ValueError, match="reserved"):
        rec.set_tags(step=1)
    with pytest.raises(TypeError, match="int or str"):
        rec.set_tags(epoch=1.5)
    with pytest.raises(RuntimeError, match="nothing recorded"):
        rec.trace()


def test_many_distinct_scales(trained):
    net, w0, _, _, mem = trained
    view = mem
    for i in range(20):  # 20 examples, 20 different factors: more levels than groups cached
        view = view.scale(1.0 + 0.1 * i, example_index=i)
    s = view.scale_of("0")
    assert len(s.unique()) == 20  # 1.0 (unscaled and example 0), 1.1, ..., 2.9
    W = w0["0.weight"] + (mem.values("0") * s[:, None]).T @ mem.keys("0")
    assert torch.allclose(view.weight("0"), W, rtol=0, atol=1e-12)


def test_explicit_batches_and_sequence_inputs():
    # a [B, T, d] input: one pair per example and position, example indices given by hand
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2)).double()
    x = torch.randn(24, 3, 5, dtype=torch.float64)
    y = torch.randint(0, 2, (24,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    rec = SGDRecorder(net)
    with rec:
        for start in range(0, 24, 8):
            idx = torch.arange(start, start + 8) + 100
            rec.set_batch(example_index=idx, labels=y[start : start + 8])
            opt.zero_grad()
            F.cross_entropy(net(x[start : start + 8]), y[start : start + 8]).backward()
            opt.step()
    mem = rec.trace()
    assert rel_error(mem, net) <= 1e-10
    assert mem.n_pairs("0") == 24 * 3 and mem.n_pairs("3") == 24
    assert mem.field("0", "example_index").tolist() == [
        100 + i for i in range(24) for _ in range(3)
    ]
    assert torch.equal(mem.field("3", "label"), y)
    assert mem.count("dataset", layer="0") == {None: 72}


def test_double_backward_and_autograd_grad_do_not_disturb():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double()
    x = torch.randn(20, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with SGDRecorder(net) as rec:
        for s in range(0, 20, 5):
            opt.zero_grad()
            loss = F.cross_entropy(net(x[s : s + 5]), y[s : s + 5])
            loss.backward(retain_graph=True)
            loss.backward()  # the same pairs accumulate twice
            opt.step()
        # gradients taken without accumulation write nothing
        torch.autograd.grad(F.cross_entropy(net(x[:5]), y[:5]), list(net.parameters()))
        opt.zero_grad()
        F.cross_entropy(net(x[:5]), y[:5]).backward()
        opt.step()
    mem = rec.trace()
    assert mem.n_pairs("0") == 4 * 5 * 2 + 5
    assert rel_error(mem, net) <= 1e-10
