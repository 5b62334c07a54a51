"""Systems consolidation: a hippocampal index over cortical values, trained into cortex by
replay (docs/science.md 4 item 10).

The key-value reading of the hippocampus (Gershman, Fiete & Irie 2025) puts the *keys* of
episodic memories in the hippocampus and their *values* in neocortex. A new experience is
a cortical pattern: a context cue ``c`` (``d_cortex`` units, unit length) and the content
that goes with it, the value ``v`` (``d_value`` units; e.g. "shock"). Two routes can
retrieve ``v`` from ``c``:

**Hippocampus: a fast slot memory (an index).** One-shot write: the experience takes one
of ``n_slots`` slots, chosen at random (so later experiences overwrite earlier traces: a
trace survives ``m`` later writes with probability ``(1 - 1/n_slots)^m``); its key is a
pattern-separated code of the cue, ``k = kWTA(c R)`` (a fixed random expansion ``R``
``[d_cortex, n_units]`` followed by k-winners-take-all with ``active_fraction`` of the
units active, binary and unit length: :class:`kvmem.core.key_maps.ExpansionKWTAKeys`,
dentate-gyrus-like); its value reinstates the cortical pattern ``(c, v)`` (the index
points at cortex). Each trace has a strength ``g`` that starts at 1 and decays as
``g <- g exp(-hippocampal_decay)`` each day. Read (docs/science.md 1.2, dot similarity, max
separation, :class:`kvmem.core.SlotMemory`): the best-matching slot
``n* = argmax_n k(q) . k_n`` wins, and completes its pattern only if the match reaches the
criterion ``match_threshold`` (the fraction of shared active units); then
``v_hip = g_{n*} v_{n*}``, else ``v_hip = 0``.

**Cortex: a slow learner.** A linear map ``M`` ``[d_cortex, d_value]`` from the cue
straight to the value (:class:`kvmem.core.MatrixMemory`, delta rule, docs/science.md 1.3),
trained *only* by hippocampal replay: each night every hippocampal trace is reinstated with
probability ``p_replay = replay_prob`` and the cortex takes one delta-rule step on it, in
slot order,

    M <- M + eta_n c_n^T (v_n - c_n M),  eta_n = cortical_lr g_n r_n,  r_n ~ Bernoulli(p_replay),

so the cortical read ``v_ctx = q M`` grows towards ``v`` night by night while the trace is
alive. Without replay (``replay_prob = 0``) the cortex learns nothing. An optional cortical
decay ``M <- (1 - cortical_decay) M`` per night.

**Recall.** Both routes drive the value units and the read is their sum,
``v_hat = v_hip + v_ctx`` (while the hippocampal trace is alive and the cortex has learned
part of it, the sum exceeds the target and the score saturates at 100 %). A hippocampal
lesion removes the hippocampal route (and with it all further replay), leaving ``v_ctx``.
:func:`recall_score` turns a read into a percentage: the projection on the target value,
``100 clamp(v_hat . v / |v|^2, 0, 1)``.

**Contrast: content in the hippocampus** (``architecture="content"``). The classical,
similarity-based reading: the hippocampus stores the experience itself (its key *is* the
content, the raw cortical cue, matched by cosine, with the same max separation and
criterion), and there are no separate cortical values for replay to strengthen, so the
cortical route stays empty: the memory lives and dies with the hippocampus, and a similar
context retrieves it (or not) by raw similarity, the same on every day.

**Parameters and where they come from.** McClelland, McNaughton & O'Reilly (1995, Psychol.
Rev. 102:419) fitted a two-store model (a hippocampal decay rate and a consolidation rate)
to Kim & Fanselow's (1992) data; their fitted values are *not* reproduced here (not
checked), so every value below is chosen, as stated:

- ``d_cortex = 256``, ``d_value = 64``: chosen so that random unit cues are nearly
  orthogonal (cross-talk ~ 1/16) and the cortex can hold every experience of the protocol
  (3 a day for 5 weeks, ~ 110 < 256) without capacity interference; the cross-talk of
  replaying ``m`` other traces still erodes a cortical trace by ~ ``m cortical_lr / d_cortex``
  a night, which sets the cortical ceiling (~ 80 %);
- ``n_units = 2000``, ``active_fraction = 0.05``: a sparse expansion (dentate granule cells
  are ~5x entorhinal cells in number and sparsely active; the exact values are chosen);
- ``match_threshold = 0.5``: chosen; the kWTA codes of a cue and of a similar context
  (cosine 0.6) share ~ 0.31 of their active units (sd 0.04 with 2000 units), of
  the same cue 1.0, of unrelated cues ~ 0.05;
- ``n_slots = 200`` (with 3 experiences a day a trace survives t days with probability
  ~ exp(-0.015 t), a half-life of ~ 6 weeks) and ``hippocampal_decay = 0.01`` per day;
  chosen;
- ``replay_prob = 0.5``, ``cortical_lr = 0.3``: chosen so that the cortex takes about a
  week of nights to learn a trace (expected gain 0.15 per night: 15 % after one night,
  ~ 65 % after seven), the time scale over which Kim & Fanselow's gradient runs. This one
  time constant is the only thing set with the data in mind; the shape of the gradient,
  the sham level and the generalisation are outputs.

Shapes: ``S`` subjects (independent simulated animals) lead every tensor; methods take
cues ``[S, n, d_cortex]`` and values ``[S, n, d_value]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from kvmem.core.key_maps import ExpansionKWTAKeys
from kvmem.core.matrix_memory import MatrixMemory
from kvmem.core.slot_memory import SlotMemory

__all__ = [
    "ARCHITECTURES",
    "Consolidation",
    "RecallReads",
    "recall_score",
    "unit_patterns",
    "similar_patterns",
]

ARCHITECTURES: tuple[str, ...] = ("key-value", "content")


def unit_patterns(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Random unit-length Gaussian patterns ``[..., d]`` (float64)."""
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    return torch.nn.functional.normalize(x, dim=-1)


