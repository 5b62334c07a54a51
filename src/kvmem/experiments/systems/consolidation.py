"""Systems consolidation and the Ribot gradient: a hippocampal index over cortical values
(docs/science.md 4 item 10; Kim & Fanselow 1992; Wiltgen & Silva 2007).

**The phenomenon.** Rats given context-shock pairings and an electrolytic lesion of the
dorsal hippocampus 1 day later froze very little when put back in the context; lesions
made 7, 14 or 28 days after training largely spared context fear, and sham-lesioned rats
kept it at every delay (Kim & Fanselow 1992, Science 256:675; the within-subject replication
of Anagnostaras, Maren & Fanselow 1999, J. Neurosci. 19:1106, states it in its abstract as
"a severe deficit in contextual fear if made 1 d, but not 28 d, after fear
conditioning"): a temporally graded retrograde amnesia, Ribot's law. Over the same weeks
the memory becomes less specific: mice trained with one shock and tested 1, 14, 28 or 36
days later in the training context or a novel one froze more in the training context at
first, but fear of the novel context grew until they froze an equivalent amount in both
(Wiltgen & Silva 2007, Learn. Mem. 14:313, abstract). **The published values here are the
pattern as the papers' texts state it, not numbers read from their figures** (the figures
were not available to this module's author): the figure draws them as a labelled schematic
and the claims test the pattern, not a fit.

**Model** (:class:`kvmem.bio.Consolidation`, all equations and parameter sources there).
The hippocampus is a fast slot memory whose keys are pattern-separated codes of the cortical
context cue (random expansion + k-winners-take-all) and whose values reinstate the cortical
pattern; one-shot writes, random-slot overwriting by later experiences and a slow decay.
The cortex is a delta-rule ``MatrixMemory`` from cue to value trained only by nightly
replay of the hippocampal traces. Recall sums both routes; a lesion removes the
hippocampal one (and all later replay).

**Protocol.** ``n_subjects`` simulated animals. Day 0: the conditioning experience (a
random unit context cue ``c``, 256-d, and the shock value ``v``, 64-d), then
``experiences_per_day`` other experiences (random cues and values) every day, and a night
of replay between days. Each morning ``d`` the animal is tested with the context cue
(recall = the share of the shock value retrieved, in %, a stand-in for % freezing) twice: as
it is (sham) and with the hippocampal route removed (a lesion made that morning; the
lesioned copy would learn nothing more, so with no cortical decay, the default, testing it
right away equals testing it after recovery). Every lesion day and the sham are the same
simulated animals (a within-subject design, as Anagnostaras et al. 1999). Generalisation: the
same animals are also tested with a similar, never-experienced context ``c'`` (cosine
``similar_cosine`` with ``c``); ``generalization_by_day`` is the fear of ``c'`` as a
percentage of the fear of ``c`` (0 = perfectly specific, 100 = equal fear in both, Wiltgen &
Silva's end point).

**The contrast the key-value reading predicts** (``architecture="content"``, the same
patterns, the same tests): the hippocampus stores the content itself, retrieves it by raw
similarity to the cue and offers no separate cortical values for replay to train. It gives
no gradient (a lesion abolishes the memory at every delay), its sham animals forget as the
hippocampal traces are overwritten, and its generalisation does not change with time.

**Parameters** are the model's defaults (fixed once, a priori, as stated in
:mod:`kvmem.bio.consolidation`; only the cortical time constant, about a week, was chosen
with the Kim & Fanselow time scale in mind). ``experiences_per_day = 3`` and
``similar_cosine = 0.6`` are chosen. Everything else (the gradient's shape, the sham level,
the growth of generalisation, the content model's curves) is an output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from matplotlib.figure import Figure

from kvmem.bio.consolidation import (
    ARCHITECTURES,
    Consolidation,
    recall_score,
    similar_patterns,
    unit_patterns,
)
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
    "CLAIMS",
    "PUBLISHED_PATTERN",
    "quick",
    "run",
    "plot",
    "estimate_bytes",
]

NAME = "consolidation"
DESCRIPTION = (
    "Systems consolidation (Kim & Fanselow 1992): a hippocampal key index over cortical "
    "values, replayed into cortex, gives the Ribot gradient; content in the hippocampus does not"
)

#: The published pattern, as the papers' texts state it (not read from figures).
PUBLISHED_PATTERN: dict[str, str] = {
    "lesion": "Kim & Fanselow 1992 (and Anagnostaras et al. 1999, abstract): a dorsal "
    "hippocampal lesion 1 d after conditioning abolishes context fear; lesions at 7-28 d "
    "largely spare it; sham animals keep it",
    "generalization": "Wiltgen & Silva 2007 (abstract): tested 1, 14, 28 or 36 d after "
    "training, mice first freeze more in the training context than in a novel one; fear of "
    "the novel context grows until it equals fear of the training context",
}


@dataclass(frozen=True)
class Config:
    """Kim & Fanselow's lesion delays on simulated animals (see the module docstring).

    ``lesion_days``: the mornings on which lesions are made (and sham tested);
    ``generalization_days``: test days of the similar context (Wiltgen & Silva's 1-36 d);
    ``experiences_per_day`` other experiences a day; ``similar_cosine``: the similar
    context's cosine with the trained one. The remaining fields are the model's
    (:class:`kvmem.bio.Consolidation`; defaults are its defaults).
    """

    seed: int = 0
    n_subjects: int = 50
    lesion_days: tuple[int, ...] = (1, 7, 14, 28)
    generalization_days: tuple[int, ...] = (1, 7, 14, 28, 36)
    experiences_per_day: int = 3
    similar_cosine: float = 0.6
    d_cortex: int = 256
    d_value: int = 64
    n_slots: int = 200
    n_units: int = 2000
    active_fraction: float = 0.05
    match_threshold: float = 0.5
    hippocampal_decay: float = 0.01
    replay_prob: float = 0.5
    cortical_lr: float = 0.3
    cortical_decay: float = 0.0
    architectures: tuple[str, ...] = ARCHITECTURES

    def __post_init__(self) -> None:
        for name in ("n_subjects", "experiences_per_day", "d_cortex", "d_value", "n_slots"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.n_units < 1:
            raise ValueError(f"n_units: expected an integer >= 1, got {self.n_units}")
        for name in ("lesion_days", "generalization_days"):
            days = getattr(self, name)
            if not days or days[0] < 1 or list(days) != sorted(set(days)):
                raise ValueError(f"{name}: expected strictly increasing days >= 1, got {days}")
        if not -1.0 < self.similar_cosine < 1.0:
            raise ValueError(
                f"similar_cosine: expected a value in (-1, 1), got {self.similar_cosine}"
            )
        if not 0.0 < self.active_fraction <= 1.0:
            raise ValueError(
                f"active_fraction: expected a value in (0, 1], got {self.active_fraction}"
            )
        for name in ("match_threshold", "replay_prob", "cortical_lr", "cortical_decay"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name}: expected a value in [0, 1], got {v}")
        if not (math.isfinite(self.hippocampal_decay) and self.hippocampal_decay >= 0):
            raise ValueError(
                f"hippocampal_decay: expected a value >= 0, got {self.hippocampal_decay}"
            )
        if not self.architectures or any(a not in ARCHITECTURES for a in self.architectures):
            raise ValueError(
                f"architectures: expected names from {ARCHITECTURES}, got {self.architectures}"
            )
        if self.architectures[0] != "key-value":
            raise ValueError(
                f"architectures: the first must be 'key-value' (the model under test), got "
                f"{self.architectures}"
            )


def quick(config: Config) -> Config:
    """10 subjects, lesions (and generalisation tests) at 1 and 7 days."""
    return replace(
        config,
        n_subjects=10,
        lesion_days=(1, 7),
        generalization_days=(1, 7),
    )


def estimate_bytes(config: Config) -> dict[str, int]:
    """The hippocampal keys (float32), stored patterns and cortex (float64) of one cohort."""
    c = config
    per_subject = 4 * c.n_slots * c.n_units + 8 * (c.n_slots + c.d_cortex) * (
        c.d_cortex + c.d_value
    )
    d = Config()  # key the total by the size field grown most over the default
    grown = {
        "n_subjects": c.n_subjects / d.n_subjects,
        "n_slots": c.n_slots / d.n_slots,
        "n_units": c.n_units / d.n_units,
        "d_cortex": (c.d_cortex / d.d_cortex) ** 2,
        "d_value": c.d_value / d.d_value,
    }
    return charge_to_most_grown(grown, 2 * c.n_subjects * per_subject)  # x2: a recall


Arch = Literal["key-value", "content"]


def _simulate(
    config: Config, arch: Arch, patterns: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """One cohort of one architecture: recall scores (%) per subject and test day ``[S, D]``
    (days 1..D; sham, lesion, the similar context) and the generalisation index."""
    c = config
    model = Consolidation(
        c.n_subjects,
        d_cortex=c.d_cortex,
        d_value=c.d_value,
        n_slots=c.n_slots,
        n_units=c.n_units,
        active_fraction=c.active_fraction,
        match_threshold=c.match_threshold,
        hippocampal_decay=c.hippocampal_decay,
        replay_prob=c.replay_prob,
        cortical_lr=c.cortical_lr,
        cortical_decay=c.cortical_decay,
        architecture=arch,
        key_seed=c.seed,
        generator=torch.Generator().manual_seed(c.seed + 1),
    )
    cue, value, similar = patterns["cue"], patterns["value"], patterns["similar"]
    probes = torch.cat([cue, similar], dim=1)  # [S, 2, d_cortex]
    n_days = max(c.lesion_days[-1], c.generalization_days[-1])
    k = c.experiences_per_day
    sham, lesion = [], []
    model.experience(cue, value)  # day 0: conditioning, then the day's other experiences
    model.experience(patterns["cues"][:, :k], patterns["values"][:, :k])
    for day in range(1, n_days + 1):  # a loop over days; every day is batched over subjects
        model.sleep()
        reads = model.recall(probes)  # a lesion leaves the cortical route alone
        sham.append(recall_score(reads.combined, value))  # [S, 2]
        lesion.append(recall_score(reads.cortical, value))
        model.experience(
            patterns["cues"][:, day * k : (day + 1) * k],
            patterns["values"][:, day * k : (day + 1) * k],
        )
    sham_t, lesion_t = torch.stack(sham, 1), torch.stack(lesion, 1)  # [S, D, 2]
    trained = sham_t[..., 0]
    # fear of the similar context as % of fear of the trained one (NaN if no fear at all)
    gen = torch.where(trained > 0, 100.0 * sham_t[..., 1] / trained, math.nan)
    return {
        "sham": trained,
        "lesion": lesion_t[..., 0],
        "similar": sham_t[..., 1],
        "generalization": gen,
    }


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Simulate each architecture on the same patterns; lesion curves with 95 % intervals."""
    with single_thread():
        return _run(config, progress)


def _run(config: Config, progress: ProgressFactory) -> Result:
    c = config
    gen = torch.Generator().manual_seed(c.seed)
    s, n_days = c.n_subjects, max(c.lesion_days[-1], c.generalization_days[-1])
    n_other = (n_days + 1) * c.experiences_per_day
    cue = unit_patterns((s, 1, c.d_cortex), gen)
    patterns = {
        "cue": cue,
        "value": unit_patterns((s, 1, c.d_value), gen),
        "similar": similar_patterns(cue, c.similar_cosine, gen),
        "cues": unit_patterns((s, n_other, c.d_cortex), gen),
        "values": unit_patterns((s, n_other, c.d_value), gen),
    }
    lesion_idx = [d - 1 for d in c.lesion_days]
    gen_idx = [d - 1 for d in c.generalization_days]
    series: dict[str, list] = {
        "lesion_day": list(c.lesion_days),
        "generalization_day": list(c.generalization_days),
        "day": list(range(1, n_days + 1)),
    }
    metrics: dict[str, float] = {}
    for arch in progress(c.architectures, total=len(c.architectures), desc="architectures"):
        out = _simulate(c, arch, patterns)  # type: ignore[arg-type]
        sfx = "" if arch == "key-value" else "_content"
        for key, label in (("lesion", "recall_lesion"), ("sham", "recall_sham")):
            mean, ci = mean_ci(out[key][:, lesion_idx])
            series[f"{label}{sfx}"], series[f"{label}{sfx}_ci"] = mean, ci
            mean, ci = mean_ci(out[key])
            series[f"{label}_by_day{sfx}"], series[f"{label}_by_day{sfx}_ci"] = mean, ci
        for key, label in (
            ("generalization", "generalization_by_day"),
            ("similar", "recall_similar_by_day"),
        ):
            mean, ci = mean_ci(out[key][:, gen_idx])
            series[f"{label}{sfx}"], series[f"{label}{sfx}_ci"] = mean, ci
        for j, d in enumerate(c.lesion_days):
            metrics[f"recall_lesion_day{d}{sfx}"] = float(series[f"recall_lesion{sfx}"][j])
            metrics[f"recall_sham_day{d}{sfx}"] = float(series[f"recall_sham{sfx}"][j])
        first, last = c.generalization_days[0], c.generalization_days[-1]
        metrics[f"generalization_day{first}{sfx}"] = float(series[f"generalization_by_day{sfx}"][0])
        metrics[f"generalization_day{last}{sfx}"] = float(series[f"generalization_by_day{sfx}"][-1])
        lo, hi = c.lesion_days[0], c.lesion_days[-1]
        metrics[f"gradient{sfx}"] = (
            metrics[f"recall_lesion_day{hi}{sfx}"] - metrics[f"recall_lesion_day{lo}{sfx}"]
        )
    metrics["n_subjects"] = float(s)
    return Result(experiment=NAME, config={}, metrics=metrics, series=series)


# ----------------------------------------------------------------------------- figure

_KV, _CONTENT = "tab:blue", "tab:red"


def _band(ax, x, ci, color) -> None:
    ax.fill_between(x, [p[0] for p in ci], [p[1] for p in ci], color=color, alpha=0.2, lw=0)


def plot(result: Result) -> Figure:
    """(A) the Ribot curve: recall after a lesion at each delay and sham recall, both
    architectures, 95 % bands, the published pattern beside them; (B) generalisation to a
    similar context over days, beside Wiltgen & Silva's pattern."""
    s = result.series
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_a, ax_b = fig.subplots(1, 2)
    days, x = s["day"], s["lesion_day"]
    for sfx, color, label in (
        ("", _KV, "key-value"),
        ("_content", _CONTENT, "content in hippocampus"),
    ):
        if f"recall_lesion{sfx}" not in s:
            continue
        ax_a.plot(days, s[f"recall_sham_by_day{sfx}"], "--", color=color, lw=1, alpha=0.7)
        _band(ax_a, days, s[f"recall_sham_by_day{sfx}_ci"], color)
        ax_a.errorbar(
            x,
            s[f"recall_sham{sfx}"],
            yerr=_yerr(s[f"recall_sham{sfx}"], s[f"recall_sham{sfx}_ci"]),
            fmt="o",
            mfc="white",
            color=color,
            capsize=3,
            label=f"{label}: sham",
        )
        ax_a.errorbar(
            x,
            s[f"recall_lesion{sfx}"],
            yerr=_yerr(s[f"recall_lesion{sfx}"], s[f"recall_lesion{sfx}_ci"]),
            fmt="-s",
            color=color,
            capsize=3,
            label=f"{label}: hippocampal lesion",
        )
        g = f"generalization_by_day{sfx}"
        ax_b.errorbar(
            s["generalization_day"],
            s[g],
            yerr=_yerr(s[g], s[f"{g}_ci"]),
            fmt="-o",
            color=color,
            capsize=3,
            label=f"{label} (intact)",
        )
    # the published pattern, as the papers' texts state it (a schematic, not data points)
    ax_a.plot(
        [1, 28], [5, 95], "k:", lw=0, marker="*", ms=11, label="published pattern (schematic)"
    )
    ax_a.annotate("K&F 1992: 1-d lesion\nabolishes context fear", (1, 5), (3.5, 2), fontsize=7)
    ax_a.annotate(
        "7-28-d lesions largely spare it;\nsham keeps it", (28, 95), (14, 101), fontsize=7
    )
    ax_a.set_xlabel("days from conditioning to lesion (and test)")
    ax_a.set_ylabel("recall of the shock value (%, ~ % freezing)")
    ax_a.set_ylim(-3, 110)
    ax_a.set_title("A  Ribot gradient: lesion after a delay, sham", loc="left", fontsize=10)
    ax_a.legend(fontsize=7, loc=(0.4, 0.1))
    ax_b.plot(
        [1, 36], [30, 100], "k", lw=0, marker="*", ms=11, label="published pattern (schematic)"
    )
    ax_b.annotate("W&S 2007: more fear\nin training context", (1, 30), (3, 18), fontsize=7)
    ax_b.annotate("equal fear in both", (36, 100), (24, 104), fontsize=7)
    ax_b.set_xlabel("days from conditioning to test")
    ax_b.set_ylabel("fear of a similar new context (% of training context)")
    ax_b.set_ylim(-3, 110)
    ax_b.set_title("B  remote memories generalise (Wiltgen & Silva 2007)", loc="left", fontsize=10)
    ax_b.legend(fontsize=7, loc="lower right")
    for ax in (ax_a, ax_b):
        ax.grid(alpha=0.3)
    return fig


def _yerr(mean: list[float], ci: list[list[float]]) -> list[list[float]]:
    return [
        [m - p[0] for m, p in zip(mean, ci, strict=True)],
        [p[1] - m for m, p in zip(mean, ci, strict=True)],
    ]


# ----------------------------------------------------------------------------- claims


def _at(r: Result, key: str, day: int) -> float:
    return r.series[key][r.series["lesion_day"].index(day)]


def _published_days(r: Result) -> bool:
    if r.series["lesion_day"] != [1, 7, 14, 28]:
        raise KeyError("lesion_day")  # the claims are about Kim & Fanselow's delays
    return True


def _weeks_later(r: Result) -> bool:
    if r.series["generalization_day"][-1] < 14:
        raise KeyError("generalization_day")  # Wiltgen & Silva's effect takes weeks
    return True


#: Claims of docs/science.md 4 item 10, checked on every run (those about Kim & Fanselow's delays
#: apply only when all four were simulated).
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "a hippocampal lesion 1 day after learning abolishes the memory (key-value: < 30 % "
        "recall and < 30 % of sham)",
        lambda r: (
            _at(r, "recall_lesion", 1) < 30.0
            and _at(r, "recall_lesion", 1) < 0.3 * _at(r, "recall_sham", 1)
        ),
    ),
    Claim(
        "lesions 7-28 days after learning largely spare it (key-value: >= 50 % of sham at "
        "7 days, >= 75 % of sham at 14 and 28 days)",
        lambda r: (
            _published_days(r)
            and _at(r, "recall_lesion", 7) >= 0.5 * _at(r, "recall_sham", 7)
            and all(_at(r, "recall_lesion", d) >= 0.75 * _at(r, "recall_sham", d) for d in (14, 28))
        ),
    ),
    Claim(
        "the retrograde amnesia is temporally graded: lesion recall rises from day 1 to 7 to "
        "14 (by >= 40 points in all) and stays there at day 28 (within 10 points)",
        lambda r: (
            _published_days(r)
            and _at(r, "recall_lesion", 1)
            < _at(r, "recall_lesion", 7)
            < _at(r, "recall_lesion", 14)
            and _at(r, "recall_lesion", 14) - _at(r, "recall_lesion", 1) >= 40.0
            and _at(r, "recall_lesion", 28) >= _at(r, "recall_lesion", 14) - 10.0
        ),
    ),
    Claim(
        "sham (intact) animals keep the memory (key-value: >= 70 % recall at every lesion day)",
        lambda r: min(r.series["recall_sham"]) >= 70.0,
    ),
    Claim(
        "remote memories generalise more: fear of a similar, never-seen context (% of the "
        "training context) grows by >= 25 points from the first to the last test day (two "
        "weeks or more later)",
        lambda r: (
            _weeks_later(r)
            and r.series["generalization_by_day"][-1] - r.series["generalization_by_day"][0] >= 25.0
        ),
    ),
    Claim(
        "with the content stored in the hippocampus there is no gradient: a lesion leaves "
        "< 5 % recall at every delay",
        lambda r: max(r.series["recall_lesion_content"]) < 5.0,
    ),
    Claim(
        "the content model's generalisation does not grow with time (changes < 10 points)",
        lambda r: (
            abs(
                r.series["generalization_by_day_content"][-1]
                - r.series["generalization_by_day_content"][0]
            )
            < 10.0
        ),
    ),
)
