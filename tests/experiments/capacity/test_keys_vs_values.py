"""Keys versus values on MNIST (experiments.capacity.keys_vs_values; docs/science.md 4 item 4)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from kvmem import experiments
from kvmem.core.key_maps import CenteredKeys, ExpansionKWTAKeys, WhitenedKeys
from kvmem.core.similarity import dot, neg_manhattan
from kvmem.core.slot_memory import SlotMemory
from kvmem.data.bundled import load_mnist_test10k
from kvmem.data.patterns import add_gaussian_noise, drop_pixels, mask_bottom_half
from kvmem.experiments.capacity import keys_vs_values as kvv
from kvmem.metrics import squared_error_success
from kvmem.results import Result

CONTRACT_METHODS = (
    "auto_dot",
    "auto_euclidean",
    "auto_manhattan",
    "auto_dot_softmax",
    "auto_euclidean_softmax",
    "auto_manhattan_softmax",
    "kv_centered",
    "kv_whitened",
    "kv_expansion_kwta",
    "kv_learned",
)


@pytest.fixture(scope="module")
def quick_result() -> Result:
    return kvv.run(kvv.quick(kvv.Config()))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    x, _ = load_mnist_test10k()
    return torch.from_numpy(np.asarray(x, dtype=np.float32) / 255.0)


# ----------------------------------------------------------------------------- protocol


def test_module_follows_the_experiment_protocol() -> None:
    assert experiments.get("keys-vs-values") is kvv
    assert kvv.NAME == "keys-vs-values" and kvv.DESCRIPTION
    cfg = kvv.Config()
    assert isinstance(cfg.seed, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]
    q = kvv.quick(cfg)
    assert isinstance(q, kvv.Config) and q.n_stored[-1] < cfg.n_stored[-1]
    assert cfg.n_stored == (10, 20, 50, 100, 200, 500, 1000)
    for bad in (
        {"n_stored": (50, 20)},
        {"n_stored": ()},
        {"n_stored": (9000, 9800)},  # no room left for the experience images
        {"dropout_fraction": 1.5},
        {"beta_dot": 0.0},
        {"learned_fit": "stored", "n_stored": (1, 10)},
    ):
        with pytest.raises(ValueError):
            dataclasses.replace(cfg, **bad)


def test_quick_run_has_every_contract_series_and_metric(quick_result: Result) -> None:
    s, m = quick_result.series, quick_result.metrics
    ns = list(kvv.quick(kvv.Config()).n_stored)
    assert s["n_stored"] == ns
    for c in ("noise", "mask", "dropout"):
        for meth in CONTRACT_METHODS:
            for prefix in ("success", "identified", "std"):
                vals = s[f"{prefix}_{c}_{meth}"]
                assert len(vals) == len(ns)
                assert all(0.0 <= v <= 100.0 for v in vals), (prefix, c, meth, vals)
            # identified (strict) never exceeds success
            assert all(
                i <= v + 1e-9
                for i, v in zip(s[f"identified_{c}_{meth}"], s[f"success_{c}_{meth}"], strict=True)
            )
            assert m[f"success_{c}_{meth}_n{ns[-1]}"] == s[f"success_{c}_{meth}"][-1]
        assert m[f"best_method_{c}"] in CONTRACT_METHODS
        assert m[f"best_success_{c}"] == max(s[f"success_{c}_{x}"][-1] for x in CONTRACT_METHODS)
        assert m[f"best_kv_{c}"].startswith("kv_")
    assert len(s["baseline_mean_image"]) == len(ns)
    assert m["learned_loss_final"] < m["learned_loss_initial"]
    # result.json round trip, and the figure is drawn from the stored result alone
    loaded = Result.from_dict(json.loads(quick_result.to_json()))
    fig = kvv.plot(loaded)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6 + 12 + 1  # curves, example images, the legend panel


def test_learned_keys_can_be_fitted_on_the_stored_items() -> None:
    cfg = dataclasses.replace(
        kvv.quick(kvv.Config()),
        learned_fit="stored",
        n_stored=(10, 30),
        n_seeds=1,
        learned_steps=5,
        expansion_units=100,
    )
    r = kvv.run(cfg)
    assert len(r.series["success_mask_kv_learned"]) == 2
    assert r.metrics["learned_loss_initial"] > 0


def test_most_methods_succeed_on_noisy_cues_of_few_images(quick_result: Result) -> None:
    s = quick_result.series
    first = {meth: s[f"success_noise_{meth}"][0] for meth in CONTRACT_METHODS}  # N = 10
    for meth in ("auto_euclidean", "auto_manhattan", "kv_centered", "kv_whitened"):
        assert first[meth] == 100.0, first
    assert sum(v >= 90.0 for v in first.values()) >= 7, first


def test_experiment_reads_agree_with_slot_memory(quick_result: Result, images) -> None:
    """Recompute two curves point by point with SlotMemory (dual form, docs/science.md 1.2)."""
    cfg = kvv.quick(kvv.Config())
    n = 50
    i = cfg.n_stored.index(n)
    stored = []
    for k in range(cfg.n_seeds):
        perm = torch.randperm(10_000, generator=torch.Generator().manual_seed(cfg.seed + k))
        stored.append(images[perm[:n]])
    v = torch.stack(stored)  # [S, n, D]
    cue = mask_bottom_half(v)
    auto = SlotMemory("neg_euclidean", "max")
    auto.write(v, v)
    ok = squared_error_success(auto.read(cue), v, cfg.threshold)
    assert 100 * float(ok.double().mean()) == pytest.approx(
        quick_result.series["success_mask_auto_euclidean"][i], abs=1e-6
    )
    keys = CenteredKeys("self")
    kv = SlotMemory("dot", "max")
    kv.write(keys.fit_transform(v), v)
    ok = squared_error_success(kv.read(keys(cue)), v, cfg.threshold)
    assert 100 * float(ok.double().mean()) == pytest.approx(
        quick_result.series["success_mask_kv_centered"][i], abs=1e-6
    )


# ----------------------------------------------------------------------------- findings, N = 1000


SEEDS = (11, 12, 13)  # not the experiment's default seeds
N = 1000


@pytest.fixture(scope="module")
def big(images) -> dict[str, torch.Tensor]:
    """N = 1000 stored images and their three corrupted cues for three fresh seeds."""
    vs, cues = [], {"noise": [], "mask": [], "dropout": []}
    for seed in SEEDS:
        gen = torch.Generator().manual_seed(seed)
        v = images[torch.randperm(10_000, generator=gen)[:N]]
        vs.append(v)
        cues["noise"].append(add_gaussian_noise(v, 1.0, gen))
        cues["mask"].append(mask_bottom_half(v))
        cues["dropout"].append(drop_pixels(v, 0.5, gen))
    out = {"values": torch.stack(vs)}
    out.update({c: torch.stack(q) for c, q in cues.items()})
    return out


def _success(scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per-seed success (%) of max separation: the read is the best-scoring stored image."""
    read = torch.gather(values, 1, scores.argmax(-1).unsqueeze(-1).expand_as(values))
    return 100 * squared_error_success(read, values).double().mean(-1)