def similar_patterns(x: torch.Tensor, cosine: float, generator: torch.Generator) -> torch.Tensor:
    """Unit patterns ``[..., d]`` at cosine exactly ``cosine`` from the unit patterns ``x``.

    ``x' = rho x + sqrt(1 - rho^2) z`` with ``z`` a random unit pattern orthogonal to ``x``
    (Gram-Schmidt), so ``|x'| = 1`` and ``x . x' = rho``.
    """
    if not -1.0 <= cosine <= 1.0:
        raise ValueError(f"cosine: expected a value in [-1, 1], got {cosine}")
    z = unit_patterns(tuple(x.shape), generator)
    z = torch.nn.functional.normalize(z - (z * x).sum(-1, keepdim=True) * x, dim=-1)
    return torch.nn.functional.normalize(cosine * x + math.sqrt(1 - cosine**2) * z, dim=-1)


def recall_score(read: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``100 clamp(read . target / |target|^2, 0, 1)``: ``[..., d] x [..., d] -> [...]``.

    The share of the target value the read reinstates, in percent (a stand-in for the
    percentage of time an animal freezes when the shock value is retrieved).
    """
    proj = (read * target).sum(-1) / target.square().sum(-1).clamp_min(1e-300)
    return 100.0 * proj.clamp(0.0, 1.0)


@dataclass(frozen=True)
class RecallReads:
    """The reads of one recall, each ``[S, Q, d_value]``: ``hippocampal``, ``cortical``,
    and ``combined`` (their sum; the cortical one alone after a lesion); ``match``
    ``[S, Q]`` is the best hippocampal key match."""

    hippocampal: torch.Tensor
    cortical: torch.Tensor
    combined: torch.Tensor
    match: torch.Tensor


class Consolidation:
    """A hippocampal key index over cortical values, consolidated into cortex by replay.

    See the module docstring for the equations and the source of every parameter. Batched
    over ``n_subjects`` independent subjects; all random draws come from ``generator``.
    Keys are stored in float32 (binary codes: exact); cues, values and the cortex in float64.

    >>> g = torch.Generator().manual_seed(0)
    >>> m = Consolidation(2, generator=g)
    >>> c, v = unit_patterns((2, 1, 256), g), unit_patterns((2, 1, 64), g)
    >>> _ = m.experience(c, v)
    >>> bool(torch.allclose(m.recall(c).hippocampal, v))
    True
    """

    def __init__(
        self,
        n_subjects: int,
        *,
        d_cortex: int = 256,
        d_value: int = 64,
        n_slots: int = 200,
        n_units: int = 2000,
        active_fraction: float = 0.05,
        match_threshold: float = 0.5,
        hippocampal_decay: float = 0.01,
        replay_prob: float = 0.5,
        cortical_lr: float = 0.3,
        cortical_decay: float = 0.0,
        architecture: Literal["key-value", "content"] = "key-value",
        key_seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        for name, val in (
            ("n_subjects", n_subjects),
            ("d_cortex", d_cortex),
            ("d_value", d_value),
            ("n_slots", n_slots),
            ("n_units", n_units),
        ):
            if isinstance(val, bool) or int(val) != val or int(val) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {val!r}")
        for name, val in (
            ("match_threshold", match_threshold),
            ("replay_prob", replay_prob),
            ("cortical_lr", cortical_lr),
            ("cortical_decay", cortical_decay),
        ):
            if not (math.isfinite(val) and 0.0 <= val <= 1.0):
                raise ValueError(f"{name}: expected a value in [0, 1], got {val}")
        if not (math.isfinite(hippocampal_decay) and hippocampal_decay >= 0):
            raise ValueError(f"hippocampal_decay: expected a value >= 0, got {hippocampal_decay}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture: expected one of {ARCHITECTURES}, got {architecture!r}")
        self.n_subjects, self.d_cortex, self.d_value = int(n_subjects), int(d_cortex), int(d_value)
        self.n_slots = int(n_slots)
        self.match_threshold = float(match_threshold)
        self.hippocampal_decay = float(hippocampal_decay)
        self.replay_prob = float(replay_prob)
        self.cortical_lr = float(cortical_lr)
        self.cortical_decay = float(cortical_decay)
        self.architecture = architecture
        self.gen = generator if generator is not None else torch.Generator().manual_seed(0)
        dt = torch.float64
        s, n = self.n_subjects, self.n_slots
        self.encoder = ExpansionKWTAKeys(
            int(n_units), active_fraction, center="none", seed=key_seed
        )
        self.encoder.fit(torch.zeros(1, self.d_cortex, dtype=dt))
        # the content architecture's key is the raw cue (self.cues), so it stores no code
        d_key = int(n_units) if architecture == "key-value" else 1
        self.keys = torch.zeros(s, n, d_key, dtype=torch.float32)  # pattern-separated keys
        self.cues = torch.zeros(s, n, self.d_cortex, dtype=dt)  # reinstated cortical cue
        self.values = torch.zeros(s, n, self.d_value, dtype=dt)  # reinstated cortical value
        self.strength = torch.zeros(s, n, dtype=dt)  # g_n; 0 = empty or lost
        self.item = torch.full((s, n), -1, dtype=torch.long)  # which experience a slot holds
        self.n_written = 0
        self._M = torch.zeros(s, self.d_cortex, self.d_value, dtype=dt)
        self.lesioned = torch.zeros(s, dtype=torch.bool)

    # ---------------------------------------------------------------------------- writes
    def _check(self, x: torch.Tensor, d: int, name: str) -> torch.Tensor:
        if x.ndim != 3 or x.shape[0] != self.n_subjects or x.shape[-1] != d:
            raise ValueError(
                f"{name}: expected shape [{self.n_subjects}, n, {d}], got {list(x.shape)}"
            )
        return x.to(torch.float64)

    def _key(self, cues: torch.Tensor) -> torch.Tensor:
        """Hippocampal codes of cues ``[S, n, d_cortex] -> [S, n, n_units]`` (float32)."""
        return self.encoder(cues).to(torch.float32)

    def experience(self, cues: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """One-shot hippocampal writes of ``n`` experiences ``[S, n, d_cortex]``, ``[S, n,
        d_value]``; returns their item numbers ``[n]``. Each takes a random slot (overwriting
        what was there; of the experiences of one call that draw the same slot, the last
        wins, as if written in order). Lesioned subjects store nothing."""
        cues = self._check(cues, self.d_cortex, "cues")
        values = self._check(values, self.d_value, "values")
        s, n = cues.shape[0], cues.shape[1]
        if values.shape[1] != n:
            raise ValueError(f"values: expected {n} experiences like cues, got {values.shape[1]}")
        ids = torch.arange(self.n_written, self.n_written + n)
        self.n_written += n
        slot = torch.randint(0, self.n_slots, (s, n), generator=self.gen)
        # a write survives the call unless a later experience of the call takes its slot
        later = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)  # [j, j'] j' > j
        clash = ((slot[:, :, None] == slot[:, None, :]) & later).any(-1)
        keep = ~clash & ~self.lesioned[:, None]  # [S, n]; kept writes have distinct slots
        rows, cols = keep.nonzero(as_tuple=True)
        dst = slot[rows, cols]
        if self.architecture == "key-value":
            self.keys[rows, dst] = self._key(cues)[rows, cols]
        self.cues[rows, dst] = cues[rows, cols]
        self.values[rows, dst] = values[rows, cols]
        self.strength[rows, dst] = 1.0
        self.item[rows, dst] = ids[cols]
        return ids

    def sleep(self) -> None:
        """One night: replay of the hippocampal traces into cortex, then a day of decay.

        Each alive trace is reinstated with probability ``replay_prob``; the cortex takes a
        delta-rule step on ``(c_n, v_n)`` with rate ``cortical_lr * g_n`` (none for the
        content architecture or lesioned subjects). Then ``g <- g exp(-hippocampal_decay)``.
        """
        if self.cortical_decay > 0:
            self._M = self._M * (1.0 - self.cortical_decay)
        if self.architecture == "key-value" and self.replay_prob > 0 and self.cortical_lr > 0:
            draw = torch.rand(self.strength.shape, generator=self.gen, dtype=torch.float64)
            replay = (draw < self.replay_prob) & (self.strength > 0) & ~self.lesioned[:, None]
            # Only the replayed traces enter the (sequential) delta rule: a stable sort moves
            # them to the front in slot order; the rest of the padded block has rate 0.
            width = int(replay.sum(-1).max())
            if width > 0:
                order = torch.sort((~replay).to(torch.int8), dim=-1, stable=True).indices
                idx = order[:, :width]
                lr = torch.gather(self.cortical_lr * self.strength * replay, 1, idx)
                c = torch.gather(self.cues, 1, idx[..., None].expand(-1, -1, self.d_cortex))
                v = torch.gather(self.values, 1, idx[..., None].expand(-1, -1, self.d_value))
                mem = MatrixMemory(
                    self.d_cortex, self.d_value, rule="delta", M0=self._M, keep_pairs=False
                )
                mem.write(c, v, lr=lr)
                self._M = mem.M
        self.strength = self.strength * math.exp(-self.hippocampal_decay)

    def lesion(self, subjects: torch.Tensor | None = None) -> None:
        """Remove the hippocampus of ``subjects`` (a bool mask ``[S]``; all by default)."""
        mask = torch.ones_like(self.lesioned) if subjects is None else subjects.to(torch.bool)
        self.lesioned = self.lesioned | mask
        self.strength = torch.where(mask[:, None], 0.0, self.strength)

    # ---------------------------------------------------------------------------- reads
    @property
    def cortical_weights(self) -> torch.Tensor:
        """The cortical map ``M`` ``[S, d_cortex, d_value]``."""
        return self._M

    def recall(self, cues: torch.Tensor, lesion: bool | torch.Tensor = False) -> RecallReads:
        """Reads of both routes for cues ``[S, Q, d_cortex]``; ``lesion`` (bool or ``[S]``)
        removes the hippocampal route for this recall only (the model's state is kept)."""
        cues = self._check(cues, self.d_cortex, "cues")
        s = cues.shape[0]
        if self.architecture == "key-value":
            q, keys = self._key(cues), self.keys
        else:  # the content itself is the key: cosine of the cue and the stored cues
            q, keys = cues, self.cues
        hip = SlotMemory("dot", "hard_max")
        hip.write(keys, self.item[..., None].to(keys.dtype))  # the values are read below
        # the one-hot winner [S, Q, N] picks the float64 value (kept exact)
        v_hip = hip.attention(q).to(torch.float64) @ (self.strength[..., None] * self.values)
        match = hip.scores(q).amax(-1).to(torch.float64)  # best key match
        off = self.lesioned | torch.as_tensor(lesion, dtype=torch.bool).expand(s)
        gate = (match >= self.match_threshold - 1e-6) & ~off[:, None]
        v_hip = torch.where(gate[..., None], v_hip, 0.0)
        v_ctx = cues @ self._M
        combined = v_hip + v_ctx  # both routes drive the value units
        return RecallReads(hippocampal=v_hip, cortical=v_ctx, combined=combined, match=match)
