"""KeyValueTrace.save / KeyValueTrace.load: safetensors only, exact round trip."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from safetensors.torch import save_file
from torch import nn

from kvmem.nn.dual import TRACE_FORMAT, KeyValueTrace
from kvmem.nn.recorder import SGDRecorder


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(12, 16),
        nn.ReLU(),
        nn.Linear(16, 10, bias=False),
        nn.Tanh(),
        nn.Linear(10, 3),
    ).double()


@pytest.fixture(scope="module")
def recorded() -> tuple[nn.Module, KeyValueTrace, dict[str, torch.Tensor]]:
    """A tiny float64 MLP trained on two registered datasets (first-layer keys stored by
    reference, hidden keys as copies), tagged by epoch (int) and phase (str)."""
    g = torch.Generator().manual_seed(1)
    xa, ya = torch.randn(60, 12, generator=g, dtype=torch.float64), torch.randint(0, 3, (60,))
    xb, yb = torch.randn(40, 12, generator=g, dtype=torch.float64), torch.randint(0, 3, (40,))
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    rec = SGDRecorder(net, optimizer=opt)
    rec.register_dataset("a", xa, ya)
    rec.register_dataset("b", xb, yb)
    with rec:
        for epoch, (x, y) in enumerate([(xa, ya), (xa, ya), (xb, yb)]):
            rec.set_tags(epoch=epoch + 1, phase="first" if epoch < 2 else "second")
            order = torch.randperm(len(x), generator=g)
            for start in range(0, len(x), 16):
                i = order[start : start + 16]
                opt.zero_grad()
                F.cross_entropy(net(x[i]), y[i]).backward()
                opt.step()
    mem = rec.trace()
    assert mem.count("dataset", layer="0") == {"a": 120, "b": 40}
    assert max(mem.max_abs_error(net).values()) < 1e-12
    return net, mem, {"a": xa, "b": xb}


def _views(mem: KeyValueTrace) -> list[KeyValueTrace]:
    return [
        mem,
        mem.scale(1.7, epoch=2),
        mem.scale(2.5, phase="second", include_initial=True),
        mem.delete(label=0),
        mem.keep(phase="first", layer="0"),
        mem.delete(dataset="b").with_initial(0.5, layer="4"),
        mem.scale(0.3, example_index=range(10)).scale(3.0, step=lambda s: s % 2 == 0),
    ]


def assert_same(a: KeyValueTrace, b: KeyValueTrace, net: nn.Module) -> None:
    """Every tensor and every public query of ``a`` and ``b`` are equal.

    ``weight`` assembles sums from cached partial sums of earlier queries (summation order
    can differ by an ulp), so both caches start empty and see the same queries."""
    a.clear_cache()
    b.clear_cache()
    assert a.layers == b.layers and a.n_steps == b.n_steps and len(a) == len(b)
    assert a.tag_names() == b.tag_names() and a.nbytes == b.nbytes
    assert [d.name for d in a.datasets] == [d.name for d in b.datasets]
    for da, db in zip(a.datasets, b.datasets, strict=True):
        assert torch.equal(da.x, db.x) and da.x.dtype == db.x.dtype
        assert torch.equal(da.labels, db.labels)
    for layer in a.layers:
        pa, pb = a.pairs(layer), b.pairs(layer)
        assert pa.dtype == pb.dtype and pa.has_bias == pb.has_bias
        for name in ("weight0", "grad", "value_scale", "bias_scale", "key_source", "key_row"):
            ta, tb = getattr(pa, name), getattr(pb, name)
            assert ta.dtype == tb.dtype and torch.equal(ta, tb), name
        assert torch.equal(pa.key_copies, pb.key_copies)
        assert pa.bias0 is None and pb.bias0 is None or torch.equal(pa.bias0, pb.bias0)
        assert list(pa.fields) == list(pb.fields)
        assert all(torch.equal(pa.fields[k], pb.fields[k]) for k in pa.fields)
        assert list(pa.tags) == list(pb.tags)
        for k, (codes, cats) in pa.tags.items():
            assert torch.equal(codes, pb.tags[k][0]) and cats == pb.tags[k][1]
        assert torch.equal(a.keys(layer), b.keys(layer))
        assert torch.equal(a.values(layer), b.values(layer))
        assert list(a.field(layer, "phase")) == list(b.field(layer, "phase"))
        assert torch.equal(a.field(layer, "epoch"), b.field(layer, "epoch"))
        assert torch.equal(a.scale_of(layer), b.scale_of(layer))
        assert a.initial_scale(layer) == b.initial_scale(layer)
    for by in ("epoch", "phase", "label", "dataset", "visit", "example_index"):
        assert a.count(by) == b.count(by)
    assert a.count("label", layer="2", phase="first") == b.count("label", layer="2", phase="first")
    q = torch.randn(5, 12, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for va, vb in zip(_views(a), _views(b), strict=True):
        for layer in a.layers:
            Wa, ba = va.weight(layer, with_bias=True)
            Wb, bb = vb.weight(layer, with_bias=True)
            assert torch.equal(Wa, Wb) and (ba is None and bb is None or torch.equal(ba, bb))
        h = torch.randn(4, 16, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
        assert torch.equal(va.read("2", h), vb.read("2", h))
        assert torch.equal(va.read("0", q), vb.read("0", q))
        assert torch.equal(va.dual_forward(net, q), vb.dual_forward(net, q))
        assert va.max_abs_error(net) == vb.max_abs_error(net)
    for by in ("example", "pair"):
        ra, rb = a.attribute(net, q[0], by=by), b.attribute(net, q[0], by=by)
        assert (ra.target, ra.output, ra.total, ra.initial) == (
            rb.target,
            rb.output,
            rb.total,
            rb.initial,
        )
        for name in ("scores", "example_index", "label", "pair_index"):
            assert torch.equal(getattr(ra, name), getattr(rb, name)), name
        assert ra.dataset == rb.dataset and ra.layer == rb.layer and ra.top(5) == rb.top(5)


def test_round_trip_self_contained(recorded, tmp_path):
    net, mem, data = recorded
    path = tmp_path / "trace.safetensors"
    mem.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["trace.safetensors"]  # no temp left
    loaded = KeyValueTrace.load(path)
    assert_same(mem, loaded, net)
    # the datasets come from the file, not from the caller's tensors
    assert loaded.datasets[0].x.data_ptr() != data["a"].data_ptr()
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(header_len))["__metadata__"]
    assert meta["kvmem_format"] == TRACE_FORMAT == "kvmem-trace-1"
    assert all(isinstance(v, str) for v in meta.values())
    info = json.loads(meta["kvmem_trace"])
    assert [d["name"] for d in info["datasets"]] == ["a", "b"]
    assert [m["name"] for m in info["layers"]] == ["0", "2", "4"]


def test_round_trip_by_reference(recorded, tmp_path):
    net, mem, data = recorded
    full, ref = tmp_path / "full.safetensors", tmp_path / "ref.safetensors"
    mem.save(full)
    mem.save(ref, include_datasets=False)
    ds_bytes = sum(x.numel() * x.element_size() for x in data.values())
    assert os.path.getsize(full) - os.path.getsize(ref) >= ds_bytes
    tensors = st_load(ref.read_bytes())
    assert not any(k.endswith(".x") for k in tensors)
    loaded = KeyValueTrace.load(ref, datasets=data)
    assert_same(mem, loaded, net)
    # the given tensors are used by reference, as the recorder does
    assert loaded.datasets[0].x.data_ptr() == data["a"].data_ptr()
    # a self-contained file also accepts the caller's (identical) tensors
    shared = KeyValueTrace.load(full, datasets={"b": data["b"]})
    assert shared.datasets[1].x.data_ptr() == data["b"].data_ptr()
    mem.clear_cache()
    assert torch.equal(shared.weight("0"), mem.weight("0"))


def test_edited_view_round_trips(recorded, tmp_path):
    net, mem, data = recorded
    view = mem.scale(2.0, epoch=1).delete(label=2, layer="4").with_initial(0.25)
    view.save(tmp_path / "v.safetensors", include_datasets=False)
    loaded = KeyValueTrace.load(tmp_path / "v.safetensors", datasets=data)
    assert_same(view, loaded, net)
    assert torch.equal(loaded.reset().weight("0"), mem.weight("0"))


def test_missing_or_wrong_dataset(recorded, tmp_path):
    _, mem, data = recorded
    path = tmp_path / "ref.safetensors"
    mem.save(path, include_datasets=False)
    with pytest.raises(ValueError, match="'a'.*include_datasets=False"):
        KeyValueTrace.load(path)
    with pytest.raises(ValueError, match="'b'"):
        KeyValueTrace.load(path, datasets={"a": data["a"]})
    changed = data["b"].clone()
    changed[3, 4] += 1e-12
    with pytest.raises(ValueError, match="'b' differs"):
        KeyValueTrace.load(path, datasets={"a": data["a"], "b": changed})
    with pytest.raises(ValueError, match=r"'b' expected shape \[40, 12\]"):
        KeyValueTrace.load(path, datasets={"a": data["a"], "b": data["b"][:5]})
    with pytest.raises(ValueError, match="no dataset named 'c'"):
        KeyValueTrace.load(path, datasets={**data, "c": data["a"]})
    mem.save(tmp_path / "full.safetensors")
    with pytest.raises(ValueError, match="'a' differs"):
        KeyValueTrace.load(tmp_path / "full.safetensors", datasets={"a": data["a"] * 2})


def test_not_a_trace(recorded, tmp_path):
    _, mem, _ = recorded
    from kvmem.core.persistence import save as save_memory
    from kvmem.core.slot_memory import SlotMemory

    cases = {
        "empty.bin": b"",
        "text.txt": b"hello, not a trace at all\n",
        "plain.safetensors": st_save({"w": torch.ones(3)}),
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    slot = SlotMemory()
    slot.write(torch.eye(2), torch.ones(2, 3))
    save_memory(slot, tmp_path / "memory.safetensors")
    for name in [*cases, "memory.safetensors"]:
        with pytest.raises(ValueError, match="not a kvmem trace"):
            KeyValueTrace.load(tmp_path / name)

    # a real trace with an unknown format version
    good = tmp_path / "good.safetensors"
    mem.save(good)
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(tmp_path / "v2.safetensors"), {**meta, "kvmem_format": "kvmem-trace-2"})
    with pytest.raises(ValueError, match="unknown format version 'kvmem-trace-2'"):
        KeyValueTrace.load(tmp_path / "v2.safetensors")
    # inconsistent files are ValueErrors too, never IndexErrors later (written without the
    # checksum, which would refuse them first, to test the structural checks behind it)
    meta = {k: v for k, v in meta.items() if k != "kvmem_sha256"}
    broken = dict(tensors)
    del broken["layer1.grad"]
    save_file(broken, str(tmp_path / "b1.safetensors"), meta)
    with pytest.raises(ValueError, match="corrupt kvmem trace.*layer1.grad"):
        KeyValueTrace.load(tmp_path / "b1.safetensors")
    broken = {**tensors, "layer0.key_row": tensors["layer0.key_row"] + 1000}
    save_file(broken, str(tmp_path / "b2.safetensors"), meta)
    with pytest.raises(ValueError, match="corrupt kvmem trace.*key_row"):
        KeyValueTrace.load(tmp_path / "b2.safetensors")
    save_file(tensors, str(tmp_path / "b3.safetensors"), {**meta, "kvmem_trace": "{"})
    with pytest.raises(ValueError, match="corrupt kvmem trace"):
        KeyValueTrace.load(tmp_path / "b3.safetensors")


def test_never_unpickles(recorded, tmp_path, monkeypatch):
    net, mem, data = recorded
    good = tmp_path / "trace.safetensors"
    mem.save(good)
    (tmp_path / "evil.pt").write_bytes(b"")
    torch.save({"trace": torch.ones(3)}, tmp_path / "evil.pt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"layers": [1, 2, 3]}))

    def refuse(*args, **kwargs):
        raise AssertionError("KeyValueTrace.load must never unpickle")

    class Refuse(pickle.Unpickler):
        def __init__(self, *args, **kwargs):
            refuse()

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", Refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(np, "load", refuse)
    loaded = KeyValueTrace.load(good)
    mem.clear_cache()  # weight() reuses cached partial sums: start both from the same state
    assert torch.equal(loaded.weight("2"), mem.weight("2"))
    assert torch.equal(
        loaded.dual_forward(net, data["a"][:3]), mem.dual_forward(net, data["a"][:3])
    )
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(ValueError, match="not a kvmem trace"):
            KeyValueTrace.load(tmp_path / name)


def test_save_overwrites_atomically(recorded, tmp_path):
    _, mem, _ = recorded
    path = tmp_path / "sub" / "trace.safetensors"
    mem.save(path, include_datasets=False)
    small = os.path.getsize(path)
    mem.delete(epoch=1).save(path)  # replaces the earlier file in place
    assert os.path.getsize(path) > small
    assert sorted(p.name for p in path.parent.iterdir()) == ["trace.safetensors"]
    assert KeyValueTrace.load(path).count("epoch", layer="0") == mem.count("epoch", layer="0")


def test_loaded_trace_does_not_alias_the_file(recorded, tmp_path):
    _, mem, _ = recorded
    path = tmp_path / "trace.safetensors"
    mem.save(path)
    loaded = KeyValueTrace.load(path)
    before = loaded.pairs("0").grad.clone()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # overwrite in place (what cp does), not an atomic replace
        f.write(bytes(size))
    assert torch.equal(loaded.pairs("0").grad, before)
