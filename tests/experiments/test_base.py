from dataclasses import dataclass
from typing import Literal

import pytest

from kvmem import experiments
from kvmem.experiments.base import ConfigError, config_from_dict, null_progress, parse_overrides


@dataclass(frozen=True)
class Demo:
    seed: int = 0
    lr: float = 0.1
    flag: bool = False
    name: str = "a"
    classes: Literal[2, 3] = 2
    betas: tuple[float, ...] = (1.0, 2.0)
    steps: int | None = None

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr: expected > 0")


def test_parse_each_type():
    got = parse_overrides(
        Demo,
        ["lr=0.5", "flag=true", "name=b", "classes=3", "betas=1,1.5", "steps=none", "seed=7"],
    )
    assert got == {
        "lr": 0.5,
        "flag": True,
        "name": "b",
        "classes": 3,
        "betas": (1.0, 1.5),
        "steps": None,
        "seed": 7,
    }
    assert parse_overrides(Demo, ["steps=12"]) == {"steps": 12}


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("nope=1", "unknown config field 'nope'"),
        ("lr=abc", "bad value 'abc' for lr: expected float"),
        ("classes=4", "one of 2, 3"),
        ("flag=maybe", "true or false"),
        ("seed=1.5", "expected int"),
        ("lr", "KEY=VALUE"),
    ],
)
def test_parse_errors_name_field(item, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        parse_overrides(Demo, [item])


def test_config_from_dict_checks_types_and_post_init():
    assert config_from_dict(Demo, {"lr": 2}).lr == 2
    with pytest.raises(ConfigError, match="lr"):
        config_from_dict(Demo, {"lr": "x"})
    with pytest.raises(ConfigError, match="lr: expected > 0"):
        config_from_dict(Demo, {"lr": -1.0})


def test_registry_unknown_name():
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        experiments.get("nope")


def test_null_progress_passes_items():
    assert list(null_progress(range(3), total=3, desc="x")) == [0, 1, 2]


@pytest.mark.parametrize("name", experiments.names())
def test_every_experiment_follows_the_protocol(name):
    module = experiments.get(name)
    for attr in ("NAME", "DESCRIPTION", "Config", "quick", "run", "plot"):
        assert hasattr(module, attr), f"{name} lacks {attr}"
    assert module.NAME == name
    config = module.Config()
    assert isinstance(config.seed, int)
    assert type(module.quick(config)) is module.Config


def test_check_claims_marks_missing_metrics_not_applicable():
    from types import SimpleNamespace

    from kvmem.experiments.base import Claim, check_claims
    from kvmem.results import Result

    module = SimpleNamespace(
        CLAIMS=(
            Claim("a above 1", lambda r: r.metrics["a"] > 1),
            Claim("needs b", lambda r: r.metrics["b"] > 0),
        )
    )
    res = Result("x", {}, metrics={"a": 0.5})
    assert check_claims(module, res) == [("a above 1", False), ("needs b", None)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, overrides",
    [
        ("kv-optimization", {"classes": 2}),
        ("kv-optimization", {"classes": 3}),
        ("forgetting", {"mode": "dual"}),
        ("capacity", {}),
        ("robustness", {}),
        ("generalization", {}),
        ("keys-vs-values", {}),
    ],
)
def test_every_claim_holds_under_the_default_protocol(name, overrides):
    """What report.html says holds must hold: each claim is checked on a default run."""
    from kvmem.experiments.base import check_claims
    from kvmem.experiments.runner import make_config, run_experiment

    module = experiments.get(name)
    result = run_experiment(name, make_config(module, overrides))
    claims = check_claims(module, result)
    assert claims, f"{name} declares no claims"
    failed = [text for text, held in claims if held is False]
    assert not failed, failed
    assert all(held for _, held in claims), claims  # default runs: every claim applies


# --- TaskPool: independent pieces on threads, serial results ---------------------------------


@pytest.mark.parametrize("workers", [1, 3])
def test_task_pool_returns_each_result_and_yields_each_future_once(workers: int) -> None:
    import threading

    from kvmem.experiments.base import TaskPool

    release = threading.Event()
    seen: list[int] = []

    def piece(i: int):
        def go() -> int:
            if workers > 1 and i == 0:
                release.wait(5)  # keep one piece running while the others finish
            seen.append(i)
            return i * i

        return go

    with TaskPool(workers) as pool:
        assert pool.workers == workers
        futs = [pool.submit(piece(i)) for i in range(6)]
        if workers == 1:
            assert seen == list(range(6))  # inline: run at submit, in order
        early = list(pool.completed(block=False))
        release.set()
        rest = list(pool.completed())
    assert sorted(map(id, early + rest)) == sorted(map(id, futs))  # each future once
    assert [f.result() for f in futs] == [i * i for i in range(6)]
    assert list(pool.completed()) == []


def test_task_pool_errors_reach_the_caller_and_stop_queued_pieces() -> None:
    import threading

    from kvmem.experiments.base import TaskPool

    with pytest.raises(ZeroDivisionError):
        with TaskPool(1) as pool:
            pool.submit(lambda: 1 / 0)  # inline: raised at submit
    started = threading.Event()
    ran: list[int] = []

    def slow() -> None:
        started.set()
        threading.Event().wait(0.2)

    with pytest.raises(RuntimeError, match="stop"):
        with TaskPool(2) as pool:
            pool.submit(slow)
            pool.submit(slow)
            queued = [pool.submit(lambda i=i: ran.append(i)) for i in range(20)]
            started.wait(5)
            raise RuntimeError("stop")
    # leaving the block on an error cancels what had not started
    assert sum(f.cancelled() for f in queued) > 0
    assert len(ran) < 20


def test_task_pool_defaults_to_torch_threads() -> None:
    import os

    import torch

    from kvmem.experiments.base import TaskPool

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert TaskPool().workers == 1
        torch.set_num_threads(2)
        assert TaskPool().workers == min(2, os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("workers", [1, 2])
def test_task_pool_stream_submits_as_pieces_come_and_keeps_their_order(workers: int) -> None:
    from kvmem.experiments.base import TaskPool

    made: list[int] = []

    def pieces():
        for i in range(5):
            made.append(i)  # work between pieces (drawing the next one's data)
            yield lambda i=i: i + 10

    futures: list = []
    with TaskPool(workers) as pool:
        ticks = list(pool.stream(pieces(), futures))
    assert made == list(range(5))
    assert len(ticks) == 5 and sorted(map(id, ticks)) == sorted(map(id, futures))
    assert [f.result() for f in futures] == [10, 11, 12, 13, 14]


def test_task_pool_raises_a_failed_piece_as_it_finishes() -> None:
    import threading

    from kvmem.experiments.base import TaskPool

    gate = threading.Event()
    ran: list[int] = []

    def pieces():
        yield lambda: 1 / 0
        for i in range(30):
            yield lambda i=i: (gate.wait(0.05), ran.append(i))

    futures: list = []
    with pytest.raises(ZeroDivisionError):
        with TaskPool(2) as pool:
            for _ in pool.stream(pieces(), futures):
                pass
    gate.set()
    assert futures[0].exception() is not None
    assert len(ran) < 30  # the error ended the run: queued pieces were dropped


def test_running_jobs_stop_soon_after_another_fails() -> None:
    # TaskPool.drive (keys-vs-values' jobs): after a job's error (or Ctrl-C) the jobs still
    # running leave off after their current unit instead of running to the end
    import time

    from kvmem.experiments.base import TaskPool

    produced: list[int] = []

    def long_job():  # noqa: ANN202
        for k in range(1000):
            time.sleep(0.002)
            produced.append(k)
            yield ("long", 0, 0, k)

    def bad_job():  # noqa: ANN202
        time.sleep(0.05)
        raise RuntimeError("bad job")
        yield  # a generator, like the run's jobs

    with pytest.raises(RuntimeError, match="bad job"), TaskPool(2) as pool:
        for _ in pool.drive([long_job(), bad_job()], 1001):
            pass
    time.sleep(0.1)
    n = len(produced)
    time.sleep(0.1)
    assert n < 1000 and len(produced) == n  # it stopped, and stays stopped
