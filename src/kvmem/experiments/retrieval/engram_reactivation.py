"""Amnesia with the engram intact: natural cues fail, direct reactivation works.

(docs/science.md 4.9.)

**The phenomenon.** Ryan, Roy, Pignatelli, Arons & Tonegawa (2015, *Science* 348: 1007-1013)
tagged the dentate-gyrus cells active during contextual fear conditioning with
channelrhodopsin, then induced retrograde amnesia with the protein-synthesis inhibitor
anisomycin right after training. Amnesic mice froze much less than controls when returned
to the conditioning context (natural recall failed), yet optogenetic activation of the tagged
engram cells in a neutral context made them freeze as much as controls: the memory was
stored but not accessible. Their engram cells lacked the consolidation-dependent increase in
synaptic strength and spine density, while their specific connectivity was retained. Roy,
Muralidhar, Smith & Tonegawa (2017, *PNAS* 114: E9972-E9979) showed this "silent engram"
persists for at least 8 days and that, in their abstract's words, "optogenetic memory recall
under amnesia is stimulation strength-dependent, with low-power stimulation eliciting only
partial recall". The published freezing percentages were **not transcribed** in this build
(their figure values are not in this repository): the figure marks the published *pattern*
(from the two abstracts) and the claims test it qualitatively.

**Protocol (per simulated animal).** A slot memory holds the conditioned memory (the
tagged engram: key ``k_e`` = the conditioning context's code, value ``v_fear``) among
``n_memories`` other memories (keys: other contexts; values: neutral outcomes), all random
unit vectors (``d_key``; values one-hot). Amnesia (anisomycin after training) disrupts the
consolidation of the engram's *key* synapses: its stored key is scaled by
``key_strength_amnesic`` (its synapses scaled down), the value untouched. Each animal is
tested for ``n_trials`` test epochs (the fraction of epochs with recall plays the part of
freezing time):

- natural recall: cue = the conditioning context plus Gaussian noise (sd ``cue_noise`` per
  unit), read ``v_hat = softmax(beta q K^T) V`` (docs/science.md 1.2);
- direct reactivation: in a neutral context (a fresh random cue plus the same noise), light
  drives the tagged slot directly, adding ``stimulation * e * g`` to its score: ``e`` is the
  animal's light efficiency (lognormal, sd ``light_efficiency_sd`` in log units: the fraction
  of tagged cells the light reaches), ``g`` the engram's key strength (1 in controls). The
  light depolarises the tagged cells, but their pull on the retrieval competition goes
  through their own synapses, which the amnesia left unpotentiated (Ryan et al. measured the
  lower synaptic strength) - so an amnesic engram needs more light for the same pull.

Recall (an epoch with freezing) is ``v_hat . v_fear >= recall_threshold``.

**Models:**

- ``kv``: the key-value memory above: amnesia weakens the key only, so the content is intact
  and whatever reaches the engram slot strongly enough retrieves it in full.
- ``storage`` (the contrast: the standard consolidation view that protein-synthesis
  inhibition stops the memory being *stored*; equivalently a single-representation trace in
  which the synapses that carry access also carry content): the same amnesic scaling is
  applied to the engram's key *and* value. Natural recall fails as in ``kv``; no stimulation
  strength can bring back content that was never consolidated.

**Free parameters, fixed once** (set a priori, not fitted): ``d_key = 64``,
``n_memories = 50``, ``beta = 8``, ``cue_noise = 0.25`` (so control natural recall is
high but not at ceiling, about 85 %), ``key_strength_amnesic = 0.3``,
``light_efficiency_sd = 0.25``, ``recall_threshold = 0.5``; 100 animals per group, 20 test
epochs each; stimulation strengths 0-6 in units of a perfect key match (0 = light off).
Recall levels, the stimulation needed and the dose-response shape are predictions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from matplotlib.figure import Figure

from kvmem.behavior.paired_associates import unit_vectors
from kvmem.core.slot_memory import SlotMemory
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
    "Config",
    "MODELS",
    "PUBLISHED",
    "CLAIMS",
    "quick",
    "estimate_bytes",
    "run",
    "plot",
]

NAME = "engram-reactivation"
DESCRIPTION = (
    "Amnesia with the engram intact (Ryan et al. 2015; Roy et al. 2017): a weakened key "
    "blocks natural recall; direct reactivation of the engram slot restores it, dose-dependently"
)

MODELS = ("kv", "storage")


@dataclass(frozen=True)
class Config:
    """Engram tagging, amnesia by a weakened key, natural and optogenetic recall tests.

    ``n_animals`` per group (control and amnesic share each animal's memories: paired),
    ``n_trials`` test epochs per test, ``n_memories`` other stored memories, keys of
    ``d_key`` dimensions; ``beta`` the softmax inverse temperature; ``cue_noise`` the sd of
    the cue noise per unit; ``key_strength_amnesic`` the scaling of the engram's key by the
    amnesia; ``light_efficiency_sd`` the between-animal sd of log light efficiency;
    ``recall_threshold`` the fear read-out needed for an epoch to count as recall;
    ``stimulation`` the light strengths (0 = light off), in units of a perfect key match.
    """

    seed: int = 0
    n_animals: int = 100
    n_trials: int = 20
    n_memories: int = 50
    d_key: int = 64
    beta: float = 8.0
    cue_noise: float = 0.25
    key_strength_amnesic: float = 0.3
    light_efficiency_sd: float = 0.25
    recall_threshold: float = 0.5
    stimulation: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

    def __post_init__(self) -> None:
        for name in ("n_animals", "n_trials", "n_memories", "d_key"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta: expected a finite value > 0, got {self.beta}")
        for name in ("cue_noise", "light_efficiency_sd"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a finite value >= 0, got {v}")
        if not 0.0 <= self.key_strength_amnesic <= 1.0:
            raise ValueError(
                f"key_strength_amnesic: expected a value in [0, 1], got {self.key_strength_amnesic}"
            )
        if not 0.0 < self.recall_threshold < 1.0:
            raise ValueError(
                f"recall_threshold: expected a value in (0, 1), got {self.recall_threshold}"
            )
        st = self.stimulation
        if (
            len(st) < 2
            or st[0] != 0.0
            or list(st) != sorted(set(st))
            or not all(math.isfinite(v) for v in st)
        ):
            raise ValueError(
                f"stimulation: expected strictly increasing finite values starting at 0, got {st}"
            )


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run (float64), keyed by the size field grown most over the default.

    Per animal, with ``N = n_memories + 1`` slots and ``G`` stimulation strengths: the
    one-hot values ``[N, N]`` (copied per group and model), the scores and weights of a
    stimulated read ``[G, n_trials, N]``, the keys ``[N, d_key]`` and cues
    ``[n_trials, d_key]``. ``check_memory`` refuses a config over this machine's memory.
    """
    c, d = config, Config()
    n, g = c.n_memories + 1, len(c.stimulation)
    per_animal = 4 * n * n + 3 * g * c.n_trials * n + 4 * n * c.d_key + 4 * c.n_trials * c.d_key
    grown = {
        "n_animals": c.n_animals / d.n_animals,
        "n_memories": (c.n_memories / d.n_memories) ** 2,
        "n_trials": c.n_trials / d.n_trials,
        "d_key": c.d_key / d.d_key,
        "stimulation": len(c.stimulation) / len(d.stimulation),
    }
    return charge_to_most_grown(grown, 8 * c.n_animals * per_animal)


def quick(config: Config) -> Config:
    """20 animals, 10 epochs, four stimulation strengths."""
    return replace(config, n_animals=20, n_trials=10, stimulation=(0.0, 0.5, 2.0, 6.0))


# ----------------------------------------------------------------------------- simulation


def _recall(
    c: Config,
    keys: torch.Tensor,
    values: torch.Tensor,
    cues: torch.Tensor,
    drive: torch.Tensor,
) -> torch.Tensor:
    """Fraction (%) of epochs recalled per animal, ``[A, ...]``.

    ``keys [A, N, d]`` (slot 0 = the engram), ``values [A, N, N]`` (one-hot; slot 0's
    value is ``v_fear`` = unit 0, possibly scaled), ``cues [A, T, d]``, ``drive [A, G]``: the
    light drive added to the engram's score for each of ``G`` stimulation strengths. The
    read is ``softmax(beta (q K^T + drive e_0)) V``; recall is ``v_hat[0] >= threshold``.
    """
    mem = SlotMemory("dot", "identity")  # scores only; the light adds to one score
    mem.write(keys, values)
    scores = mem.scores(cues)  # [A, T, N]
    s = scores.unsqueeze(1).expand(-1, drive.shape[1], -1, -1).clone()  # [A, G, T, N]
    s[..., 0] = s[..., 0] + drive[:, :, None]
    w = torch.softmax(c.beta * s, dim=-1)
    fear = w @ mem.values[:, None, :, :1]  # [A, G, T, 1]: read-out on v_fear
    return 100.0 * (fear[..., 0] >= c.recall_threshold).double().mean(-1)  # [A, G]


def _simulate(c: Config, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Natural and stimulated recall (% epochs) per animal for every model and group."""
    a, n, d = c.n_animals, c.n_memories + 1, c.d_key
    key_codes = unit_vectors((a, n), d, gen)  # slot 0: the conditioning context (engram)
    values = torch.eye(n, dtype=torch.float64).expand(a, n, n)
    noise_nat = c.cue_noise * torch.randn(a, c.n_trials, d, generator=gen, dtype=torch.float64)
    noise_stim = c.cue_noise * torch.randn(a, c.n_trials, d, generator=gen, dtype=torch.float64)
    natural_cue = key_codes[:, :1] + noise_nat  # context A, every epoch
    neutral_cue = unit_vectors((a, 1), d, gen) + noise_stim  # context B
    efficiency = torch.exp(
        c.light_efficiency_sd * torch.randn(a, 1, generator=gen, dtype=torch.float64)
    )
    stim = torch.tensor(c.stimulation, dtype=torch.float64)[None, :] * efficiency  # [A, G]
    no_light = torch.zeros(a, 1, dtype=torch.float64)
    out: dict[str, torch.Tensor] = {}
    for group, g in (("control", 1.0), ("amnesic", c.key_strength_amnesic)):
        keys = key_codes.clone()
        keys[:, 0] = g * keys[:, 0]  # the amnesia scales the engram's key synapses
        for model in MODELS:
            vals = values.clone()
            if model == "storage":
                vals[:, 0] = g * vals[:, 0]  # ... and, for `storage`, its content too
            out[f"natural_{group}_{model}"] = _recall(c, keys, vals, natural_cue, no_light)[:, 0]
            out[f"stimulated_{group}_{model}"] = _recall(c, keys, vals, neutral_cue, stim * g)
    return out


def _half_max_stimulation(stim: list[float], curve: list[float]) -> float:
    """The stimulation at which a recall curve first reaches 50 % (linear interpolation)."""
    y = np.asarray(curve)
    if y[0] >= 50.0:
        return float(stim[0])
    above = np.nonzero(y >= 50.0)[0]
    if above.size == 0:
        return math.nan
    i = int(above[0])
    x0, x1, y0, y1 = stim[i - 1], stim[i], y[i - 1], y[i]
    return float(x0 + (50.0 - y0) * (x1 - x0) / (y1 - y0))


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Simulate both groups and models on the same animals; recall with 95 % intervals."""
    with single_thread():
        return _run(config, progress)


def _run(config: Config, progress: ProgressFactory) -> Result:
    c = config
    out = _simulate(c, torch.Generator().manual_seed(c.seed))
    stim = [float(v) for v in c.stimulation]
    series: dict[str, list] = {"stimulation": stim}
    metrics: dict[str, float] = {"n_animals": float(c.n_animals)}
    for model in progress(MODELS, total=len(MODELS), desc="models"):
        sfx = "" if model == "kv" else f"_{model}"  # the kv model carries the contract names
        for group in ("control", "amnesic"):
            mean, ci = mean_ci(out[f"stimulated_{group}_{model}"])
            series[f"recall_stimulated_{group}{sfx}"] = mean
            series[f"recall_stimulated_{group}{sfx}_ci"] = ci
            m, m_ci = mean_ci(out[f"natural_{group}_{model}"])
            metrics[f"recall_natural_{group}{sfx}"] = m
            metrics[f"recall_natural_{group}{sfx}_ci"] = m_ci
            curve = series[f"recall_stimulated_{group}{sfx}"]
            metrics[f"recall_stimulated_{group}_max{sfx}"] = float(max(curve))
            metrics[f"light_off_{group}{sfx}"] = float(curve[0])
            metrics[f"half_max_stimulation_{group}{sfx}"] = _half_max_stimulation(stim, curve)
    return Result(experiment=NAME, config=asdict(c), metrics=metrics, series=series)


# ----------------------------------------------------------------------------- figure

_STYLE = {
    ("control", ""): ("tab:blue", "-o", "control (kv and storage identical)"),
    ("amnesic", ""): ("tab:red", "-o", "amnesic, kv: key weakened, value intact"),
    ("amnesic", "_storage"): ("tab:gray", "--s", "amnesic, storage: key and value weakened"),
}


def plot(result: Result) -> Figure:
    """(A) natural recall by group and model, (B) recall against stimulation strength,
    each beside the published pattern."""
    s, m = result.series, result.metrics
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_a, ax_b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    bars = [
        ("control", "", "tab:blue"),
        ("amnesic", "", "tab:red"),
        ("amnesic", "_storage", "tab:gray"),
    ]
    for i, (group, sfx, col) in enumerate(bars):
        val = m[f"recall_natural_{group}{sfx}"]
        lo, hi = m[f"recall_natural_{group}{sfx}_ci"]
        ax_a.bar(i, val, color=col, yerr=[[val - lo], [hi - val]], capsize=4)
        ax_a.annotate(f"{val:.0f} %", xy=(i, hi + 1.5), ha="center", fontsize=8)
    ax_a.set_xticks(range(3), ["control", "amnesic\nkv", "amnesic\nstorage"])
    ax_a.set_ylabel("recall (% of test epochs)")
    ax_a.set_ylim(0, 105)
    ax_a.annotate(
        "mice (Ryan et al. 2015): amnesic\nfreezing far below control in\nthe training context",
        xy=(0.97, 0.97),
        xycoords="axes fraction",
        ha="right",
        va="top",
        fontsize=7,
    )
    ax_a.set_title("A  natural cue (training context)", loc="left", fontsize=10)
    x = s["stimulation"]
    for (group, sfx), (col, style, label) in _STYLE.items():
        key = f"recall_stimulated_{group}{sfx}"
        ax_b.plot(x, s[key], style, color=col, ms=4, label=label)
        ax_b.fill_between(
            x, [p[0] for p in s[f"{key}_ci"]], [p[1] for p in s[f"{key}_ci"]],
            color=col, alpha=0.2, lw=0,
        )  # fmt: skip
    top = m["recall_stimulated_control_max"]
    ax_b.axhline(
        top,
        color="k",
        lw=2.5,
        alpha=0.35,
        label="mice: amnesic light-induced recall = control\n"
        "at full power (Ryan 2015; Roy 2017 'full-fledged')",
    )
    ax_b.annotate(
        "mice (Roy et al. 2017): low-power\nlight gives only partial recall\nunder amnesia",
        xy=(x[len(x) // 3], 8),
        fontsize=7,
    )
    ax_b.set_xlabel("stimulation strength (units of a perfect key match; 0 = light off)")
    ax_b.set_ylim(-3, 105)
    ax_b.set_title("B  direct reactivation of the tagged engram slot", loc="left", fontsize=10)
    ax_b.legend(fontsize=7, loc="center right")
    for ax in (ax_a, ax_b):
        ax.grid(alpha=0.3)
    return fig


PUBLISHED: dict[str, tuple[float, str, float]] = {}


def _enough(r: Result) -> bool:
    if r.metrics["n_animals"] < 50:
        raise KeyError("n_animals")  # too few animals for the claims (a --quick run)
    return True


def _monotone(curve: list[float], slack: float = 3.0) -> bool:
    return all(b >= a - slack for a, b in zip(curve, curve[1:], strict=False))


#: Claims of docs/science.md 4.9 (Ryan et al. 2015; Roy et al. 2017), checked on every run.
#: The metric the report's summary shows first.
HEADLINE = "recall_stimulated_amnesic_max"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "natural recall fails after amnesia (control >= 70 %, amnesic <= 30 % of control)",
        lambda r: (
            _enough(r)
            and r.metrics["recall_natural_control"] >= 70.0
            and r.metrics["recall_natural_amnesic"] <= 0.3 * r.metrics["recall_natural_control"]
        ),
    ),
    Claim(
        "direct reactivation of the engram slot brings amnesic recall back to control levels "
        "(max within 10 points of the control natural and stimulated maxima)",
        lambda r: (
            _enough(r)
            and r.metrics["recall_stimulated_amnesic_max"]
            >= r.metrics["recall_natural_control"] - 10.0
            and r.metrics["recall_stimulated_amnesic_max"]
            >= r.metrics["recall_stimulated_control_max"] - 10.0
        ),
    ),
    Claim(
        "amnesic recall grows with stimulation strength (non-decreasing within 3 points, "
        "from <= 10 % with the light off to its maximum)",
        lambda r: (
            _monotone(r.series["recall_stimulated_amnesic"])
            and r.series["recall_stimulated_amnesic"][0] <= 10.0
        ),
    ),
    Claim(
        "low-power stimulation gives only partial recall under amnesia (Roy et al. 2017): "
        "the amnesic engram needs over twice the control's stimulation for 50 % recall",
        lambda r: (
            _enough(r)
            and r.metrics["half_max_stimulation_amnesic"]
            > 2.0 * r.metrics["half_max_stimulation_control"]
        ),
    ),
    Claim(
        "light off in a neutral context recalls nothing (<= 10 % in both groups)",
        lambda r: r.metrics["light_off_control"] <= 10.0 and r.metrics["light_off_amnesic"] <= 10.0,
    ),
    Claim(
        "storage contrast: if the amnesia had weakened the content too, no stimulation would "
        "restore recall (amnesic max < 10 %)",
        lambda r: _enough(r) and r.metrics["recall_stimulated_amnesic_max_storage"] < 10.0,
    ),
)
