"""Feeling of knowing: the key-query match without the value (docs/science.md 1.2, 4 item 7).

**The science.** People who fail to recall an answer can still say, better than chance,
whether they would recognise it later (Hart 1965, the recall-judgement-recognition
paradigm). Their feeling of knowing (FOK) predicts later recognition with a modest
Goodman-Kruskal gamma (roughly 0.3-0.5 across studies in the review of Schwartz &
Metcalfe; an approximate range, not one published number). And making the *cue* familiar,
without making the answer any more available, inflates FOK (Reder & Ritter 1992;
Metcalfe, Schwartz & Joaquim 1993). A key-value memory explains both: the pre-separation
match ``s_n = S(q, k_n)`` between the cue and the stored keys is a signal in its own right,
available before (and without) a successful value retrieval (docs/science.md 1.2). It tracks
how much of the right memory the cue reaches (so it predicts recognition) but also how
much the cue resembles *any* key (so familiar cues inflate it).

**Protocol (per simulated subject).** ``n_pairs`` cue-target pairs are studied, half with
*familiar* cues: a fraction ``familiar_overlap`` of their cue features is a pattern shared
with ``n_prior`` further stored pairs (earlier exposures of the same cue terms with other
answers, as Reder & Ritter's pre-exposed problem terms) and with each other; the other half
have unrelated random cues. Cues and targets are random +-1 vectors of ``dim`` entries.
Encoding is imperfect and item-specific, separately for the two halves of a memory: each
stored key is its cue with a fraction ``eps_i ~ U(0, max_encoding_noise)`` of entries
flipped, and each stored value is its target with a fraction ``delta_i ~ U(0,
max_value_noise)`` flipped. At test:

- recall: the read is ``v_hat = softmax(beta s) V`` with ``s_n = cos(q, k_n)``; recall
  succeeds when ``cos(v_hat, t) >= recall_criterion`` for the true target ``t`` and ``t`` is
  the studied target nearest the read. A cue can fail because its key is not found (a
  wrong or blended memory wins) or because the key is found but the value is too degraded
  to produce (a tip-of-the-tongue state: strong match, weak value);
- FOK (for every cue): the best match before separation, ``FOK = max_n s_n``
  (``SlotMemory.scores``);
- recognition (for the cues that failed recall): four-alternative forced choice of the
  target against three other studied targets, choosing ``argmax_j (v_hat . a_j) / dim +
  recognition_noise * z_j`` (``z_j`` standard normal decision noise).

Tip of the tongue: a failed recall whose best-matching key is the cue's own memory (the
key is found, the value too degraded to produce: ``tip_of_tongue_of_failed_recall``, % of
failed recalls); the model predicts such states are recognised later far more often than
other failures (``recognition_tip_of_tongue`` vs ``recognition_failed_not_tip_of_tongue``),
as people in a tip-of-the-tongue state recognise the word they could not produce more
often than after other recall failures (reviewed by Schwartz 2002, *Tip-of-the-tongue
states*; qualitative, no number is compared). Measured on the default protocol: 29 % of
failures are such states, recognised 67 % vs 27 % (chance 25 %).

Measures: ``fok_auc`` = area under the ROC of FOK for later recognition among the
failed-recall unfamiliar cues (the standard recall-judgement-recognition condition;
Mann-Whitney, per subject, then the mean over subjects), ``fok_gamma`` = the
Goodman-Kruskal gamma (``2 AUC - 1`` without ties); ``fok_gain_familiar_cue`` = the
percentage of "I would know it" judgements (FOK above a criterion fixed at the median FOK of
unfamiliar cues, per subject) for familiar minus unfamiliar cues, in percentage points;
``recall_gain_familiar_cue`` = recall (%) for familiar minus unfamiliar cues.

**Contrast: a similarity-based autoassociative memory** (modern Hopfield network,
docs/science.md 1.4) stores each pair as one pattern ``x = [k; v] / sqrt(dim)`` (the key and
value halves are one representation) and is cued with ``[q; 0] / sqrt(dim)``; it iterates
``xi <- softmax(beta xi X^T) X`` to a settled state (``hopfield_steps`` updates, same beta,
so its first update is the key-value read). It has no match signal separate from retrieval,
so its FOK is the settled-state overlap ``max_mu cos(xi, x_mu)``; recall and recognition use
the settled value half as above. Once settled, it is as confident in a wrong attractor as in
the right one, so for failed recalls its FOK carries less information about recognition.

**Parameters** were fixed once, chosen so that about half of the cues fail recall (as in
Hart's procedure), not fitted to the FOK data: ``dim = 64``, ``beta = 10``,
``max_encoding_noise = 0.5``, ``max_value_noise = 0.15``, ``familiar_overlap = 0.375``,
``n_prior = 20``, ``recall_criterion = 0.7``, ``recognition_noise = 0.15``, 40 pairs and 40
subjects. Intervals: Student-t 95 % over subjects.

**What to expect, and a prediction.** The key match predicts recognition of unrecalled
answers (AUC about 0.7, gamma about 0.4, inside the human range); the settled overlap of
the autoassociative memory barely does. Familiar cues raise the key-value FOK; in the
autoassociative memory they *lower* the settled overlap (the state falls into a blend of
the cue family). In this model familiar cues also *hurt* recall (the shared features make
the cue match competitors), a cost that Reder & Ritter's paradigm was not built to measure:
"no improvement" holds, "no change" does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from matplotlib.figure import Figure

from kvmem.behavior.retrieval_tasks import batched_auc_gamma
from kvmem.core.modern_hopfield import ModernHopfield
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

__all__ = ["CLAIMS", "NAME", "DESCRIPTION", "PUBLISHED", "Config", "quick", "run", "plot"]

NAME = "metamemory"
DESCRIPTION = (
    "Feeling of knowing and tip of the tongue from the key-query match: it predicts later "
    "recognition of unrecalled answers; familiar cues inflate it without improving recall "
    "(vs modern Hopfield)"
)

#: Approximate human reference (a range across studies, not one published number).
PUBLISHED: dict[str, tuple[float, str, float]] = {
    "fok_gamma": (
        0.4,
        "FOK-recognition gamma, typically about 0.3-0.5 (approximate range; Hart 1965; "
        "review by Schwartz & Metcalfe)",
        0.15,
    ),
}

MODELS: tuple[str, ...] = ("kv", "hopfield")


@dataclass(frozen=True)
class Config:
    """Recall-judgement-recognition with familiar and unfamiliar cues (module docstring)."""

    seed: int = 0
    n_subjects: int = 40
    n_pairs: int = 40
    n_prior: int = 20
    dim: int = 64
    familiar_overlap: float = 0.375
    max_encoding_noise: float = 0.5
    max_value_noise: float = 0.15
    beta: float = 10.0
    recall_criterion: float = 0.7
    recognition_noise: float = 0.15
    n_alternatives: int = 4
    hopfield_steps: int = 10

    def __post_init__(self) -> None:
        for name, low in (("n_subjects", 2), ("n_pairs", 8), ("n_prior", 0), ("dim", 8)):
            if getattr(self, name) < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {getattr(self, name)}")
        if self.n_pairs % 2:
            raise ValueError(
                f"n_pairs: expected an even number (half familiar), got {self.n_pairs}"
            )
        if not 2 <= self.n_alternatives <= self.n_pairs:
            raise ValueError(
                f"n_alternatives: expected an integer in [2, n_pairs], got {self.n_alternatives}"
            )
        for name in ("familiar_overlap", "recall_criterion"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        for name in ("max_encoding_noise", "max_value_noise"):
            if not 0 <= getattr(self, name) <= 0.5:
                raise ValueError(f"{name}: expected a value in [0, 0.5], got {getattr(self, name)}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta: expected a finite value > 0, got {self.beta}")
        if not (math.isfinite(self.recognition_noise) and self.recognition_noise >= 0):
            raise ValueError(
                f"recognition_noise: expected a finite value >= 0, got {self.recognition_noise}"
            )
        if self.hopfield_steps < 1:
            raise ValueError(f"hopfield_steps: expected an integer >= 1, got {self.hopfield_steps}")


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run (float64), keyed by the size field grown most over the default.

    Per subject, with ``N = n_pairs + n_prior`` stored pairs: the broadcast cosines of every
    read against every stored pattern ``[n_pairs, N, 2 dim]`` (with temporaries), the
    recognition alternatives ``[n_pairs, A, dim]`` and the materials ``[N, dim]``.
    ``check_memory`` refuses a config over this machine's memory.
    """
    c, d = config, Config()
    n, total = c.n_pairs, c.n_pairs + c.n_prior
    per_subject = 4 * n * total * 2 * c.dim + 3 * n * c.n_alternatives * c.dim
    per_subject += 14 * total * c.dim
    grown = {
        "n_subjects": c.n_subjects / d.n_subjects,
        "n_pairs": (c.n_pairs / d.n_pairs) ** 2,
        "n_prior": c.n_prior / d.n_prior,
        "dim": c.dim / d.dim,
        "n_alternatives": c.n_alternatives / d.n_alternatives,
    }
    return charge_to_most_grown(grown, 8 * c.n_subjects * per_subject)


