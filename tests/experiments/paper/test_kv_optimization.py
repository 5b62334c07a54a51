import dataclasses

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from kvmem import experiments
from kvmem.experiments.base import ConfigError, config_from_dict
from kvmem.experiments.paper import kv_optimization as kv
from kvmem.results import Result


@pytest.fixture(scope="module", params=[2, 3], ids=["A-2classes", "B-3classes"])
def published_run(request):
    """The published protocol (5,000 / 10,000 Adam steps; about 1 s each)."""
    return kv.run(kv.Config(classes=request.param))


def test_registered():
    assert experiments.get("kv-optimization") is kv
    assert kv.NAME == "kv-optimization"


def test_published_lengths():
    assert kv.Config().n_steps == 5000
    assert kv.Config(classes=3).n_steps == 10000
    assert kv.Config(steps=7).n_steps == 7
    assert kv.Config(classes=3).snapshot_every == 100
    assert kv.quick(kv.Config()).n_steps == 300


def test_keys_separate_and_values_converge(published_run):
    m = published_run.metrics
    assert m["loss_final"] < 0.1 * m["loss_initial"]
    assert m["key_separability_final"] >= 100 * m["key_separability_initial"]
    assert m["value_error_final"] <= m["value_error_initial"] / 5
    s = published_run.series
    n_steps = 5000 if len(s["class_features"]) == 2 else 10000
    assert len(s["loss"]) == n_steps
    assert s["loss"][0] == pytest.approx(m["loss_initial"], rel=1e-6)
    assert s["loss"][-1] > m["loss_final"]  # the last update still helps
    assert s["trajectory_step"][0] == 0 and s["trajectory_step"][-1] == n_steps
    n_mem = len(s["classes"])
    assert len(s["key_trajectory"]) == len(s["trajectory_step"])
    assert len(s["key_trajectory"][0]) == n_mem and len(s["value_trajectory"][-1][0]) == 2


def test_plot_from_json(published_run):
    back = Result.from_dict(published_run.to_dict())
    fig = kv.plot(back)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6
    # every panel labels both axes (issue 14: Figure 2 had no x-axis labels)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


def test_textbook_variant_runs():
    result = kv.run(kv.Config(classes=3, steps=400, accumulate_gradients=False))
    m = result.metrics
    assert m["loss_final"] < m["loss_initial"]
    assert m["key_separability_final"] > m["key_separability_initial"]


# ----------------------------------------------------------------------------- fidelity


def test_initial_memories_follow_the_notebook_random_stream():
    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    p = kv.make_problem(3, 100, seed=42)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    torch.manual_seed(42)
    keys = torch.randn([300, 2]).uniform_(0, 1)
    values = torch.rand([300, 2])
    classes = torch.randint(low=0, high=3, size=[300])
    features = torch.tensor([[1, 0], [0, 1], [1, 1]])
    assert torch.equal(p.keys, keys) and torch.equal(p.values, values)
    assert torch.equal(p.classes, classes)
    assert torch.equal(p.targets, features[classes].float())


class _NotebookMemory(nn.Module):
    """The notebook's SoftmaxKeyValueMemory, transcribed literally (reference for tests)."""

    def __init__(self, initial_keys, initial_values):
        super().__init__()
        self.key_representations = nn.Parameter(initial_keys)
        self.value_representations = nn.Parameter(initial_values)
        self.softmax = torch.nn.Softmax(dim=0)

    def forward(self):
        x = self.key_representations
        attn = self.softmax(x.detach().mm(x.T) * (2**-0.5))
        return torch.matmul(attn.T, torch.nn.functional.sigmoid(self.value_representations))


def test_autograd_engine_is_bitwise_the_notebook():
    p = kv.make_problem(2)
    model = _NotebookMemory(p.keys.clone(), p.values.clone())
    loss_fn = torch.nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    losses = []
    with_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(60):
            loss = loss_fn(model(), p.targets)
            loss.backward()  # never zeroed, as published
            optimizer.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(with_threads)
    out = kv.train(p, 60, engine="autograd")
    assert torch.equal(out["keys"], model.key_representations.detach())
    assert torch.equal(out["values"], model.value_representations.detach())
    assert out["loss"].tolist() == losses


