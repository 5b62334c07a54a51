"""examples/attention_demo.py: the blog's numpy attention example, run through KeyValueAttention."""

from __future__ import annotations

import importlib.util
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "attention_demo.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("attention_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numpy_blog():
    """The blog's computation, written out independently in numpy."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 6))
    W_q, W_k, W_v = (rng.normal(size=(6, 4)) for _ in range(3))
    Q, K, V = X @ W_q, X @ W_k, X @ W_v
    scores = Q @ K.T / np.sqrt(4)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    attn = e / e.sum(axis=1, keepdims=True)
    return attn, attn @ V, V


def test_layer_equals_the_numpy_computation(demo) -> None:
    attn, out, V = demo.compute()
    ref_attn, ref_out, ref_V = _numpy_blog()
    assert attn.shape == (5, 5) and out.shape == (5, 4)
    np.testing.assert_allclose(attn, ref_attn, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out, ref_out, atol=1e-6, rtol=0)
    np.testing.assert_allclose(V, ref_V, atol=1e-12, rtol=0)
    assert (attn.argmax(axis=1) == ref_attn.argmax(axis=1)).all()
    # the default forward (scaled_dot_product_attention) gives the same outputs
    import torch

    X, W_q, W_k, W_v = demo.draw()
    with torch.no_grad():
        fast = demo.build_layer(W_q, W_k, W_v)(torch.from_numpy(X)[None])[0].numpy()
    np.testing.assert_allclose(fast, ref_out, atol=1e-6, rtol=0)


def test_script_prints_the_dual_reading(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(DEMO)])
    runpy.run_path(str(DEMO), run_name="__main__")
    text = capsys.readouterr().out
    ref_attn, _, _ = _numpy_blog()
    assert "argmax per row: [" + " ".join(str(i) for i in ref_attn.argmax(axis=1)) + "]" in text
    assert "Dual reading" in text and "stored values V" in text
    # one line per token: out_t = sum_n attn[t, n] * v_n, with the weights shown
    lines = [ln for ln in text.splitlines() if re.match(r"out_\d = ", ln)]
    assert len(lines) == 5
    for t, line in enumerate(lines):
        shown = [float(w) for w in re.findall(r"([0-9.]+)\*v\d", line)]
        np.testing.assert_allclose(shown, ref_attn[t], atol=0.006)
        assert f"(mostly v{ref_attn[t].argmax()})" in line
