"""The blog's attention demo with ``kvmem.nn.KeyValueAttention`` (T=5, d_model=6, d_k=d_v=4).

``numpy.random.default_rng(0)`` draws X [5, 6], then W_q, W_k, W_v [6, 4] with ``rng.normal``;
scores ``Q K^T / sqrt(d_k)``, row softmax, ``out = attn V``. The layer is loaded with those
weights (``nn.Linear`` stores ``W^T``) and run; each output row is then read the dual way:
a weighted sum of the stored values, weighted by how well that token's query matches each key.

Run: ``python examples/attention_demo.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from kvmem.nn import KeyValueAttention

T, D_MODEL, D_K = 5, 6, 4


def draw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X, W_q, W_k, W_v in the blog's order."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(T, D_MODEL))
    W_q = rng.normal(size=(D_MODEL, D_K))
    W_k = rng.normal(size=(D_MODEL, D_K))
    W_v = rng.normal(size=(D_MODEL, D_K))
    return X, W_q, W_k, W_v


def build_layer(W_q: np.ndarray, W_k: np.ndarray, W_v: np.ndarray) -> KeyValueAttention:
    """A float64 single-head ``KeyValueAttention`` without output projection, weights loaded."""
    layer = KeyValueAttention(D_MODEL, D_K, out_proj=False).double()
    with torch.no_grad():
        layer.W_q.weight.copy_(torch.from_numpy(W_q.T))
        layer.W_k.weight.copy_(torch.from_numpy(W_k.T))
        layer.W_v.weight.copy_(torch.from_numpy(W_v.T))
    return layer


def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(attention weights [T, T], outputs [T, d_v], stored values V [T, d_v]) from the layer."""
    X, W_q, W_k, W_v = draw()
    layer = build_layer(W_q, W_k, W_v)
    x = torch.from_numpy(X)[None]
    with torch.no_grad():
        out, w = layer(x, return_weights=True)
        _, _, v = layer.project(x)
    return w[0, 0].numpy(), out[0].numpy(), v[0, 0].numpy()


def main() -> None:
    np.set_printoptions(precision=3, suppress=True)
    attn, out, V = compute()
    print("attention weights (row t: how much token t reads each stored value):")
    print(attn)
    print("argmax per row:", attn.argmax(axis=1))
    print("\nstored values V (row n: the content v_n that memory n returns):")
    print(V)
    print("\nDual reading: each token's query is matched against every stored key (its")
    print("address); the output is a weighted sum of the stored values v_n,")
    print("out_t = sum_n attn[t, n] v_n, the weights being query-key matches.")
    for t in range(T):
        terms = " + ".join(f"{attn[t, n]:.2f}*v{n}" for n in range(T))
        print(f"out_{t} = {terms} = {out[t]}  (mostly v{attn[t].argmax()})")


if __name__ == "__main__":
    main()
