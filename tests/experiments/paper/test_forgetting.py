import dataclasses
import sys
import types

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kvmem import experiments
from kvmem.data.bundled import load_forgetting_tasks
from kvmem.data.idx import write_idx
from kvmem.experiments.base import ConfigError, config_from_dict, single_thread
from kvmem.experiments.paper import forgetting as fg
from kvmem.results import Result


@pytest.fixture(scope="module")
def published_run():
    """The full published protocol (about 2 s)."""
    return fg.run(fg.Config())


def test_registered():
    assert experiments.get("forgetting") is fg
    assert fg.NAME == "forgetting"
    assert "\n" not in fg.DESCRIPTION


def test_reproduces_the_published_numbers_exactly(published_run):
    m = published_run.metrics
    assert round(m["task1_acc_after_task1"], 2) == 99.72
    assert round(m["task2_acc_after_task2"], 2) == 94.95
    assert round(m["task1_acc_after_task2"], 2) == 9.13
    assert round(m["task1_acc_at_beta_1_7"], 2) == 98.53
    # the notebook prints the exact fractions: 2109/2115, 1899/2000, 193/2115, 2084/2115
    exact = {
        "task1_acc_after_task1": 100 * 2109 / 2115,
        "task2_acc_after_task2": 100 * 1899 / 2000,
        "task1_acc_after_task2": 100 * 193 / 2115,
        "task1_acc_at_beta_1_7": 100 * 2084 / 2115,
    }
    for name, value in exact.items():
        assert m[name] == pytest.approx(value, abs=1e-12), name
        assert round(m[name], 2) == fg.PUBLISHED[name][0]


def test_published_curves(published_run):
    s = published_run.series
    assert s["epoch"] == list(range(11))
    # notebook printout, one decimal: Task 1 during Task 1, Task 2 during Task 2
    assert [round(a, 1) for a in s["task1_acc_by_epoch"][:6]] == [
        48.5,
        97.3,
        99.2,
        99.7,
        99.7,
        99.7,
    ]
    assert [round(a, 1) for a in s["task2_acc_by_epoch"][6:]] == [24.7, 93.8, 94.7, 94.8, 95.0]
    published_sweep = [9.13, 28.65, 55.51, 77.73, 89.22, 94.52, 97.26, 98.53, 99.10, 99.48]
    assert s["beta"][:10] == pytest.approx([1.0 + 0.1 * i for i in range(10)])
    assert [round(a, 2) for a in s["task1_acc_vs_beta"][:10]] == published_sweep
    assert len(s["beta"]) == len(s["task1_acc_vs_beta"]) == len(s["task2_acc_vs_beta"]) == 21
    assert s["steps_per_task"] == [5 * 99, 5 * 94]  # 12665 / 128 and 12000 / 128, rounded up
    assert len(s["loss"]) == sum(s["steps_per_task"])


def test_task1_recovers_monotonically_with_beta(published_run):
    acc = published_run.series["task1_acc_vs_beta"][:10]  # beta = 1.0 ... 1.9
    assert all(b > a for a, b in zip(acc, acc[1:], strict=False))
    assert acc[-1] > 99.0 > published_run.metrics["task1_acc_after_task2"] + 80


def test_result_json_roundtrip_and_plot(published_run):
    back = Result.from_dict(published_run.to_dict())
    fig = fg.plot(back)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2


# ----------------------------------------------------------------------------- exactness


class _NotebookModel(nn.Module):
    """The notebook's SuperpositionMLPModel, transcribed literally (reference for tests)."""

    def __init__(self):
        super().__init__()
        self.input_layer1 = nn.Linear(784, 64, bias=False)
        self.input_layer2 = nn.Linear(784, 64, bias=False)
        self.input_act = nn.ReLU(inplace=False)
        self.output_layer1 = nn.Linear(64, 4, bias=False)
        self.output_layer2 = nn.Linear(64, 4, bias=False)

    def forward(self, x, weight_task_one=1.0):
        out = self.input_layer1(x) * weight_task_one + self.input_layer2(x)
        out = self.input_act(out)
        return self.output_layer1(out) * weight_task_one + self.output_layer2(out)