def quick(config: Config) -> Config:
    """At most 40 subjects (the default): the full run already takes about two seconds.

    Fewer subjects are not a smaller version of the same test: the FOK AUC is computed per
    subject over the ~10 unrecalled unfamiliar cues, and with 10 subjects its interval
    straddles chance on some seeds (measured: seeds 1, 3, 4, 5, 7 of 0-7).
    """
    return replace(config, n_subjects=min(config.n_subjects, 40))


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def _materials(config: Config, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Cues, stored keys and values of every subject: ``[S, N_total, dim]``.

    Rows ``0 .. n_pairs/2 - 1`` are the familiar-cue test pairs, the next ``n_pairs/2`` the
    unfamiliar ones, the last ``n_prior`` the prior exposures (never tested).
    """
    s, n, d, dt = config.n_subjects, config.n_pairs, config.dim, torch.float64
    half, total = n // 2, n + config.n_prior

    def pm1(*shape: int) -> torch.Tensor:
        return torch.randint(0, 2, shape, generator=gen).to(dt) * 2 - 1

    cues = pm1(s, total, d)
    family = pm1(s, 1, d)
    shared = torch.zeros(total, d, dtype=torch.bool)
    m = round(config.familiar_overlap * d)
    shared[:half, :m] = True  # familiar test cues
    shared[n:, :m] = True  # prior exposures share the same features
    cues = torch.where(shared, family, cues)
    targets = pm1(s, total, d)
    eps = config.max_encoding_noise * torch.rand(s, total, 1, generator=gen, dtype=dt)
    flip = torch.rand(s, total, d, generator=gen, dtype=dt) < eps
    keys = torch.where(flip, -cues, cues)
    # the value is stored with its own, independent encoding strength
    delta = config.max_value_noise * torch.rand(s, total, 1, generator=gen, dtype=dt)
    flip = torch.rand(s, total, d, generator=gen, dtype=dt) < delta
    values = torch.where(flip, -targets, targets)
    # recognition lures: other studied targets of the same subject
    offsets = torch.stack(
        [torch.randperm(n - 1, generator=gen)[: config.n_alternatives - 1] + 1 for _ in range(n)]
    )  # [n, A-1], distinct non-zero offsets
    lures = (torch.arange(n)[:, None] + offsets) % n
    alt_index = torch.cat([torch.arange(n)[:, None], lures], dim=1)  # [n, A], target first
    z = torch.randn(s, n, config.n_alternatives, generator=gen, dtype=dt)
    return {
        "cues": cues,
        "keys": keys,
        "values": values,
        "targets": targets,
        "alt": alt_index,
        "z": z,
    }


def _outcomes(
    read: torch.Tensor, fok: torch.Tensor, mat: dict[str, torch.Tensor], config: Config
) -> dict[str, torch.Tensor]:
    """Recall, recognition of the tested pairs from reads ``[S, n, dim]`` and FOK ``[S, n]``."""
    n = config.n_pairs
    targets = mat["targets"]
    target = targets[:, :n]
    sims = _cos(read[:, :, None, :], targets[:, None, :, :])  # [S, n, N_total]
    nearest = sims.argmax(-1) == torch.arange(n)
    recalled = nearest & (_cos(read, target) >= config.recall_criterion)
    alts = target[:, mat["alt"]]  # [S, n, A, dim]
    evidence = (read[:, :, None, :] * alts).sum(-1) / config.dim
    evidence = evidence + config.recognition_noise * mat["z"]
    recognised = evidence.argmax(-1) == 0
    return {"recalled": recalled, "recognised": recognised, "fok": fok}


def _kv(mat: dict[str, torch.Tensor], config: Config) -> dict[str, torch.Tensor]:
    mem = SlotMemory("cosine", "softmax", beta=config.beta)
    mem.write(mat["keys"], mat["values"])
    n = config.n_pairs
    q = mat["cues"][:, :n]
    scores = mem.scores(q)  # [S, n, N_total], before separation
    fok = scores.amax(-1)  # the best match before separation
    out = _outcomes(mem.read(q), fok, mat, config)
    # the cue's best-matching key is its own memory's: a failed recall with the right key
    # found is a tip-of-the-tongue state (key match, value not produced; docs/science.md thesis 3)
    out["key_found"] = scores.argmax(-1) == torch.arange(n)
    return out


def _hopfield(mat: dict[str, torch.Tensor], config: Config) -> dict[str, torch.Tensor]:
    d, n = config.dim, config.n_pairs
    scale = 1 / math.sqrt(d)
    patterns = torch.cat([mat["keys"], mat["values"]], dim=-1) * scale  # [S, N_total, 2 d]
    net = ModernHopfield(beta=config.beta, max_steps=config.hopfield_steps, tol=1e-9)
    net.store(patterns)
    q = mat["cues"][:, :n]
    cue = torch.cat([q, torch.zeros_like(q)], dim=-1) * scale
    xi = net.retrieve(cue)
    assert isinstance(xi, torch.Tensor)
    fok = _cos(xi[:, :, None, :], patterns[:, None, :, :]).amax(-1)  # settled overlap
    return _outcomes(xi[..., d:], fok, mat, config)


def _subject_stats(out: dict[str, torch.Tensor], config: Config) -> dict[str, list[float]]:
    """Per-subject FOK AUC / gamma among failed recalls, familiarity effects."""
    half = config.n_pairs // 2
    rec, recog, fok = out["recalled"], out["recognised"], out["fok"]
    stats: dict[str, list[float]] = {k: [] for k in ("auc", "gamma", "fok_gain", "recall_gain")}
    stats.update({"recall": [], "recognition_failed": [], "know_fam": [], "know_unf": []})
    # the standard condition: failed recalls of unfamiliar cues, per subject
    auc_s, gamma_s = batched_auc_gamma(fok[:, half:], recog[:, half:], ~rec[:, half:])
    stats["auc"], stats["gamma"] = auc_s.tolist(), gamma_s.tolist()
    crit = fok[:, half:].median(dim=1, keepdim=True).values  # median FOK of unfamiliar cues
    know = (fok > crit).double() * 100
    recall = rec.double() * 100
    stats["know_fam"] = know[:, :half].mean(1).tolist()
    stats["know_unf"] = know[:, half:].mean(1).tolist()
    stats["fok_gain"] = (know[:, :half].mean(1) - know[:, half:].mean(1)).tolist()
    stats["recall_fam"] = recall[:, :half].mean(1).tolist()
    stats["recall_unf"] = recall[:, half:].mean(1).tolist()
    stats["recall_gain"] = (recall[:, :half].mean(1) - recall[:, half:].mean(1)).tolist()
    stats["recall"] = recall.mean(1).tolist()
    failed = (~rec).double()
    rf = (recog.double() * failed).sum(1) / failed.sum(1).clamp(min=1) * 100
    stats["recognition_failed"] = rf.tolist()
    if "key_found" in out:  # kv only: the autoassociative memory has no separate key
        tot = (~rec & out["key_found"]).double()
        other = failed - tot
        stats["tot"] = (tot.sum(1) / failed.sum(1).clamp(min=1) * 100).tolist()
        for key, mask in (("recognition_tot", tot), ("recognition_not_tot", other)):
            n_i = mask.sum(1)
            r_i = (recog.double() * mask).sum(1) / n_i.clamp(min=1) * 100
            stats[key] = torch.where(n_i > 0, r_i, math.nan).tolist()
    return stats


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """FOK-recognition AUC and the cue-familiarity effect for both models."""
    with single_thread():
        return _run(config, progress)


def _run(config: Config, progress: ProgressFactory) -> Result:
    gen = torch.Generator().manual_seed(config.seed)
    mat = _materials(config, gen)
    metrics: dict[str, float] = {}
    series: dict[str, list] = {}
    names = {
        "auc": "fok_auc",
        "gamma": "fok_gamma",
        "fok_gain": "fok_gain_familiar_cue",
        "recall_gain": "recall_gain_familiar_cue",
        "recall": "recall",
        "recognition_failed": "recognition_after_failed_recall",
        "know_fam": "fok_know_familiar",
        "know_unf": "fok_know_unfamiliar",
        "recall_fam": "recall_familiar",
        "recall_unf": "recall_unfamiliar",
        "tot": "tip_of_tongue_of_failed_recall",
        "recognition_tot": "recognition_tip_of_tongue",
        "recognition_not_tot": "recognition_failed_not_tip_of_tongue",
    }
    for model in progress(MODELS, total=len(MODELS), desc="models"):
        out = _kv(mat, config) if model == "kv" else _hopfield(mat, config)
        stats = _subject_stats(out, config)
        suffix = "" if model == "kv" else "_hopfield"
        for key, name in names.items():
            if key not in stats:
                continue
            values = torch.tensor(stats[key], dtype=torch.float64)
            if bool(values.isnan().all()):  # undefined for every subject: leave it out
                continue
            mean, ci = mean_ci(values)  # NaN subjects (no case of a class) are skipped
            metrics[name + suffix] = float(mean)
            series[name + suffix + "_ci"] = [ci]
        metrics["fok_auc_subjects" + suffix] = float(
            sum(1 for v in stats["auc"] if not math.isnan(v))
        )
        if model == "kv":
            # FOK distributions for the figure: failed recalls, split by later recognition
            failed = ~out["recalled"]
            series["fok_failed_recognised"] = out["fok"][failed & out["recognised"]].tolist()
            series["fok_failed_unrecognised"] = out["fok"][failed & ~out["recognised"]].tolist()
    return Result(experiment=NAME, config={}, metrics=metrics, series=series)


def plot(result: Result) -> Figure:
    """(A) kv FOK of unrecalled cues by later recognition; (B) FOK AUC of both models
    against the human range; (C) familiar minus unfamiliar cues: FOK and recall; (D) later
    recognition of tip-of-the-tongue failures versus other failures (kv)."""
    m, s = result.metrics, result.series
    fig = Figure(figsize=(17, 4.4), layout="constrained")
    ax_a, ax_b, ax_c, ax_d = fig.subplots(1, 4)

    bins = 20
    ax_a.hist(
        s["fok_failed_recognised"], bins=bins, alpha=0.6, density=True, label="recognised later"
    )
    ax_a.hist(
        s["fok_failed_unrecognised"], bins=bins, alpha=0.6, density=True, label="not recognised"
    )
    ax_a.set_xlabel("feeling of knowing = best key-query match  max_n cos(q, k_n)")
    ax_a.set_ylabel("density (cues that failed recall)")
    ax_a.set_title("A  key-value memory: FOK of unrecalled cues", loc="left", fontsize=10)
    ax_a.legend(fontsize=8)

    labels = ["key-value\n(key match)", "modern Hopfield\n(settled overlap)"]
    vals = [m["fok_auc"], m["fok_auc_hopfield"]]
    cis = [s["fok_auc_ci"][0], s["fok_auc_hopfield_ci"][0]]
    err = [
        [v - c[0] for v, c in zip(vals, cis, strict=True)],
        [c[1] - v for v, c in zip(vals, cis, strict=True)],
    ]
    ax_b.bar(range(2), vals, yerr=err, color=["tab:blue", "tab:orange"], capsize=4)
    # human: gamma ~0.3-0.5 (approximate range) -> AUC = (1 + gamma) / 2 = 0.65-0.75
    ax_b.axhspan(0.65, 0.75, color="k", alpha=0.12, label="humans, gamma ~0.3-0.5 (approx.)")
    ax_b.axhline(0.5, color="k", ls=":", lw=1, label="chance")
    ax_b.set_xticks(range(2), labels)
    ax_b.set_ylim(0.3, 1.0)
    ax_b.set_ylabel("AUC of FOK for later recognition")
    ax_b.set_title("B  FOK predicts recognition (Hart 1965)", loc="left", fontsize=10)
    ax_b.legend(fontsize=8, loc="upper right")

    x = range(2)
    w = 0.38
    for j, (key, lab, col) in enumerate(
        (
            ("fok_gain_familiar_cue", "FOK ('would know it', pp)", "tab:green"),
            ("recall_gain_familiar_cue", "recall (pp)", "tab:red"),
        )
    ):
        v = [m[key], m[key + "_hopfield"]]
        c = [s[key + "_ci"][0], s[key + "_hopfield_ci"][0]]
        e = [
            [a - b[0] for a, b in zip(v, c, strict=True)],
            [b[1] - a for a, b in zip(v, c, strict=True)],
        ]
        ax_c.bar([i + (j - 0.5) * w for i in x], v, w, yerr=e, color=col, capsize=4, label=lab)
    ax_c.axhline(0, color="k", lw=0.8)
    ax_c.set_xticks(list(x), labels)
    ax_c.set_ylabel("familiar minus unfamiliar cue (percentage points)")
    ax_c.set_title(
        "C  familiar cues: FOK up, recall not\n(humans: Reder & Ritter 1992, qualitative)",
        loc="left",
        fontsize=10,
    )
    ax_c.legend(fontsize=8)

    # D: tip of the tongue (kv): failed recalls whose own key won the match
    keys = ("recognition_tip_of_tongue", "recognition_failed_not_tip_of_tongue")
    if all(k in m for k in keys):
        v = [m[k] for k in keys]
        c = [s[k + "_ci"][0] for k in keys]
        e = [
            [a - b[0] for a, b in zip(v, c, strict=True)],
            [b[1] - a for a, b in zip(v, c, strict=True)],
        ]
        ax_d.bar(range(2), v, yerr=e, color=["tab:purple", "tab:gray"], capsize=4)
        ax_d.axhline(100.0 / 4, color="k", ls=":", lw=1, label="chance (4 alternatives)")
        share = m.get("tip_of_tongue_of_failed_recall", math.nan)
        ax_d.set_xticks(
            range(2),
            [f"tip of the tongue\n(key found; {share:.0f} % of failures)", "other failures"],
        )
        ax_d.set_ylabel("later recognition (%)")
        ax_d.set_ylim(0, 100)
        ax_d.legend(fontsize=8)
    ax_d.set_title(
        "D  key-value memory: tip-of-the-tongue failures\nare recognised (humans: more often "
        "than other\nfailures; Schwartz 2002, qualitative)",
        loc="left",
        fontsize=10,
    )
    return fig


#: The metamemory claims of docs/science.md 4 item 7, checked on every run.
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "key-value memory: for cues that fail recall, the pre-separation key match predicts "
        "later recognition above chance (AUC 95 % interval above 0.5)",
        lambda r: r.series["fok_auc_ci"][0][0] > 0.5,
    ),
    Claim(
        "key-value memory: familiar cues inflate feeling of knowing (by > 10 points)",
        lambda r: r.metrics["fok_gain_familiar_cue"] > 10,
    ),
    Claim(
        "key-value memory: familiar cues do not improve recall (gain's interval not above 0)",
        lambda r: r.series["recall_gain_familiar_cue_ci"][0][0] <= 0,
    ),
    Claim(
        "the key match predicts recognition better than the autoassociative memory's "
        "settled-state overlap (by > 0.05 AUC)",
        lambda r: r.metrics["fok_auc"] > r.metrics["fok_auc_hopfield"] + 0.05,
    ),
    Claim(
        "key-value memory: tip-of-the-tongue failures (the right key wins the match, the value "
        "is not produced) are recognised later more often than other failures (by > 20 points)",
        lambda r: (
            r.metrics["recognition_tip_of_tongue"]
            > r.metrics["recognition_failed_not_tip_of_tongue"] + 20.0
        ),
    ),
    Claim(
        "in the autoassociative memory familiar cues do not inflate feeling of knowing",
        lambda r: r.metrics["fok_gain_familiar_cue_hopfield"] <= 0,
    ),
)