def _auto_best(big: dict[str, torch.Tensor], c: str) -> torch.Tensor:
    v, q = big["values"], big[c]
    d2 = (q * q).sum(-1, keepdim=True) + (v * v).sum(-1).unsqueeze(-2) - 2 * dot(q, v)
    per = [_success(dot(q, v), v), _success(-d2, v), _success(neg_manhattan(q, v), v)]
    return torch.stack(per).amax(0)  # best key = value memory, per seed


def _kv(big: dict[str, torch.Tensor], c: str, keymap) -> torch.Tensor:
    v = big["values"]
    keymap.fit(v)
    with torch.no_grad():
        return _success(dot(keymap(big[c]), keymap(v)), v)


@pytest.mark.parametrize("corruption,margin", [("mask", 15.0), ("dropout", 5.0)])
def test_separate_keys_beat_every_key_equals_value_memory_on_incomplete_cues(
    big, corruption: str, margin: float
) -> None:
    """Masked or dropped-out cues, N = 1000: decorrelated keys (whitened, centred) beat the
    best autoassociative memory (dot, Euclidean, Manhattan; max) on every seed."""
    auto = _auto_best(big, corruption)
    for keymap in (WhitenedKeys(shrinkage=1.0), CenteredKeys("self")):
        kv = _kv(big, corruption, keymap)
        assert bool((kv - auto >= margin).all()), (corruption, keymap, kv, auto)


