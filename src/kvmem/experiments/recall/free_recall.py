"""Free recall with a drifting temporal context as the key, fitted to Murdock (1962).

The science (docs/science.md 1.7 and 4 item 12). In the temporal context model (TCM, Howard &
Kahana 2002; CMR, Polyn, Norman & Kahana 2009) a slowly drifting *context* vector is the
key of a key-value memory and each studied word is the value: items studied close in time
get similar keys. The model (:mod:`kvmem.behavior.tcm`) has one-hot items ``f_i`` and a
context of ``L + 1`` units; two :class:`kvmem.MatrixMemory` hold the item -> context and
context -> item associations, ``M^FC = (1 - gamma) P + gamma sum_i f_i^T c_i`` and
``M^CF = alpha 1 + delta P^T + sum_i phi_i c_i^T f_i`` with the primacy gradient
``phi_i = phi_s exp(-phi_d (i - 1)) + 1``. Each study event moves the context,

    c_i = rho c_{i-1} + beta c_in,   c_in = f_i M^FC / |f_i M^FC|,
    rho = sqrt(1 + beta^2 ((c_{i-1} . c_in)^2 - 1)) - beta (c_{i-1} . c_in)   (|c_i| = 1),

with ``beta = B_enc``. At test the context first drifts back towards the start-of-list unit
(``B_start``); then at each output position ``n`` recall stops with probability
``p_stop(n) = x1 exp(x2 n)``, or else item ``j`` wins a Luce choice
``P(j) = (1 - p_stop) a_j^tau / sum_k a_k^tau`` over the not-yet-recalled items, with match
strengths ``a = c M^CF`` (the cue is the current context, the key). A recalled item
reinstates its study context through ``M^FC`` (drift with ``B_rec``), which makes the next
recall likely to be a neighbour, forward more than backward (the lag-CRP asymmetry: the
reinstated context holds the item's own pre-experimental unit, which was learned with the
*following* items).

Data. Murdock (1962), J. Exp. Psychol. 64, 482-488, list length 20 at 1 s per word: 1,200
lists (15 subjects x 80), trial by trial (bundled, :func:`kvmem.data.free_recall.
load_murdock1962`; the trial-level file of the public repository mkclairhong/CMRX_repfr).
Summary of the data, computed with psifr: recall probability at positions 1, 2, 3: 0.461,
0.275, 0.197; at 18, 19, 20: 0.718, 0.822, 0.950; lag-CRP at +1: 0.444, at -1: 0.145.

Protocol. The eleven parameters were fitted once by maximum likelihood to all 1,200 lists
(every recorded recall sequence, its stop included; intrusions and repeats dropped, as in
likelihood fits of CMR), with L-BFGS-B (autograd gradients) from 16 random starts (at most
500 iterations each), seed 0 (:mod:`kvmem.behavior.tcm_fit`), and saved in
``free_recall_params.json`` beside this module; a default run uses them, ``--set fit=true``
refits (minutes). The model then simulates ``n_seeds`` replicate experiments of 1,200 lists
each, and psifr (``merge_free_recall``, ``spc``, ``pnr``, ``lag_crp``) computes the serial
position curve, the probability of first recall and the lag-CRP (lags -5..+5) of model and
data alike (probabilities 0-1, means over replicates / subjects with 95 % t intervals). The
summary curves were never fitted: they, and recall at other list lengths (``--set
list_length=30`` or ``40``, Murdock's 30- and 40-word lists at 1 s per word, with the same
parameters unchanged), are predictions. For list lengths 30 and 40 the data series are empty
(those data are not bundled).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from kvmem.behavior import tcm
from kvmem.behavior.tcm_fit import fit_mle
from kvmem.data.free_recall import load_murdock1962, recall_matrix, recalls_to_table
from kvmem.experiments.base import (
    Claim,
    ProgressFactory,
    charge_to_most_grown,
    null_progress,
    single_thread,
)
from kvmem.metrics import mean_ci
from kvmem.results import Result

__all__ = [
    "NAME",
    "DESCRIPTION",
    "PARAMS_PATH",
    "PUBLISHED",
    "CLAIMS",
    "Config",
    "LAGS",
    "load_params",
    "psifr_curves",
    "quick",
    "estimate_bytes",
    "run",
    "plot",
]

NAME = "free-recall"
DESCRIPTION = (
    "Free recall with drifting context as the key (TCM/CMR on MatrixMemory), fitted by "
    "maximum likelihood to Murdock (1962) LL20; SPC, first recall and lag-CRP"
)

#: The fitted parameters (maximum likelihood on Murdock 1962 LL20) a default run uses.
PARAMS_PATH: Path = Path(__file__).resolve().parent / "free_recall_params.json"
LAGS: tuple[int, ...] = tuple(range(-5, 6))
_SOURCE = "Murdock (1962) LL20, 1 s/word, 1,200 lists; computed with psifr on the bundled data"


@dataclass(frozen=True)
class Config:
    """Free recall of ``list_length`` words (Murdock 1962, 1 s per word).

    ``n_seeds`` simulated replicate experiments of ``n_lists`` lists each; ``fit=True``
    refits the parameters to the LL20 data (``n_starts`` L-BFGS-B starts, at most
    ``max_iter`` iterations each) instead of loading the saved ones.
    """

    seed: int = 0
    list_length: Literal[20, 30, 40] = 20
    n_seeds: int = 10
    n_lists: int = 1200
    fit: bool = False
    n_starts: int = 16
    max_iter: int = 500

    def __post_init__(self) -> None:
        if self.list_length not in (20, 30, 40):
            raise ValueError(f"list_length: expected one of 20, 30, 40, got {self.list_length}")
        for name in ("n_seeds", "n_lists", "n_starts", "max_iter"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run, keyed by the size field grown most over the default.

    The simulated recalls go through psifr as a pandas long table: a study row per item and
    a recall row per output, ``~2 n_seeds n_lists list_length`` rows, each with an item
    name string and psifr's merged columns (measured: ~200-220 bytes a row at the peak for
    1,200 and 4,800 lists; 250 counted).
    ``check_memory`` refuses a config over this machine's memory.
    """
    c, d = config, Config()
    rows = 2 * c.n_seeds * c.n_lists * c.list_length
    grown = {"n_seeds": c.n_seeds / d.n_seeds, "n_lists": c.n_lists / d.n_lists}
    return charge_to_most_grown(grown, 250 * rows)


