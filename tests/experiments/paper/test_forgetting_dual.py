"""Figure 3 through the recorded SGD memory (docs/science.md 3.2, 1.6)."""

from __future__ import annotations

import json

import pytest
from matplotlib.figure import Figure

from kvmem.experiments.paper import forgetting
from kvmem.experiments.paper.forgetting_dual import DUAL_SERIES, TOP_K, plot_dual, run_dual
from kvmem.results import Result


@pytest.fixture(scope="module")
def dual() -> Result:
    return forgetting.run(forgetting.Config(mode="dual"))


@pytest.mark.slow
def test_published_numbers_through_the_memory(dual: Result):
    m = dual.metrics
    assert dual.experiment == "forgetting"
    # the paper's numbers, computed from networks materialised from the recorded pairs
    assert m["task1_acc_after_task1"] == pytest.approx(99.72, abs=0.01)
    assert m["task2_acc_after_task2"] == pytest.approx(94.95, abs=0.01)
    assert m["task1_acc_after_task2"] == pytest.approx(9.13, abs=0.01)
    assert m["task1_acc_at_beta_1_7"] == pytest.approx(98.53, abs=0.01)
    # the sum of the pairs equals the trained weights at every epoch end (float32)
    assert m["dual_max_rel_error"] <= 1e-5
    assert m["dual_max_abs_error"] <= 1e-6
    assert m["dual_read_max_abs_error"] <= 1e-5
    assert m["pairs_recorded"] == 2 * 5 * 12665 + 2 * 5 * 12000
    assert dual.series["pairs_per_layer"] == [63325, 60000, 63325, 60000]
    assert m["trace_bytes"] < 2**30 / 4


@pytest.mark.slow
def test_same_series_as_weight_form(dual: Result):
    weights = forgetting.run_weights(forgetting.Config())
    for key in (
        "task1_acc_by_epoch",
        "task2_acc_by_epoch",
        "task1_acc_vs_beta",
        "task2_acc_vs_beta",
    ):
        assert dual.series[key] == pytest.approx(weights.series[key], abs=0.01), key
    for key, value in weights.metrics.items():
        assert dual.metrics[key] == pytest.approx(value, abs=0.01), key
    assert dual.series["steps_per_task"] == weights.series["steps_per_task"]


@pytest.mark.slow
def test_new_analyses(dual: Result):
    s, m = dual.series, dual.metrics
    n = len(s["beta"])
    for key in DUAL_SERIES[:2] + ("task2_acc_vs_beta_pairs_only",):
        assert len(s[key]) == n
    # at beta = 1 every manipulation is the trained network itself
    assert s["task1_acc_vs_beta_pairs_only"][0] == pytest.approx(s["task1_acc_vs_beta"][0])
    assert s["task1_acc_vs_beta_initial_only"][0] == pytest.approx(s["task1_acc_vs_beta"][0])
    # amplifying the Task-1 pairs alone (W0 untouched) is enough to recover Task 1 ...
    assert m["task1_acc_at_beta_1_7_pairs_only"] > 95
    assert m["task1_acc_best_over_beta_pairs_only"] > 99
    # ... amplifying only the initial weights is not
    assert max(s["task1_acc_vs_beta_initial_only"]) < 60
    # one digit's pairs bring back that digit, not the other
    assert s["reactivate_label0_acc_class0"][-1] > 95
    assert s["reactivate_label0_acc_class1"][-1] < 20
    assert s["reactivate_label1_acc_class1"][-1] > 95
    assert s["reactivate_label1_acc_class0"][-1] < 5
    # attribution: a forgotten Task-1 test digit, before and after Task 2
    probe, label, before, after = s["attribution_probe"]
    assert before == label and after != label and after in (2, 3)
    assert len(s["attribution_probe_image"]) == 784
    for when in ("before", "after"):
        logit, initial, task1, task2 = s[f"attribution_{when}_parts"]
        assert initial + task1 + task2 == pytest.approx(logit, abs=1e-4)  # exact decomposition
        scores = s[f"attribution_{when}_top_score"]
        assert len(scores) == TOP_K and scores == sorted(scores, reverse=True)
        assert all(len(img) == 784 for img in s[f"attribution_{when}_top_images"])
    # before Task 2 only Task-1 examples (of the probe's digit) drive it; after, Task-2 ones
    assert s["attribution_before_parts"][3] == 0.0
    assert set(s["attribution_before_top_task"]) == {1}
    assert set(s["attribution_before_top_label"]) == {label}
    assert set(s["attribution_after_top_task"]) == {2}
    assert set(s["attribution_after_top_label"]) == {after}


@pytest.mark.slow
def test_result_json_and_figure(dual: Result, tmp_path):
    path = dual.save(tmp_path)
    back = Result.load(path)
    json.loads(path.read_text())
    assert back.series["attribution_probe"] == dual.series["attribution_probe"]
    fig = plot_dual(back)
    assert isinstance(fig, Figure)
    assert len(fig.axes) >= 3 + 2 * (TOP_K + 1)


def test_quick_dual_runs():
    config = forgetting.quick(forgetting.Config(mode="dual"))
    result = run_dual(config)
    assert len(result.series["task1_acc_by_epoch"]) == 3
    assert len(result.series["task1_acc_vs_beta_pairs_only"]) == len(config.betas)
    assert result.metrics["dual_max_rel_error"] <= 1e-5
    assert isinstance(plot_dual(result), Figure)


def test_recorded_pairs_know_their_examples():
    import torch

    from kvmem.data.bundled import load_forgetting_tasks
    from kvmem.experiments.paper.forgetting_dual import record_training

    config = forgetting.Config(epochs_per_task=2)
    tasks = load_forgetting_tasks(None)
    net, mem, info = record_training(config, tasks)
    assert mem.count("task") == {
        "in1": {1: 2 * 12665},
        "out1": {1: 2 * 12665},
        "in2": {2: 2 * 12000},
        "out2": {2: 2 * 12000},
    }
    for layer, x, y, ds in (
        ("in1", tasks.task1_train_x, tasks.task1_train_y, "task1"),
        ("out2", tasks.task2_train_x, tasks.task2_train_y, "task2"),
    ):
        ex = mem.field(layer, "example_index")
        assert torch.equal(ex, torch.arange(len(x)).repeat(2))  # file order, two epochs
        assert torch.equal(mem.field(layer, "label"), y.repeat(2))
        assert torch.equal(mem.field(layer, "visit") + 1, mem.field(layer, "epoch"))
        assert mem.count("dataset", layer=layer) == {ds: 2 * len(x)}
    # first-layer keys are the training images, by reference: no copy of any image
    assert len(mem.pairs("in1").key_copies) == 0 and len(mem.pairs("in2").key_copies) == 0
    assert torch.equal(mem.keys("in1", mem.mask("in1", step=0)), tasks.task1_train_x[:128])
    assert max(mem.max_abs_error(net, relative=True).values()) <= 1e-5
    assert info["steps_per_task"] == [2 * 99, 2 * 94]