def test_white_noise_favours_key_equals_value_over_pattern_separation(big) -> None:
    """The honest flip side: under Gaussian pixel noise the plain Euclidean memory is
    (near) perfect, and whitened or sparse expanded keys are clearly worse."""
    v, q = big["values"], big["noise"]
    d2 = (q * q).sum(-1, keepdim=True) + (v * v).sum(-1).unsqueeze(-2) - 2 * dot(q, v)
    euclid = _success(-d2, v)
    assert bool((euclid >= 99.0).all()), euclid
    white = _kv(big, "noise", WhitenedKeys(shrinkage=1.0))
    sparse = _kv(big, "noise", ExpansionKWTAKeys(2000, 0.1, seed=0))
    assert bool((euclid - white >= 15.0).all()), (euclid, white)
    assert bool((euclid - sparse >= 25.0).all()), (euclid, sparse)


# ------------------------------------------------------------- uncertainty, figure, progress


def test_curves_and_headlines_carry_95_percent_intervals(quick_result: Result) -> None:
    s, m = quick_result.series, quick_result.metrics
    ns = s["n_stored"]
    for c in ("noise", "mask", "dropout"):
        for meth in CONTRACT_METHODS:
            for prefix in ("success", "identified"):
                mean, ci = s[f"{prefix}_{c}_{meth}"], s[f"{prefix}_{c}_{meth}_ci"]
                assert len(ci) == len(ns)
                assert all(
                    lo - 1e-3 <= v <= hi + 1e-3 for v, (lo, hi) in zip(mean, ci, strict=True)
                )
            assert m[f"success_{c}_{meth}_n{ns[-1]}_ci"] == s[f"success_{c}_{meth}_ci"][-1]
        lo, hi = m[f"kv_minus_auto_{c}_n{ns[-1]}_ci"]
        assert lo <= m[f"kv_minus_auto_{c}_n{ns[-1]}"] <= hi
    # two seeds: the interval is mean +- t(0.975, 1) * sd / sqrt(2), t = 12.71
    succ = s["success_mask_auto_dot"][-1]
    sd = s["std_mask_auto_dot"][-1] * 2**0.5  # std_ is the population sd over 2 seeds
    lo, hi = s["success_mask_auto_dot_ci"][-1]
    assert hi - succ == pytest.approx(12.7062 * sd / 2**0.5, abs=1e-2)
    assert succ - lo == pytest.approx(hi - succ, abs=1e-3)