def _notebook_pipeline(tasks, epochs):
    torch.manual_seed(0)
    model = _NotebookModel()
    loader = lambda x, y: DataLoader(TensorDataset(x, y), batch_size=128, shuffle=False)  # noqa: E731
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0006, momentum=0.0)

    def accuracy(x, y, w=1.0):
        correct = 0
        with torch.no_grad():
            for images, labels in loader(x, y):
                _, predicted = model(images.view(-1, 784), w).max(1)
                correct += (predicted == labels).sum().item()
        return 100 * correct / len(y)

    model.input_layer2.weight.data = torch.zeros_like(model.input_layer2.weight.data)
    model.input_layer2.weight.requires_grad = False
    model.output_layer2.weight.data = torch.zeros_like(model.output_layer2.weight.data)
    model.output_layer2.weight.requires_grad = False
    for x, y in (
        (tasks.task1_train_x, tasks.task1_train_y),
        (tasks.task2_train_x, tasks.task2_train_y),
    ):
        for _ in range(epochs):
            for images, labels in loader(x, y):
                loss = loss_fn(model(images.view(-1, 784)), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.input_layer1.weight.requires_grad = False
        model.output_layer1.weight.requires_grad = False
        model.input_layer2.weight.requires_grad = True
        model.output_layer2.weight.requires_grad = True
    sweep = [accuracy(tasks.task1_test_x, tasks.task1_test_y, b) for b in (1.0, 1.7)]
    return model, sweep


def test_fast_pipeline_is_bitwise_the_notebook():
    """Shortcuts (slices, skipped zero layers, cached frozen layer) change no bit."""
    tasks = load_forgetting_tasks()
    config = fg.Config(epochs_per_task=1)
    with single_thread():
        ref, ref_sweep = _notebook_pipeline(tasks, epochs=1)
        net = fg.build_net(0)
        fg.train_task(net, tasks.task1_train_x, tasks.task1_train_y, 1, config)
        fg.train_task(net, tasks.task2_train_x, tasks.task2_train_y, 2, config)
    pairs = [
        (net.in1, ref.input_layer1),
        (net.in2, ref.input_layer2),
        (net.out1, ref.output_layer1),
        (net.out2, ref.output_layer2),
    ]
    for ours, theirs in pairs:
        assert torch.equal(ours.weight, theirs.weight)
    sweep = fg.evaluate_betas(net, tasks.task1_test_x, tasks.task1_test_y, (1.0, 1.7))
    assert sweep == ref_sweep
    assert fg.evaluate(net, tasks.task1_test_x, tasks.task1_test_y, 1.7) == ref_sweep[1]


# ----------------------------------------------------------------------------- building blocks


def test_build_net_is_the_published_init_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    net = fg.build_net(0)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(0)
    ref = _NotebookModel()
    assert torch.equal(net.in1.weight, ref.input_layer1.weight)
    assert torch.equal(net.out1.weight, ref.output_layer1.weight)
    assert not net.in2.weight.any() and not net.out2.weight.any()
    assert [name for name, _ in net.named_children()] == ["in1", "in2", "out1", "out2"]
    assert all(m.bias is None for m in net.children())


def test_beta_scales_task1_weights():
    net = fg.build_net(3, hidden=8)
    with torch.no_grad():
        net.in2.weight.normal_(0, 0.1)
        net.out2.weight.normal_(0, 0.1)
    x = torch.rand(5, 784)
    scaled = fg.build_net(3, hidden=8)
    scaled.load_state_dict(net.state_dict())
    with torch.no_grad():
        scaled.in1.weight.mul_(1.7)
        scaled.out1.weight.mul_(1.7)
    torch.testing.assert_close(net(x, beta=1.7), scaled(x), rtol=1e-5, atol=1e-6)


def test_train_task_freezes_the_other_task_and_reports_steps():
    tasks = load_forgetting_tasks()
    x, y = tasks.task2_train_x[:300], tasks.task2_train_y[:300]
    net = fg.build_net(0, hidden=16)
    with torch.no_grad():
        net.in2.weight.normal_(0, 0.01)  # a non-zero frozen layer takes the general path
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calls, epochs, seen = [], [], []
    hook = net.in1.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    config = fg.Config(epochs_per_task=2, batch_size=128)
    losses = fg.train_task(
        net, x, y, 1, config, on_step=lambda s, idx: calls.append((s, idx)), on_epoch=epochs.append
    )
    hook.remove()
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert [s for s, _ in calls] == list(range(6))
    assert torch.equal(calls[2][1], torch.arange(256, 300))
    assert torch.equal(calls[3][1], torch.arange(0, 128))
    assert epochs == [1, 2]
    assert seen == [128, 128, 44] * 2  # hooks on the trainable layers fire every step
    after = net.state_dict()
    assert torch.equal(after["in2.weight"], before["in2.weight"])
    assert torch.equal(after["out2.weight"], before["out2.weight"])
    assert not torch.equal(after["in1.weight"], before["in1.weight"])
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="task"):
        fg.train_task(net, x, y, 3, config)