def _final_metrics(config):
    m = kv.run(config).metrics
    return [m[k] for k in sorted(m)]


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("accumulate", [True, False])
def test_fast_engine_equals_autograd(classes, accumulate):
    config = kv.Config(classes=classes, steps=100, accumulate_gradients=accumulate)
    fast = kv.run(config)
    slow = kv.run(dataclasses.replace(config, engine="autograd"))
    for name, value in slow.metrics.items():
        assert fast.metrics[name] == pytest.approx(value, rel=1e-5), name
    assert fast.series["loss"] == pytest.approx(slow.series["loss"], rel=1e-5)


@pytest.mark.parametrize("classes", [2, 3])
def test_fast_engine_is_as_accurate_as_autograd(classes):
    """Both float32 engines against the float64 notebook computation (the exact answer)."""
    p = kv.make_problem(classes)
    p64 = kv.Problem(p.keys.double(), p.values.double(), p.classes, p.targets.double())
    for accumulate in (True, False):
        exact = kv.train(p64, 300, accumulate_gradients=accumulate, engine="autograd")
        errors = {}
        for engine in ("fast", "autograd"):
            got = kv.train(p, 300, accumulate_gradients=accumulate, engine=engine)
            errors[engine] = max(
                float((got[k].double() - exact[k]).abs().max()) for k in ("keys", "values")
            )
        assert errors["fast"] <= 1.5 * errors["autograd"] + 1e-7, errors
        assert errors["fast"] < 1e-5


def test_fast_engine_exact_shift_fallback(monkeypatch):
    """With the row-maximum shift (used for huge keys) the result is the same."""
    monkeypatch.setattr(kv, "_SAFE_NORM", 0.0)
    config = kv.Config(classes=3, steps=100)
    fast = kv.run(config)
    slow = kv.run(dataclasses.replace(config, engine="autograd"))
    for name, value in slow.metrics.items():
        assert fast.metrics[name] == pytest.approx(value, rel=1e-5), name


def test_fast_engine_survives_huge_keys():
    p = kv.make_problem(2, 20)
    big = kv.Problem(p.keys * 40, p.values, p.classes, p.targets)  # scores up to ~3000
    out = kv.train(big, 50)
    assert torch.isfinite(out["keys"]).all() and torch.isfinite(out["loss"]).all()
    ref = kv.train(big, 50, engine="autograd")
    torch.testing.assert_close(out["loss"], ref["loss"], rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------- measures & config


def test_key_separability_and_value_error():
    keys = torch.tensor([[0.0, 0.0], [0.0, 2.0], [10.0, 0.0], [10.0, 2.0]])
    classes = torch.tensor([0, 0, 1, 1])
    # between: 2 * 25 + 2 * 25 = 100; within: 4 * 1 = 4
    assert kv.key_separability(keys, classes) == pytest.approx(25.0)
    assert kv.key_separability(torch.zeros(2, 2), torch.tensor([0, 1])) == 0.0
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    values = torch.zeros(2, 2)  # sigmoid = 0.5 everywhere
    assert kv.value_error(values, targets) == pytest.approx(0.5)


def test_quick_and_trajectory_every():
    result = kv.run(dataclasses.replace(kv.quick(kv.Config()), trajectory_every=7))
    steps = result.series["trajectory_step"]
    assert steps[:3] == [0, 7, 14] and steps[-1] == 300
    assert isinstance(kv.plot(result), Figure)


@pytest.mark.parametrize(
    "field, value",
    [("steps", 0), ("lr", -1.0), ("memories_per_class", 0), ("trajectory_every", 0)],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        kv.Config(**{field: value})
    with pytest.raises(ConfigError, match=field):
        config_from_dict(kv.Config, {field: value})


def test_config_rejects_unknown_choices():
    with pytest.raises(ConfigError, match="classes"):
        config_from_dict(kv.Config, {"classes": 4})
    with pytest.raises(ConfigError, match="engine"):
        config_from_dict(kv.Config, {"engine": "jax"})