def test_legend_is_readable_and_inside_the_figure(quick_result: Result) -> None:
    """Issue 14: the legend was 8 pt text outside the plots (a figure legend at the right
    edge). It now sits in its own panel inside the figure, at 10 pt, with readable names."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = kvv.plot(quick_result)
    FigureCanvasAgg(fig).draw()
    assert not fig.legends
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    leg = legends[0]
    texts = [t.get_text() for t in leg.get_texts()]
    assert len(texts) == len(CONTRACT_METHODS) + 1
    assert all(t.get_fontsize() >= 10 for t in leg.get_texts())
    assert "separate key: learned projection" in texts and "kv_learned" not in texts
    box, page = leg.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1


def _recording_progress() -> tuple:
    """A progress factory that records its totals and every unit it passes on."""
    totals: list = []
    seen: list = []

    def progress(iterable, *, total=None, desc=""):  # noqa: ANN001, ANN202
        totals.append(total)
        for x in iterable:
            seen.append(x)
            yield x

    return progress, totals, seen


def test_progress_ticks_per_unit_of_work() -> None:
    """Issue 14: the run ticked 7 times (once per method), the longest step of the demo.
    It now ticks per unit of work: each job (a method, or dot and Euclidean together, on
    one corruption) at each N in score chunks, each refit, each fit of a fixed map."""
    cfg = dataclasses.replace(kvv.quick(kvv.Config()), n_seeds=1)
    progress, totals, seen = _recording_progress()
    kvv.run(cfg, progress=progress)
    assert totals == [len(seen)]
    jobs = {"auto_dot_euclidean", "auto_manhattan", *kvv.KV_METHODS}
    assert {u[0] for u in seen} == jobs
    steps = set(range(len(cfg.n_stored)))
    # score jobs: every corruption at every N
    for job in ("auto_dot_euclidean", "auto_manhattan", "kv_centered", "kv_expansion_kwta"):
        assert {(c, i) for j, c, i, _ in seen if j == job and i >= 0} == {
            (c, i) for c in range(3) for i in steps
        }
    # the whitened map is refitted at every N (all corruptions at once); fixed maps fit once
    assert sorted(i for j, c, i, _ in seen if j == "kv_whitened") == sorted(steps)
    for job in ("kv_centered", "kv_expansion_kwta", "kv_learned"):
        assert [u for u in seen if u[0] == job and u[2] == -1] == [(job, -1, -1, 0)]
    assert len(seen) == len(set(seen))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 1200), min_size=1, max_size=7, unique=True))
def test_chunk_plan_covers_each_score_once_in_small_pieces(sizes: list[int]) -> None:
    ns = tuple(sorted(sizes))
    plan = kvv._chunk_plan(ns)
    assert len(plan) == len(ns)
    seen = torch.zeros(ns[-1], ns[-1], dtype=torch.int64)
    for i, chunks in enumerate(plan):
        for r0, r1, c0, c1 in chunks:
            assert (r1 - r0) * (c1 - c0) <= max(kvv._CHUNK_CELLS, c1 - c0)
            seen[r0:r1, c0:c1] += 1
        # after step i the first ns[i] x ns[i] block is complete, nothing beyond it
        n = ns[i]
        assert bool((seen[:n, :n] == 1).all()) and int(seen.sum()) == n * n


@pytest.mark.parametrize(
    ("m", "k", "n"),
    [
        (1, 784, 10),
        (10, 784, 10),
        (25, 784, 2000),
        (12, 784, 4000),
        (50, 2000, 1000),
        (490, 784, 10),
        (1000, 64, 1000),
        (200, 200, 784),
    ],
)
def test_matmul_per_corruption_is_bitwise_the_broadcast_product(m: int, k: int, n: int) -> None:
    # The run's score and read products (_dot, the softmax read) must equal torch's
    # broadcast ``a @ b`` exactly, on the block shapes the protocol uses (small row blocks
    # included, where another arrangement of the same products changes the BLAS kernel).
    g = torch.Generator().manual_seed(m + k + n)
    a = torch.rand(3, 3, m, k, generator=g)
    items = torch.rand(3, n, k, generator=g)
    assert torch.equal(kvv._dot(a, items), dot(a, items))
    b = torch.rand(3, k, n, generator=g)[:, :, : max(1, n // 2)]  # a strided view, as V[:, :n]
    assert torch.equal(kvv._matmul_c(a, b), a @ b)


@pytest.mark.parametrize(("m", "n"), [(1, 10), (10, 10), (25, 2000), (12, 4000), (490, 10)])
def test_manhattan_by_coordinates_is_bitwise_cdist(m: int, n: int) -> None:
    # The coordinate-by-coordinate L1 must be neg_manhattan (cdist) exactly, on MNIST-like
    # items and noisy / zeroed queries of the protocol's block shapes.
    g = torch.Generator().manual_seed(m * n)
    items = torch.randint(0, 256, (3, n, 784), generator=g).float() / 255.0
    q = torch.rand(3, 3, m, 784, generator=g)
    q[0] += torch.randn(q[0].shape, generator=g)  # noise
    q[1, ..., 392:] = 0.0  # masked
    expected = neg_manhattan(q, items.expand(3, *items.shape))
    assert torch.equal(kvv._neg_manhattan(q, items), expected)


@settings(max_examples=20, deadline=None)
@given(
    m=st.integers(1, 40),
    n=st.integers(1, 60),
    d=st.integers(1, 50),
    c0=st.integers(0, 59),
)
def test_euclidean_from_cached_norms_is_the_plain_formula_bit_for_bit(
    m: int, n: int, d: int, c0: int
) -> None:
    # A row chunk scored with the squared norms of its column block computed once (and the
    # steps in place) must give the plain -sqrt(clamp(|q|^2 + |x|^2 - 2 q.x)) exactly.
    g = torch.Generator().manual_seed(m * 7919 + n * 31 + d)
    values = torch.rand(2, n, d, generator=g)
    q = torch.rand(1, 2, m, d, generator=g)
    q[..., : d // 2] = values[:, : min(m, n), : d // 2].mean(-2, keepdim=True)
    items = values[:, min(c0, n - 1) :]  # a column block's view, as V[:, c0:c1]
    qx = kvv._dot(q, items)
    q2 = (q * q).sum(-1, keepdim=True)
    x2 = (items * items).sum(-1).unsqueeze(-2)
    plain = -(q2 + x2 - 2.0 * qx).clamp_min(0.0).sqrt()
    assert torch.equal(kvv._neg_euclidean(q, items, qx), plain)
    assert torch.equal(kvv._neg_euclidean(q, items, qx, kvv._squared_norms(items)), plain)


def test_jobs_side_by_side_give_the_serial_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    # One worker (the jobs in turn, torch's Manhattan loop) and three workers (the jobs on
    # a thread pool, the compiled Manhattan kernel where numba is installed) agree bit for
    # bit, and every tick arrives.
    cfg = dataclasses.replace(kvv.quick(kvv.Config()), n_stored=(10, 60, 150))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = kvv.run(cfg)
        torch.set_num_threads(3)
        monkeypatch.setattr(kvv, "_KERNEL_MIN_TERMS", 0)
        progress, totals, ticks = _recording_progress()
        parallel = kvv.run(cfg, progress=progress)
        assert torch.get_num_threads() == 3  # restored after the run
    finally:
        torch.set_num_threads(before)
    assert serial.to_json() == parallel.to_json()
    assert totals == [len(ticks)] and len(set(ticks)) == len(ticks)


def test_a_failing_job_ends_the_run_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = dataclasses.replace(kvv.quick(kvv.Config()), n_seeds=1, n_stored=(10, 20))

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("kwta broke")

    monkeypatch.setattr(kvv.ExpansionKWTAKeys, "fit", broken)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with pytest.raises(RuntimeError, match="kwta broke"):
                kvv.run(cfg)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("n", "beta"), [(10, 1.0), (300, 10.0), (1200, 1.0)])
def test_lean_softmax_outcome_is_the_library_composition_bit_for_bit(n: int, beta: float) -> None:
    # _soft_outcome forms its squares and 2 r in place and writes |v|^2 - 2 r.v over the
    # product; its fractions must be those of the library's softmax, squared-error
    # criterion and retrieval accuracy exactly, on a score view like the run's
    from kvmem.core import separation as sep
    from kvmem.metrics import retrieval_accuracy

    g = torch.Generator().manual_seed(n)
    values = torch.randint(0, 256, (2, n + 5, 784), generator=g).float() / 255.0
    values *= torch.rand(values.shape, generator=g) < 0.3
    cues = values.unsqueeze(0) + 0.3 * torch.randn(1, *values.shape, generator=g)
    full = kvv._neg_euclidean(cues, values, kvv._dot(cues, values))
    scores, v = full[..., :n, :n], values[:, :n]  # strided views, as in the run
    got = kvv._soft_outcome(scores, beta, v, 60.0)
    read = sep.softmax(scores, beta) @ v
    ok = squared_error_success(read, v, 60.0)
    ident = ok & retrieval_accuracy(read, v)
    assert torch.equal(got.success, ok.double().mean(-1))
    assert torch.equal(got.identified, ident.double().mean(-1))


def test_pairwise_distances_are_the_plain_formula_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(3)
    v = torch.randint(0, 256, (2, 500, 784), generator=g).float() / 255.0
    v64 = v.double()
    sq = (v64 * v64).sum(-1)
    plain = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * v64 @ v64.transpose(-1, -2)).clamp_min(0)
    plain = plain * (1.0 - torch.eye(500, dtype=torch.float64))
    assert torch.equal(kvv._pairwise_d2(v), plain)