def quick(config: Config) -> Config:
    """Two replicates of 200 lists; a refit (if asked) with one short start."""
    return replace(config, n_seeds=2, n_lists=200, n_starts=1, max_iter=5)


def load_params(path: Path | None = None) -> dict[str, float]:
    """The saved fitted parameters ``{name: value}`` (:data:`PARAMS_PATH`)."""
    with open(PARAMS_PATH if path is None else path) as f:
        params = json.load(f)["params"]
    return {name: float(params[name]) for name in tcm.PARAM_NAMES}


def psifr_curves(raw: pd.DataFrame, list_length: int) -> dict[str, np.ndarray]:
    """Per-subject SPC ``[S, L]``, first-recall probability ``[S, L]`` and lag-CRP
    ``[S, 11]`` (lags -5..+5, NaN at 0) of a raw long table, all computed by psifr."""
    from psifr import fr

    df = fr.merge_free_recall(raw)
    spc = fr.spc(df).pivot(index="subject", columns="input", values="recall")
    pnr = fr.pnr(df)
    pfr = pnr[pnr["output"] == 1].pivot(index="subject", columns="input", values="prob")
    crp = fr.lag_crp(df).pivot(index="subject", columns="lag", values="prob")
    positions = np.arange(1, list_length + 1)
    return {
        "spc": spc.reindex(columns=positions).to_numpy(float),
        "pfr": pfr.reindex(columns=positions).fillna(0.0).to_numpy(float),
        "lag_crp": crp.reindex(columns=[float(k) for k in LAGS]).to_numpy(float),
    }


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Simulate the fitted (or refitted) model, analyse model and data with psifr."""
    with single_thread():
        return _run(config, progress)


def _rmse(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(x) & np.isfinite(y)
    return float(np.sqrt(np.mean((x[keep] - y[keep]) ** 2)))


def _run(config: Config, progress: ProgressFactory) -> Result:
    length = config.list_length
    raw = load_murdock1962()
    rec20, _ = recall_matrix(raw, 20)
    rec20_t = torch.as_tensor(rec20)
    metrics: dict[str, float] = {}
    if config.fit:
        fit = fit_mle(rec20_t, 20, config.n_starts, config.seed, config.max_iter, progress=progress)
        params = fit.params
        metrics["fit_n_evaluations"] = float(fit.n_evaluations)
    else:
        params = load_params()
    metrics["neg_log_likelihood"] = float(-tcm.log_likelihood(params, rec20_t, 20).sum())
    metrics.update({f"param_{k}": float(v) for k, v in params.items()})

    gen = torch.Generator().manual_seed(config.seed)
    sims = [
        tcm.simulate(params, length, config.n_lists, gen).numpy()
        for _ in progress(range(config.n_seeds), total=config.n_seeds, desc="replicates")
    ]
    subjects = np.repeat(np.arange(1, config.n_seeds + 1), config.n_lists)
    model = psifr_curves(recalls_to_table(np.concatenate(sims), subjects), length)

    series: dict[str, list] = {
        "serial_position": list(range(1, length + 1)),
        "lag": list(LAGS),
    }
    data = psifr_curves(raw, 20) if length == 20 else None  # LL30 / LL40 data not bundled
    for key in ("spc", "pfr", "lag_crp"):
        mean, ci = mean_ci(model[key])
        series[f"{key}_model"], series[f"{key}_model_ci"] = mean, ci
        mean, ci = mean_ci(data[key]) if data is not None else ([], [])
        series[f"{key}_data"], series[f"{key}_data_ci"] = mean, ci

    m = series
    metrics["recall_total_model"] = float(np.nanmean(m["spc_model"]))
    metrics["crp_forward_model"] = float(m["lag_crp_model"][LAGS.index(1)])
    metrics["crp_backward_model"] = float(m["lag_crp_model"][LAGS.index(-1)])
    if length == 20:
        metrics["rmse_spc"] = _rmse(m["spc_model"], m["spc_data"])
        metrics["rmse_pfr"] = _rmse(m["pfr_model"], m["pfr_data"])
        metrics["rmse_lag_crp"] = _rmse(m["lag_crp_model"], m["lag_crp_data"])
        for pos in (1, 2, 3, 18, 19, 20):
            metrics[f"spc_pos{pos}"] = float(m["spc_model"][pos - 1])
            metrics[f"spc_data_pos{pos}"] = float(m["spc_data"][pos - 1])
        metrics["lag_crp_plus1"] = metrics["crp_forward_model"]
        metrics["lag_crp_minus1"] = metrics["crp_backward_model"]
        metrics["lag_crp_data_plus1"] = float(m["lag_crp_data"][LAGS.index(1)])
        metrics["lag_crp_data_minus1"] = float(m["lag_crp_data"][LAGS.index(-1)])
    return Result(experiment=NAME, config={}, metrics=metrics, series=series)


def plot(result: Result) -> Figure:
    """Three panels, model (line, 95 % band) beside the data (points, 95 % CI over the 15
    subjects): serial position curve, probability of first recall, lag-CRP."""
    s = result.series
    length = len(s["serial_position"])
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        ("spc", "serial_position", "serial position", "recall probability", "A  serial position"),
        (
            "pfr",
            "serial_position",
            "serial position",
            "probability of first recall",
            "B  first recall",
        ),
        ("lag_crp", "lag", "lag", "conditional response probability", "C  lag-CRP"),
    )
    label = "TCM (fitted)" if length == 20 else f"TCM prediction, LL{length} (LL20 fit)"
    for ax, (key, xkey, xlabel, ylabel, title) in zip(axes, panels, strict=True):
        x = np.asarray(s[xkey], float)
        ym = np.asarray(s[f"{key}_model"], float)
        ci = np.asarray(s[f"{key}_model_ci"], float)
        for side in ((x < 0), (x > 0)) if key == "lag_crp" else (np.ones_like(x, bool),):
            ax.plot(
                x[side],
                ym[side],
                "-",
                color="tab:blue",
                lw=2,
                label=label if side[-1] or key != "lag_crp" else None,
            )
            ax.fill_between(x[side], ci[side, 0], ci[side, 1], color="tab:blue", alpha=0.25)
        if s[f"{key}_data"]:
            yd = np.asarray(s[f"{key}_data"], float)
            cd = np.asarray(s[f"{key}_data_ci"], float)
            ax.errorbar(
                x,
                yd,
                yerr=[yd - cd[:, 0], cd[:, 1] - yd],
                fmt="o",
                color="k",
                ms=4,
                capsize=2,
                label="Murdock (1962), 95 % CI",
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.0 if key != "pfr" else None)
        ax.set_title(title, loc="left", fontsize=10)
        ax.legend(fontsize=8, loc="upper center" if key != "lag_crp" else "upper right")
    fig.suptitle(
        f"Free recall, list length {length}: temporal context model (context as key) vs "
        "Murdock (1962), 1 s/word; analyses by psifr",
        fontsize=10,
    )
    return fig


def _is20(r: Result) -> bool:
    return len(r.series["serial_position"]) == 20


#: Model values beside the data's (psifr on the bundled Murdock 1962 LL20 lists).
PUBLISHED: dict[str, tuple[float, str, float]] = {
    "spc_pos1": (0.461, _SOURCE, 0.3),
    "spc_pos2": (0.275, _SOURCE, 0.3),
    "spc_pos3": (0.197, _SOURCE, 0.3),
    "spc_pos18": (0.718, _SOURCE, 0.3),
    "spc_pos19": (0.822, _SOURCE, 0.3),
    "spc_pos20": (0.950, _SOURCE, 0.3),
    "lag_crp_plus1": (0.444, _SOURCE, 0.3),
    "lag_crp_minus1": (0.145, _SOURCE, 0.3),
}


def _spc(r: Result) -> list[float]:
    return r.series["spc_model"]


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "recency: the model recalls the last list item better than any item of the middle "
        "third (as the data do)",
        lambda r: _spc(r)[-1] > max(_spc(r)[len(_spc(r)) // 3 : 2 * len(_spc(r)) // 3]),
    ),
    Claim(
        "primacy: the model recalls the first item better than the fourth (as the data do)",
        lambda r: _spc(r)[0] > _spc(r)[3],
    ),
    Claim(
        "recall usually starts at the end of the list: over half of first recalls come from "
        "the last four positions",
        lambda r: sum(r.series["pfr_model"][-4:]) > 0.5,
    ),
    Claim(
        "lag-CRP asymmetry: after recalling an item, its successor (lag +1) is more likely "
        "next than its predecessor (lag -1), and lag +1 is the most likely transition",
        lambda r: (
            r.metrics["crp_forward_model"] > r.metrics["crp_backward_model"]
            and r.metrics["crp_forward_model"]
            == max(v for v in r.series["lag_crp_model"] if v == v)
        ),
    ),
    Claim(
        "the maximum-likelihood fit reproduces the serial position curve within RMSE 0.1 "
        "(recall probability)",
        lambda r: r.metrics["rmse_spc"] < 0.1 if _is20(r) else None,
    ),
    Claim(
        "the maximum-likelihood fit reproduces the lag-CRP within RMSE 0.1",
        lambda r: r.metrics["rmse_lag_crp"] < 0.1 if _is20(r) else None,
    ),
)
