"""Paper Figure 3 in dual form: forgetting and reactivation through the recorded SGD memory.

docs/science.md 3.2 with 1.6. The weight form (:mod:`kvmem.experiments.paper.forgetting`) trains
the two-task network and scales summed weights. Here the same training runs with an
:class:`kvmem.nn.recorder.SGDRecorder` attached, which records every key-value pair the
SGD steps write into the four layers (key = layer input of one example, value =
``-lr * dL/dy`` of that example; 63,325 pairs per Task-1 layer, 60,000 per Task-2 layer).
Every number is then computed from the recorded memory, not from the trained weights:

- the published metrics and curves, with each network materialised as
  ``W = W_0 + sum_n v_n^T k_n`` (the by-epoch accuracies from the pairs of the steps so
  far); they reproduce the weight form to 0.01 points;
- ``dual_max_abs_error``: the largest ``|W_dual - W_trained|`` over the layers and the
  ten epoch ends; ``dual_read_max_abs_error``: the dual read
  ``y = x W_0^T + sum_n (x . k_n) v_n`` of the whole network against its primal logits;
- beyond the paper: Task-1 accuracy against beta when only the Task-1 *pairs* are
  amplified (the initial weights left alone; ``task1_acc_vs_beta_pairs_only``) and when
  only the initial weights are (``..._initial_only``), beside the published curve which
  scales both; the reactivation of a single Task-1 class (amplify the pairs written by
  the examples of one digit: per-class accuracies); and which training examples drive a
  forgotten Task-1 test prediction before and after Task 2 (attribution through the
  first layers, exact for this bias-free ReLU net: the contributions of the initial
  weights and of every pair sum to the logit; :class:`kvmem.nn.dual.Attribution`).

Extra series (besides the weight form's): ``task1_acc_vs_beta_pairs_only``,
``task2_acc_vs_beta_pairs_only``, ``task1_acc_vs_beta_initial_only``,
``reactivate_label{c}_acc_class{k}`` (Task-1 test accuracy on digit k when the pairs of
digit c are amplified by beta), ``attribution_probe`` ``[test index, label, predicted
before, predicted after]``, ``attribution_probe_image``, and for ``before`` / ``after``:
``attribution_{when}_parts`` ``[logit, initial, task1 pairs, task2 pairs]`` and
``attribution_{when}_top_{example_index,label,task,score,images}``. Images are 784 pixel
values 0..255.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import torch
from matplotlib.figure import Figure

from kvmem.data.bundled import Tasks, load_forgetting_tasks
from kvmem.experiments.base import (
    ProgressFactory,
    charge_to_most_grown,
    null_progress,
    single_thread,
)
from kvmem.experiments.paper.forgetting import (
    N_CLASSES,
    N_INPUT,
    NAME,
    Config,
    TwoTaskNet,
    _plot_by_epoch,
    _plot_published,
    build_net,
    evaluate,
    evaluate_betas,
    train_task,
)
from kvmem.nn.dual import KeyValueTrace
from kvmem.nn.recorder import SGDRecorder
from kvmem.results import Result

__all__ = [
    "run_dual",
    "plot_dual",
    "record_training",
    "estimate_dual_bytes",
    "TOP_K",
    "DUAL_SERIES",
]

#: training examples listed per attribution
TOP_K = 8
#: the series that mark a dual-mode result (``forgetting.plot`` dispatches on the first)
DUAL_SERIES: tuple[str, ...] = (
    "task1_acc_vs_beta_pairs_only",
    "task1_acc_vs_beta_initial_only",
    "attribution_probe",
)
_LAYERS = ("in1", "in2", "out1", "out2")


def estimate_dual_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a dual-mode run, keyed by the field that drives it.

    The recorded memory: every SGD step writes one pair per training example into each
    layer it trains, up to 12,665 examples per epoch and task (Task 1, the larger), with
    keys ``[pairs, 784]`` / values ``[pairs, hidden]`` in the input layers and keys
    ``[pairs, hidden]`` / values ``[pairs, 4]`` in the output layers (float32); plus about
    1.5 epochs' worth for the float64 sums of an epoch's pairs and the analyses' products
    (measured peak over the data and imports: 412 MiB at 5 epochs, 692 MiB at 10).
    ``forgetting.estimate_bytes`` should add this when ``mode == "dual"``.
    """
    per_epoch = 4 * 2 * 12_665 * (N_INPUT + 2 * config.hidden + N_CLASSES)
    d = Config()
    grown = {
        "epochs_per_task": config.epochs_per_task / d.epochs_per_task,
        "hidden": config.hidden / d.hidden,
    }
    return charge_to_most_grown(grown, per_epoch * (2 * config.epochs_per_task + 3) // 2)


def record_training(
    config: Config,
    tasks: Tasks,
    progress: ProgressFactory = null_progress,
) -> tuple[TwoTaskNet, KeyValueTrace, dict[str, Any]]:
    """Train Task 1 then Task 2 exactly as the weight form does, recording every pair.

    Returns the trained network, the recorded memory (tags ``task`` 1/2 and ``epoch``
    1..epochs_per_task; the training sets registered as datasets ``task1`` / ``task2``, so
    first-layer keys are stored by reference and every pair knows its example and label)
    and ``info``: ``epoch_steps`` (recorded steps at the end of each epoch), ``weights``
    (a copy of the four weights at each epoch end), ``losses`` and ``steps_per_task``.
    """
    net = build_net(config.seed, config.hidden)
    rec = SGDRecorder(net, layers=list(_LAYERS))
    rec.register_dataset("task1", tasks.task1_train_x, tasks.task1_train_y)
    rec.register_dataset("task2", tasks.task2_train_x, tasks.task2_train_y)
    epoch_steps: list[int] = []
    weights: list[dict[str, torch.Tensor]] = []
    losses: list[list[float]] = []

    def on_step(_step: int, _batch: torch.Tensor) -> None:
        # train_task has just applied W <- W - lr * W.grad to the trainable layers
        rec.record_step(config.lr)

    def on_epoch(epoch: int) -> None:
        epoch_steps.append(rec.n_steps)
        weights.append({n: getattr(net, n).weight.detach().clone() for n in _LAYERS})
        rec.set_tags(epoch=epoch + 1)

    with rec:
        for task, x, y in (
            (1, tasks.task1_train_x, tasks.task1_train_y),
            (2, tasks.task2_train_x, tasks.task2_train_y),
        ):
            rec.set_tags(task=task, epoch=1)
            losses.append(
                train_task(net, x, y, task, config, progress, on_step=on_step, on_epoch=on_epoch)
            )
    info = {
        "epoch_steps": epoch_steps,
        "weights": weights,
        "losses": losses[0] + losses[1],
        "steps_per_task": [len(losses[0]), len(losses[1])],
    }
    return net, rec.trace(), info


def _epoch_networks(mem: KeyValueTrace, net: TwoTaskNet, epochs: int) -> Iterator[TwoTaskNet]:
    """The network at the start (W0 only) and at the end of every epoch, each materialised
    from the memory: ``W = W_0 + sum of the pairs written up to that epoch``.

    The sum of each epoch's pairs (``task``, ``epoch`` tags) is formed once per layer, in
    float64, and accumulated; every network is then cast to the layer dtype."""
    base = mem.delete()
    acc = {n: base.weight(n, torch.float64) for n in _LAYERS}
    yield base.materialize(net)
    for task in (1, 2):
        for epoch in range(1, epochs + 1):
            part = mem.keep(task=task, epoch=epoch).with_initial(0.0)
            for n in _LAYERS:
                if part.n_pairs(n) and bool(part.scale_of(n).any()):
                    acc[n] += part.weight(n, torch.float64)
            out = copy.deepcopy(net)
            with torch.no_grad():
                for n in _LAYERS:
                    getattr(out, n).weight.copy_(acc[n])
            yield out


def _max_error(net: TwoTaskNet, weights: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Largest absolute and relative (to the layer's max |W|) weight discrepancy."""
    abs_err = rel_err = 0.0
    for n, w in weights.items():
        d = float((getattr(net, n).weight.detach().double() - w.double()).abs().max())
        scale = float(w.abs().max())
        abs_err = max(abs_err, d)
        rel_err = max(rel_err, d / scale if scale > 0 else d)
    return abs_err, rel_err


def _predict(
    net: TwoTaskNet, x: torch.Tensor, in2: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Predicted class (argmax of the 4 logits) of every row of ``x``, int64 ``[N]``, in one
    batch (the new analyses; the published metrics use :func:`evaluate`'s batches of 128).

    ``in2 = (W, W x^T)``: a Task-2 input weight and its output on ``x``, reused when
    ``net.in2`` holds exactly ``W``; the logits are then the same floats as ``net(x)`` (whose
    ``beta = 1.0`` multiplications are exact), without recomputing that product."""
    with torch.no_grad():
        if in2 is None or not torch.equal(net.in2.weight, in2[0]):
            return net(x).argmax(1)
        h = torch.relu(net.in1(x) + in2[1])
        return (net.out1(h) + net.out2(h)).argmax(1)


def _accuracy(
    net: TwoTaskNet,
    x: torch.Tensor,
    y: torch.Tensor,
    in2: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    """Test accuracy in percent of ``net`` on ``(x, y)`` (one batch; ``in2`` as in
    :func:`_predict`)."""
    return 100 * float((_predict(net, x, in2) == y).double().mean())


def _image(x: torch.Tensor) -> list[int]:
    return torch.round(x.reshape(-1) * 255).clamp(0, 255).to(torch.int64).tolist()


def _attribution_series(
    mem: KeyValueTrace, net: TwoTaskNet, x: torch.Tensor, tasks: Tasks, when: str
) -> dict[str, Any]:
    """Top-k training examples driving the predicted logit at ``x`` (first layers)."""
    att = mem.attribute(net, x, layers=["in1", "in2"], by="example", order="positive")
    # sums of the pair contributions by task (the datasets are named task1 and task2)
    task1, task2 = (
        float(att.scores[torch.tensor([d == t for d in att.dataset], dtype=torch.bool)].sum())
        for t in ("task1", "task2")
    )
    top = att.top(TOP_K)
    train_x = {"task1": tasks.task1_train_x, "task2": tasks.task2_train_x}
    return {
        f"attribution_{when}_parts": [att.output, att.initial, task1, task2],
        f"attribution_{when}_top_example_index": [t["example_index"] for t in top],
        f"attribution_{when}_top_label": [t["label"] for t in top],
        f"attribution_{when}_top_task": [1 if t["dataset"] == "task1" else 2 for t in top],
        f"attribution_{when}_top_score": [t["score"] for t in top],
        f"attribution_{when}_top_images": [
            _image(train_x[t["dataset"]][t["example_index"]]) for t in top
        ],
    }


def run_dual(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """The forgetting experiment computed through the recorded key-value memory.

    Same metrics and series as :func:`kvmem.experiments.paper.forgetting.run_weights` (to 0.01
    points), plus the dual-form checks and analyses listed in the module docstring.
    """
    tasks = load_forgetting_tasks(config.data_dir)
    ebs = config.batch_size
    betas = list(config.betas)
    e = config.epochs_per_task
    with single_thread():
        net, mem, info = record_training(config, tasks, progress)
        x1, y1 = tasks.task1_test_x, tasks.task1_test_y
        x2, y2 = tasks.task2_test_x, tasks.task2_test_y

        # -- exactness: the memory at every epoch end equals the trained weights then
        max_abs = max_rel = 0.0
        acc1: list[float] = []
        acc2: list[float] = []
        for k, dual_net in enumerate(
            progress(_epoch_networks(mem, net, e), total=2 * e + 1, desc="epochs (dual)")
        ):
            if k > 0:
                a, r = _max_error(dual_net, info["weights"][k - 1])
                max_abs, max_rel = max(max_abs, a), max(max_rel, r)
            acc1.append(evaluate(dual_net, x1, y1, 1.0, ebs))
            acc2.append(evaluate(dual_net, x2, y2, 1.0, ebs))
        full = mem.materialize(net)
        # the whole network read in dual form (no weight matrix) on a few test inputs
        probe_x = torch.cat([x1[:32], x2[:32]])
        with torch.no_grad():
            primal = full(probe_x)
        dual = mem.dual_forward(net, probe_x)
        read_err = float((dual - primal).abs().max())

        # -- the published curve (scales W0 and the pairs: the forward's beta) ...
        vs1 = evaluate_betas(full, x1, y1, betas, ebs)
        vs2 = evaluate_betas(full, x2, y2, betas, ebs)
        # ... against amplifying only the Task-1 pairs, or only the initial weights
        pairs1, pairs2, init1 = [], [], []
        per_class: dict[tuple[int, int], list[float]] = {(c, k): [] for c in (0, 1) for k in (0, 1)}
        scratch = copy.deepcopy(net)  # every view below is materialised into it in place
        # the views below edit Task-1 weights only: the Task-2 input layer's test outputs
        # are computed once (and reused only where that layer is bit-for-bit unchanged)
        with torch.no_grad():
            in2_1 = (full.in2.weight, full.in2(x1))
            in2_2 = (full.in2.weight, full.in2(x2))
        for beta in progress(betas, total=len(betas), desc="beta (dual)"):
            amp = mem.scale(beta, task=1).materialize(scratch, inplace=True)
            pairs1.append(_accuracy(amp, x1, y1, in2_1))
            pairs2.append(_accuracy(amp, x2, y2, in2_2))
            init = mem.with_initial(beta, layer=["in1", "out1"]).materialize(scratch, inplace=True)
            init1.append(_accuracy(init, x1, y1, in2_1))
            for c in (0, 1):
                one = mem.scale(beta, task=1, label=c).materialize(scratch, inplace=True)
                pred = _predict(one, x1, in2_1)
                for k in (0, 1):
                    per_class[(c, k)].append(100 * float((pred[y1 == k] == k).double().mean()))

        # -- attribution of a forgotten Task-1 test prediction, before and after Task 2
        before = mem.delete(task=2)
        net_before = before.materialize(net)
        with torch.no_grad():
            pred_before = net_before(x1).argmax(1)
            pred_after = _predict(full, x1, in2_1)
        forgotten = ((pred_before == y1) & (pred_after != y1)).nonzero().flatten()
        probe = int(forgotten[0]) if len(forgotten) else 0
        att: dict[str, Any] = {
            "attribution_probe": [
                probe,
                int(y1[probe]),
                int(pred_before[probe]),
                int(pred_after[probe]),
            ],
            "attribution_probe_image": _image(x1[probe]),
        }
        att |= _attribution_series(before, net, x1[probe], tasks, "before")
        att |= _attribution_series(mem, net, x1[probe], tasks, "after")

    metrics: dict[str, float] = {
        "task1_acc_after_task1": acc1[e],
        "task2_acc_after_task2": acc2[2 * e],
        "task1_acc_after_task2": acc1[2 * e],
    }
    for beta, a1, a2, p1 in zip(betas, vs1, vs2, pairs1, strict=True):
        if math.isclose(beta, 1.7, abs_tol=1e-9):
            metrics["task1_acc_at_beta_1_7"] = a1
            metrics["task2_acc_at_beta_1_7"] = a2
            metrics["task1_acc_at_beta_1_7_pairs_only"] = p1
    best = max(range(len(betas)), key=lambda i: vs1[i])
    metrics["task1_acc_best_over_beta"] = vs1[best]
    metrics["beta_best"] = betas[best]
    best_p = max(range(len(betas)), key=lambda i: pairs1[i])
    metrics["task1_acc_best_over_beta_pairs_only"] = pairs1[best_p]
    metrics["beta_best_pairs_only"] = betas[best_p]
    metrics["dual_max_abs_error"] = max_abs
    metrics["dual_max_rel_error"] = max_rel
    metrics["dual_read_max_abs_error"] = read_err
    metrics["pairs_recorded"] = float(mem.n_pairs())
    metrics["trace_bytes"] = float(mem.nbytes)

    series: dict[str, Any] = {
        "epoch": list(range(2 * e + 1)),
        "task1_acc_by_epoch": acc1,
        "task2_acc_by_epoch": acc2,
        "beta": betas,
        "task1_acc_vs_beta": vs1,
        "task2_acc_vs_beta": vs2,
        "loss": info["losses"],
        "steps_per_task": info["steps_per_task"],
        "task1_acc_vs_beta_pairs_only": pairs1,
        "task2_acc_vs_beta_pairs_only": pairs2,
        "task1_acc_vs_beta_initial_only": init1,
        "pairs_per_layer": [mem.n_pairs(n) for n in _LAYERS],
    }
    for (c, k), accs in per_class.items():
        series[f"reactivate_label{c}_acc_class{k}"] = accs
    series |= att
    return Result(experiment=NAME, config={}, metrics=metrics, series=series)


# ----------------------------------------------------------------------------- the figure


def _show(ax: Any, pixels: list[int], title: str, color: str = "k") -> None:
    ax.imshow(torch.tensor(pixels).reshape(28, 28).numpy(), cmap="gray_r", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7, color=color)


def plot_dual(result: Result) -> Figure:
    """Dual-mode Figure 3: (A) accuracy by epoch, (B) published vs pairs-only vs
    initial-only reactivation, (C) single-class reactivation, (D) the training examples
    driving a forgotten Task-1 prediction before and after Task 2."""
    s = result.series
    m = result.metrics
    fig = Figure(figsize=(14, 8.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1.0])
    ax_a, ax_b, ax_c = top.subplots(1, 3)

    _plot_by_epoch(
        ax_a, s, "Task 2 (Fashion 2/3)", "epoch (networks materialised from the recorded pairs)"
    )
    err = m.get("dual_max_abs_error", float("nan"))
    ax_a.set_title(
        f"A  forgetting, read from the memory\nmax |W_dual - W_trained| = {err:.1e}",
        loc="left",
        fontsize=9,
    )
    ax_a.legend(loc="center left", fontsize=8)

    betas = s["beta"]
    ax_b.plot(
        betas,
        s["task1_acc_vs_beta"],
        "-o",
        ms=4,
        color="tab:purple",
        label="published: beta x (W0 + Task-1 pairs)",
    )
    ax_b.plot(
        betas,
        s["task1_acc_vs_beta_pairs_only"],
        "-s",
        ms=4,
        color="tab:green",
        label="W0 + beta x Task-1 pairs",
    )
    if "task1_acc_vs_beta_initial_only" in s:
        ax_b.plot(
            betas,
            s["task1_acc_vs_beta_initial_only"],
            "-^",
            ms=4,
            color="0.5",
            label="beta x W0 + Task-1 pairs",
        )
    ax_b.plot(
        betas,
        s["task2_acc_vs_beta_pairs_only"],
        "--",
        color="tab:blue",
        alpha=0.6,
        label="Task 2, pairs only",
    )
    _plot_published(ax_b, 14, "published {ref:.2f} % at 1.7")
    ax_b.set_xlabel("reactivation strength beta")
    ax_b.set_ylabel("Task-1 test accuracy (%)")
    ax_b.set_ylim(-3, 103)
    ax_b.set_title("B  what must be reactivated: pairs, not W0", loc="left", fontsize=9)
    ax_b.legend(loc="lower right", fontsize=7)

    styles = {0: ("tab:orange", "digit 0"), 1: ("tab:cyan", "digit 1")}
    for c, ls in ((0, "-"), (1, "--")):
        for k in (0, 1):
            key = f"reactivate_label{c}_acc_class{k}"
            if key in s:
                color, name = styles[k]
                ax_c.plot(
                    betas,
                    s[key],
                    ls,
                    color=color,
                    marker="o" if c == 0 else "s",
                    ms=3,
                    label=f"{name} test acc, amplify digit-{c} pairs",
                )
    ax_c.set_xlabel("reactivation strength beta (one class's pairs)")
    ax_c.set_ylabel("per-class Task-1 test accuracy (%)")
    ax_c.set_ylim(-3, 103)
    ax_c.set_title("C  reactivating a single engram (one digit)", loc="left", fontsize=9)
    ax_c.legend(loc="center right", fontsize=7)

    if "attribution_probe_image" in s:
        k = len(s["attribution_before_top_score"])
        rows = bottom.subfigures(2, 1)
        probe, label, pb, pa = s["attribution_probe"]
        for row, when, pred in ((rows[0], "before", pb), (rows[1], "after", pa)):
            axes = row.subplots(1, k + 1)
            logit, init, t1, t2 = s[f"attribution_{when}_parts"]
            _show(
                axes[0],
                s["attribution_probe_image"],
                f"test #{probe} (digit {label})\npredicted {pred}",
                "tab:red",
            )
            for j in range(k):
                task = s[f"attribution_{when}_top_task"][j]
                _show(
                    axes[j + 1],
                    s[f"attribution_{when}_top_images"][j],
                    f"task {task} #{s[f'attribution_{when}_top_example_index'][j]} "
                    f"(label {s[f'attribution_{when}_top_label'][j]})\n"
                    f"{s[f'attribution_{when}_top_score'][j]:+.2e}",
                    "tab:red" if task == 1 else "tab:blue",
                )
            row.suptitle(
                f"D  {when} Task 2: training examples driving logit {pred} = {logit:.2f} "
                f"(W0 {init:+.2f}, Task-1 pairs {t1:+.2f}, Task-2 pairs {t2:+.2f})",
                fontsize=9,
                x=0.01,
                ha="left",
            )
    return fig
