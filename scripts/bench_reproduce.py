#!/usr/bin/env python
"""Time kvmem's paper experiments against plain transcriptions of the published code.

For each simulation of Gershman, Fiete & Irie (2025) this script runs, in one process:

- the *published loop*: the authors' notebook code (github.com/kazuki-irie/kv-memory-brain)
  transcribed statement by statement: ``nn.Module`` + autograd + ``torch.optim`` with one
  Python iteration per step, the notebook's per-step bookkeeping, ``DataLoader`` batches
  (over tensors instead of torchvision datasets, same values);
- kvmem's ``run`` of the same experiment at its default (published) configuration;

checks that they computed the same thing and prints the times and their ratio.

- ``kv-optimization`` (Fig. 2A + 2B, 5,000 + 10,000 Adam steps): kvmem's ``fast`` engine
  uses hand-derived gradients, so it agrees with autograd to float32 rounding, not bit for
  bit; the script reports the largest differences. kvmem's ``autograd`` engine is also run
  and must equal the transcription exactly.
- ``forgetting`` (Fig. 3): kvmem must reproduce every accuracy and every per-step loss of
  the transcription exactly (same floats).

Both sides run single-threaded (kvmem always does; see ``kvmem.experiments.paper.forgetting``).
``--default-threads`` additionally times the transcriptions with torch's default thread
count, as a user would run the notebooks (timing only).

Usage::

    python scripts/bench_reproduce.py [--default-threads] [--skip-autograd-engine]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kvmem.data import bundled
from kvmem.experiments.base import single_thread
from kvmem.experiments.paper import forgetting as fg
from kvmem.experiments.paper import kv_optimization as kv

# ----------------------------------------------------------------------------- notebooks


def notebook_kv(num_classes: int) -> dict[str, Any]:
    """``2classes/3classes_key_value_optimization.ipynb``, transcribed."""
    sigm_fn = torch.nn.functional.sigmoid
    torch.manual_seed(42)
    np.random.seed(42)  # noqa: NPY002 - as published
    num_datapoints = 100 * num_classes
    num_iterations = 5000 if num_classes == 2 else 10000
    key_dimension = 2
    data_keys = torch.randn([num_datapoints, key_dimension]).uniform_(0, 1)
    data_values = torch.rand([num_datapoints, key_dimension])
    features = [[1, 0], [0, 1]] if num_classes == 2 else [[1, 0], [0, 1], [1, 1]]
    class_features = torch.tensor(features)
    target_classes = torch.randint(low=0, high=num_classes, size=[num_datapoints])
    target_class_features = class_features[target_classes].float()
    import matplotlib.cm as cm

    colors = cm.hsv(np.linspace(0, 0.7, num_classes))
    class_colors = colors[target_classes]

    class SoftmaxKeyValueMemory(nn.Module):
        def __init__(self, initial_keys, initial_values):
            super().__init__()
            self.key_representations = nn.Parameter(initial_keys)
            self.value_representations = nn.Parameter(initial_values)
            self.softmax = torch.nn.Softmax(dim=0)

        def compute_pairwise_dot_product(self, x):
            return x.detach().mm(x.T)

        def forward(self):
            attn = self.compute_pairwise_dot_product(self.key_representations) * (
                key_dimension**-0.5
            )
            attn = self.softmax(attn)
            return torch.matmul(attn.T, sigm_fn(self.value_representations))

    loss_fn = torch.nn.MSELoss()
    model = SoftmaxKeyValueMemory(data_keys.clone(), data_values.clone())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    alpha = 0.01
    alpha_step = (0.1 - 0.01) / num_iterations
    plt_colors, plt_alphas, loss_val = [], [], []
    plt_x, plt_y, val_plt_x, val_plt_y = [], [], [], []
    for _ in range(num_iterations):
        val = model()
        loss = loss_fn(val, target_class_features)
        loss.backward()
        optimizer.step()
        cur_key = model.key_representations.clone().detach().to("cpu").numpy()
        cur_value = sigm_fn(model.value_representations.clone()).detach().to("cpu").numpy()
        alpha += alpha_step
        loss_val.append(loss.item())
        plt_colors.append(class_colors)
        plt_alphas.append(np.ones(cur_key[:, 1].shape) * alpha)
        plt_x.append(cur_key[:, 0])
        plt_y.append(cur_key[:, 1])
        val_plt_x.append(cur_value[:, 0])
        val_plt_y.append(cur_value[:, 1])
    return {
        "keys": model.key_representations.detach().clone(),
        "values": model.value_representations.detach().clone(),
        "loss": loss_val,
        "classes": target_classes,
        "targets": target_class_features,
    }


def notebook_forgetting(betas: list[float]) -> dict[str, Any]:
    """``Forgetting_and_recovery.ipynb``, transcribed (data from kvmem's bundled arrays)."""
    bundled._CACHE.clear()
    tasks = bundled.load_forgetting_tasks()
    seed = 0
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - as published
    input_size, hidden_size, num_classes = 784, 64, 4
    batch_size, learning_rate, momentum = 128, 0.0006, 0.0

    def loader(x, y):
        return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)

    train_loader = loader(tasks.task1_train_x, tasks.task1_train_y)
    test_loader = loader(tasks.task1_test_x, tasks.task1_test_y)
    f_train_loader = loader(tasks.task2_train_x, tasks.task2_train_y)
    f_test_loader = loader(tasks.task2_test_x, tasks.task2_test_y)

    class SuperpositionMLPModel(nn.Module):
        def __init__(self, input_size, hidden_size, num_classes):
            super().__init__()
            self.input_layer1 = nn.Linear(input_size, hidden_size, bias=False)
            self.input_layer2 = nn.Linear(input_size, hidden_size, bias=False)
            self.input_act = nn.ReLU(inplace=False)
            self.output_layer1 = nn.Linear(hidden_size, num_classes, bias=False)
            self.output_layer2 = nn.Linear(hidden_size, num_classes, bias=False)

        def learn_first_task(self):
            self.input_layer2.weight.data = torch.zeros_like(self.input_layer2.weight.data)
            self.input_layer2.weight.requires_grad = False
            self.output_layer2.weight.data = torch.zeros_like(self.output_layer2.weight.data)
            self.output_layer2.weight.requires_grad = False

        def learn_second_task(self):
            self.input_layer1.weight.requires_grad = False
            self.output_layer1.weight.requires_grad = False
            self.input_layer2.weight.requires_grad = True
            self.output_layer2.weight.requires_grad = True

        def forward(self, x, weight_task_one=1.0):
            out = self.input_layer1(x) * weight_task_one + self.input_layer2(x)
            out = self.input_act(out)
            return self.output_layer1(out) * weight_task_one + self.output_layer2(out)

    model = SuperpositionMLPModel(input_size, hidden_size, num_classes)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)

    def test(test_loader, weight_task_one=1.0):
        correct = total = 0
        model.eval()
        with torch.no_grad():
            for images, labels in test_loader:
                images = images.view(-1, 28 * 28)
                _, predicted = model(images, weight_task_one=weight_task_one).max(1)
                total += labels.size(0)
                correct += (predicted == labels).sum().item()
        return 100 * correct / total

    def train(loader, num_epochs, after_epoch):
        for _ in range(num_epochs):
            running_loss, running_total, running_correct = 0.0, 0, 0
            for images, labels in loader:
                model.train()
                images = images.view(-1, 28 * 28)
                net_output = model(images)
                loss = loss_fn(net_output, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
                losses.append(loss.item())
                running_total += labels.size(0)
                with torch.no_grad():
                    _, predicted = net_output.max(1)
                running_correct += (predicted == labels).sum().item()
            after_epoch()

    losses: list[float] = []
    mnist_acc, f_mnist_acc = [], []
    model.learn_first_task()
    mnist_acc.append(test(test_loader))
    f_mnist_acc.append(test(f_test_loader))

    def after_epoch():
        mnist_acc.append(test(test_loader))
        f_mnist_acc.append(test(f_test_loader))

    train(train_loader, 5, after_epoch)
    model.learn_second_task()
    train(f_train_loader, 5, after_epoch)
    acc = [test(test_loader, b) for b in betas]
    f_acc = [test(f_test_loader, b) for b in betas]
    return {"acc1": mnist_acc, "acc2": f_mnist_acc, "vs1": acc, "vs2": f_acc, "loss": losses}


# ----------------------------------------------------------------------------- harness


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def warm_up() -> None:
    """First calls pay one-off costs (kernels, autograd, allocator); keep them out."""
    with single_thread():
        kv.train(kv.make_problem(2, 10), 20, engine="autograd")
        kv.train(kv.make_problem(2, 10), 20, engine="fast")
        fg.run(fg.quick(fg.Config()))


def bench_kv(default_threads: bool, autograd_engine: bool) -> list[str]:
    rows = []
    t_ref = t_ours = t_auto = t_ref_mt = 0.0
    notes = []
    for classes in (2, 3):
        with single_thread():
            ref, dt = timed(lambda c=classes: notebook_kv(c))
        t_ref += dt
        if default_threads:
            t_ref_mt += timed(lambda c=classes: notebook_kv(c))[1]
        config = kv.Config(classes=classes)
        ours, dt = timed(lambda c=config: kv.run(c))
        t_ours += dt
        problem = kv.make_problem(classes)
        fast = kv.train(problem, config.n_steps)
        dk = float((fast["keys"] - ref["keys"]).abs().max())
        dv = float((fast["values"] - ref["values"]).abs().max())
        final_ref = {
            "loss_final": kv.retrieval_loss(ref["keys"], ref["values"], problem.targets),
            "key_separability_final": kv.key_separability(ref["keys"], problem.classes),
            "value_error_final": kv.value_error(ref["values"], problem.targets),
        }
        rel = max(abs(ours.metrics[k] - v) / abs(v) for k, v in final_ref.items())
        notes.append(
            f"  {classes} classes, fast engine vs published loop: max |dkey| {dk:.1e}, "
            f"max |dvalue| {dv:.1e}, final metrics rel. diff {rel:.1e}"
        )
        if autograd_engine:
            auto, dt = timed(lambda c=config, p=problem: kv.train(p, c.n_steps, engine="autograd"))
            t_auto += dt
            same = (
                torch.equal(auto["keys"], ref["keys"])
                and torch.equal(auto["values"], ref["values"])
                and auto["loss"].tolist() == ref["loss"]
            )
            notes.append(
                f"  {classes} classes, autograd engine identical to published loop: {same}"
            )
            if not same:
                raise SystemExit("autograd engine differs from the published loop")
    rows.append(
        f"kv-optimization 2A+2B | published loop {t_ref:6.2f} s | kvmem fast {t_ours:5.2f} s | "
        f"{t_ref / t_ours:5.1f}x"
    )
    if autograd_engine:
        rows.append(
            f"  (kvmem autograd engine {t_auto:.2f} s: {t_ref / t_auto:.2f}x the published loop)"
        )
    if default_threads:
        rows.append(
            f"  (published loop at {torch.get_num_threads()} threads: {t_ref_mt:.2f} s, "
            f"{t_ref_mt / t_ours:.1f}x)"
        )
    return rows + notes


def bench_forgetting(default_threads: bool) -> list[str]:
    config = fg.Config()
    betas = list(config.betas)
    with single_thread():
        ref, t_ref = timed(lambda: notebook_forgetting(betas))
    bundled._CACHE.clear()
    ours, t_ours = timed(lambda: fg.run(config))
    s = ours.series
    same = (
        s["task1_acc_by_epoch"] == ref["acc1"]
        and s["task2_acc_by_epoch"] == ref["acc2"]
        and s["task1_acc_vs_beta"] == ref["vs1"]
        and s["task2_acc_vs_beta"] == ref["vs2"]
        and s["loss"] == ref["loss"]
    )
    rows = [
        f"forgetting      | published loop {t_ref:6.2f} s | kvmem       {t_ours:5.2f} s | "
        f"{t_ref / t_ours:5.1f}x",
        f"  identical accuracies (2 x 11 epochs, 2 x {len(betas)} betas) and per-step losses "
        f"({len(ref['loss'])}): {same}",
    ]
    if default_threads:
        _, t_mt = timed(lambda: notebook_forgetting(betas))
        rows.append(
            f"  (published loop at {torch.get_num_threads()} threads: {t_mt:.2f} s, "
            f"{t_mt / t_ours:.1f}x)"
        )
    if not same:
        raise SystemExit("forgetting: kvmem differs from the published loop")
    m = ours.metrics
    rows.append(
        "  published 99.72 / 94.95 / 9.13 / 98.53 -> kvmem "
        f"{m['task1_acc_after_task1']:.2f} / {m['task2_acc_after_task2']:.2f} / "
        f"{m['task1_acc_after_task2']:.2f} / {m['task1_acc_at_beta_1_7']:.2f}"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--default-threads", action="store_true")
    parser.add_argument("--skip-autograd-engine", action="store_true")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, default threads {torch.get_num_threads()}; warming up")
    warm_up()
    lines = bench_forgetting(args.default_threads)
    lines += bench_kv(args.default_threads, not args.skip_autograd_engine)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