def test_evaluate_rejects_empty():
    net = fg.build_net(0, hidden=4)
    with pytest.raises(ValueError, match="x"):
        fg.evaluate(net, torch.zeros(0, 784), torch.zeros(0, dtype=torch.int64))


def test_single_thread_restores_the_setting():
    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ----------------------------------------------------------------------------- config & modes


def test_quick_runs():
    config = fg.quick(fg.Config())
    result = fg.run(config)
    assert len(result.series["task1_acc_by_epoch"]) == 3
    assert result.metrics["task1_acc_after_task1"] > 95
    assert "task1_acc_at_beta_1_7" in result.metrics
    assert isinstance(fg.plot(result), Figure)


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs_per_task", 0),
        ("lr", 0.0),
        ("batch_size", 0),
        ("hidden", 0),
        ("betas", ()),
        ("betas", (1.0, -1.0)),
    ],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        fg.Config(**{field: value})
    with pytest.raises(ConfigError, match=field):
        config_from_dict(fg.Config, {field: value})
    with pytest.raises(ConfigError, match="mode"):
        config_from_dict(fg.Config, {"mode": "primal"})


def test_dual_mode_delegates(monkeypatch):
    fake = types.ModuleType("kvmem.experiments.paper.forgetting_dual")
    seen = []

    def run_dual(config, progress):
        seen.append(config)
        return Result(experiment="forgetting", config={})

    fake.run_dual = run_dual
    monkeypatch.setitem(sys.modules, "kvmem.experiments.paper.forgetting_dual", fake)
    config = fg.Config(mode="dual")
    assert fg.run(config).experiment == "forgetting"
    assert seen == [config]


def test_data_dir_of_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for name, labels in (("mnist", range(10)), ("fashion", range(10))):
        folder = tmp_path / name
        folder.mkdir()
        for split, n in (("train", 500), ("t10k", 100)):
            y = rng.choice(np.asarray(list(labels), np.uint8), size=n)
            x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
            for i, label in enumerate(y % 4):  # a learnable stripe per class
                x[i, 4 * label : 4 * label + 4, :] = 250
            write_idx(folder / f"{split}-images-idx3-ubyte.gz", x)
            write_idx(folder / f"{split}-labels-idx1-ubyte.gz", y)
    config = dataclasses.replace(
        fg.quick(fg.Config()), data_dir=str(tmp_path), epochs_per_task=3, lr=0.05, batch_size=16
    )
    result = fg.run(config)
    assert result.series["epoch"] == list(range(7))
    assert result.metrics["task1_acc_after_task1"] > 90
    assert all(0 <= a <= 100 for a in result.series["task1_acc_by_epoch"])
