"""A linear-Gaussian generative model (probabilistic PCA): memory implicit in a model.

The contrast to a key-value memory (the seed review's second contrast): in predictive
processing nothing is stored per episode; a generative model is learned from the
episodes, and recall *reconstructs* the missing part of a cue from the model by inferring
its latent cause. Row vectors, as in docs/science.md: an observation ``x [D]``, a latent
``z [k]``, weights ``W [k, D]``:

    x = z W + mu + eps,      z ~ N(0, I_k),      eps ~ N(0, sigma^2 I_D).

Fit (maximum likelihood, Tipping & Bishop 1999, closed form; the fixed point that
gradient ascent on the likelihood reaches): with the data covariance's eigenvalues
``lambda_1 >= ... >= lambda_D`` and unit eigenvectors ``u_i``,

    sigma^2 = mean_{i > k} lambda_i   (floored, see ``FactorModel``),
    W = diag(sqrt(max(lambda_i - sigma^2, 0))) [u_1 .. u_k]^T.

Inference from a partial cue (observed entries ``o [D]`` in {0, 1}): the latent minimises
the free energy (squared prediction error on what is observed plus the prior)

    E(z) = 1/(2 sigma^2) |o * (x - mu - z W)|^2 + 1/2 |z|^2,

whose minimiser is the posterior mean ``z* = (W O W^T / sigma^2 + I)^(-1) W O (x - mu)^T /
sigma^2`` (``O = diag(o)``). :meth:`FactorModel.infer` reaches it by gradient steps on the
prediction error ``e = o * (x - mu - z W)``: ``z <- z + lr P (e W^T / sigma^2 - z)``, with
``P`` the inverse Hessian of the fully observed energy (a fixed metric; ``P = I`` gives
plain gradient descent, much slower when sigma^2 is small). The reconstruction is
``x_hat = z W + mu``: every entry, observed or not, comes from the model.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from kvmem.core.validation import as_float_tensor, check_int_at_least, shape_str

__all__ = ["FactorModel"]


class FactorModel:
    """Probabilistic PCA with ``n_latent`` latent dimensions (module docstring).

    Leading dimensions of the data index independent models (seeds), as elsewhere in
    kvmem. ``noise_floor`` bounds sigma^2 from below by ``noise_floor * tr(C) / D`` (with
    no more episodes than latents the ML noise variance is 0 and the model degenerate).
    """

    def __init__(self, n_latent: int, noise_floor: float = 1e-2) -> None:
        self.n_latent = check_int_at_least(n_latent, 1, "n_latent")
        f = float(noise_floor)
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"noise_floor: expected a finite value > 0, got {noise_floor!r}")
        self.noise_floor = f
        self.mean: torch.Tensor | None = None  # [..., D]
        self.weight: torch.Tensor | None = None  # [..., k, D]
        self.noise: torch.Tensor | None = None  # [...], sigma^2

    # ------------------------------------------------------------------ fit
    def fit(self, x: Any) -> FactorModel:
        """Maximum-likelihood fit on ``x [..., N, D]`` (N >= 1); returns ``self``."""
        data = as_float_tensor(x, "x", min_ndim=2, allow_integer=True)
        n, d = data.shape[-2], data.shape[-1]
        if n < 1 or d <= self.n_latent:
            raise ValueError(
                f"x: expected shape [..., N >= 1, D > n_latent = {self.n_latent}], "
                f"got shape {shape_str(data.shape)}"
            )
        mu = data.mean(-2)
        xc = (data - mu.unsqueeze(-2)).to(torch.float64)
        # eigenvalues of C = xc^T xc / N from the singular values of xc (rank <= min(N, D))
        _, sv, vh = torch.linalg.svd(xc, full_matrices=False)
        lam = sv.square() / n  # [..., r], descending
        k = self.n_latent
        r = lam.shape[-1]
        if r < k:  # fewer directions of variance than latents: pad with zero variance
            lam = torch.cat([lam, lam.new_zeros((*lam.shape[:-1], k - r))], -1)
            vh = torch.cat([vh, vh.new_zeros((*vh.shape[:-2], k - r, d))], -2)
        total = lam.sum(-1)
        rest = (total - lam[..., :k].sum(-1)).clamp_min(0.0) / (d - k)
        sigma2 = torch.maximum(rest, self.noise_floor * total / d).clamp_min(1e-12)
        scale = (lam[..., :k] - sigma2.unsqueeze(-1)).clamp_min(0.0).sqrt()
        self.weight = (scale.unsqueeze(-1) * vh[..., :k, :]).to(data.dtype)
        self.mean = mu
        self.noise = sigma2.to(data.dtype)
        return self

    def _fitted(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.weight is None or self.mean is None or self.noise is None:
            raise ValueError("model is not fitted: call fit(x) before inference")
        return self.weight, self.mean, self.noise

    def _cue(self, x: Any, observed: Any) -> tuple[torch.Tensor, torch.Tensor]:
        w, _, _ = self._fitted()
        c = as_float_tensor(x, "x", min_ndim=2, like=w, allow_integer=True)
        if c.shape[-1] != w.shape[-1]:
            raise ValueError(
                f"x: expected last dimension D = {w.shape[-1]}, got shape {shape_str(c.shape)}"
            )
        o = torch.as_tensor(observed, device=c.device)
        if o.dtype != torch.bool:
            raise TypeError(f"observed: expected a bool tensor, got dtype {o.dtype}")
        try:
            o = o.expand(c.shape)
        except RuntimeError:
            raise ValueError(
                f"observed: expected a shape broadcastable to x {shape_str(c.shape)}, "
                f"got shape {shape_str(o.shape)}"
            ) from None
        return c, o.to(c.dtype)

    # ------------------------------------------------------------------ inference
    def posterior_mean(self, x: Any, observed: Any) -> torch.Tensor:
        """Exact minimiser of E(z) for cues ``x [..., Q, D]``: latents ``[..., Q, k]``.

        ``observed``: bool, broadcastable to ``x`` (True = the entry is in the cue).
        """
        w, mu, s2 = self._fitted()
        c, o = self._cue(x, observed)
        s2 = s2[..., None, None]
        err = o * (c - mu.unsqueeze(-2))  # [..., Q, D]
        wo = w.unsqueeze(-3) * o.unsqueeze(-2)  # [..., Q, k, D]
        a = wo @ w.unsqueeze(-3).transpose(-1, -2) / s2[..., None]  # [..., Q, k, k]
        a = a + torch.eye(w.shape[-2], dtype=w.dtype, device=w.device)
        b = (err @ w.transpose(-1, -2)) / s2  # [..., Q, k]
        return torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)

    def infer(
        self,
        x: Any,
        observed: Any,
        steps: int = 50,
        lr: float | None = None,
        preconditioned: bool = True,
    ) -> torch.Tensor:
        """Latents ``[..., Q, k]`` by ``steps`` gradient steps on E(z) from z = 0.

        Each step: prediction error ``e = o * (x - mu - z W)``, then
        ``z <- z + lr P (e W^T / sigma^2 - z)``. ``preconditioned``: ``P = (W W^T / sigma^2
        + I)^(-1)`` and default ``lr = 1``; else ``P = I`` and default ``lr = 1 / L`` with
        ``L = 1 + lambda_max(W W^T) / sigma^2`` (the Hessian's largest eigenvalue for any
        cue), so both schemes descend E for every mask.
        """
        w, mu, s2 = self._fitted()
        c, o = self._cue(x, observed)
        steps = check_int_at_least(steps, 0, "steps")
        s2 = s2[..., None, None]
        wwt = w @ w.transpose(-1, -2)  # [..., k, k]
        eye = torch.eye(w.shape[-2], dtype=w.dtype, device=w.device)
        if preconditioned:
            p = torch.linalg.inv(wwt / s2 + eye)  # [..., k, k]
            rate = 1.0 if lr is None else float(lr)
        else:
            p = None
            big = torch.linalg.eigvalsh(wwt).amax(-1)[..., None, None] / s2 + 1.0
            rate = (1.0 / big) if lr is None else torch.as_tensor(float(lr), dtype=w.dtype)
        target = c - mu.unsqueeze(-2)
        z = torch.zeros((*c.shape[:-1], w.shape[-2]), dtype=w.dtype, device=w.device)
        for _ in range(steps):  # the settling dynamics of inference (one line per step)
            e = o * (target - z @ w)
            grad = (e @ w.transpose(-1, -2)) / s2 - z  # minus dE/dz
            z = z + rate * (grad @ p.transpose(-1, -2) if p is not None else grad)
        return z

    def reconstruct(self, z: Any) -> torch.Tensor:
        """``x_hat = z W + mu``: latents ``[..., Q, k]`` -> ``[..., Q, D]``."""
        w, mu, _ = self._fitted()
        zz = as_float_tensor(z, "z", min_ndim=2, like=w)
        if zz.shape[-1] != w.shape[-2]:
            raise ValueError(
                f"z: expected last dimension k = {w.shape[-2]}, got shape {shape_str(zz.shape)}"
            )
        return zz @ w + mu.unsqueeze(-2)

    def __repr__(self) -> str:
        return f"FactorModel(n_latent={self.n_latent}, noise_floor={self.noise_floor})"
