"""Damaged files are refused, bad paths and devices are one-line errors (issue 14)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kvmem.core.checksum import CHECKSUM_KEY, content_digest
from kvmem.core.persistence import load, save
from kvmem.core.slot_memory import SlotMemory
from kvmem.nn.dual import KeyValueTrace
from kvmem.nn.recorder import SGDRecorder


def _memory() -> SlotMemory:
    g = torch.Generator().manual_seed(0)
    mem = SlotMemory(separation="softmax", beta=4.0)
    mem.write(torch.randn(16, 8, generator=g), torch.randn(16, 5, generator=g))
    return mem


@pytest.fixture(scope="module")
def trace() -> KeyValueTrace:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(24, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (24,))
    rec = SGDRecorder(net, optimizer=opt)
    rec.register_dataset("train", x, y)
    with rec:
        for epoch in (1, 2):
            rec.set_tags(epoch=epoch)
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    return rec.trace()


def _flip(path, offset_from_end: int) -> None:
    blob = bytearray(path.read_bytes())
    blob[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(blob))


def _header_len(path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def test_memory_file_with_a_flipped_tensor_byte_is_refused(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    save(_memory(), path)
    assert torch.equal(load(path).keys, _memory().keys)
    _flip(path, 3)  # inside the last tensor's data
    with pytest.raises(ValueError, match=r"m\.safetensors.*corrupt.*checksum"):
        load(path)


def test_memory_file_with_a_changed_metadata_value_is_refused(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    save(_memory(), path)
    blob = path.read_bytes()
    n = _header_len(path)
    header = blob[8 : 8 + n].replace(b'\\"beta\\": 4.0', b'\\"beta\\": 5.0')
    assert header != blob[8 : 8 + n]
    path.write_bytes(blob[:8] + header + blob[8 + n :])
    with pytest.raises(ValueError, match="corrupt.*checksum"):
        load(path)


def test_trace_with_a_flipped_byte_is_refused(trace, tmp_path) -> None:
    path = tmp_path / "t.safetensors"
    trace.save(path)
    KeyValueTrace.load(path)
    _flip(path, 5)
    with pytest.raises(ValueError, match=r"t\.safetensors.*corrupt.*checksum"):
        KeyValueTrace.load(path)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=3),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bfloat16]),
)
def test_digest_changes_with_any_single_element(shape, dtype) -> None:
    t = torch.arange(int(torch.tensor(shape).prod()) if shape else 1).reshape(shape).to(dtype)
    meta = {"a": "1"}
    d = content_digest({"x": t}, meta)
    assert d == content_digest({"x": t.clone()}, {**meta, CHECKSUM_KEY: "ignored"})
    assert d != content_digest({"y": t}, meta)
    assert d != content_digest({"x": t}, {"a": "2"})
    if t.numel():
        u = t.clone().reshape(-1)
        u[-1] = u[-1] + 1
        assert d != content_digest({"x": u.reshape(t.shape)}, meta)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", 3.5])
def test_bad_device_is_named(tmp_path, device) -> None:
    path = tmp_path / "m.safetensors"
    save(_memory(), path)
    with pytest.raises(ValueError, match=r"device: .* is not a torch device"):
        load(path, device=device)


def test_directory_and_missing_paths(tmp_path, trace) -> None:
    with pytest.raises(ValueError, match="is a directory, not a kvmem file"):
        load(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load(tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="is a directory"):
        KeyValueTrace.load(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        KeyValueTrace.load(tmp_path / "nope.safetensors")
    target = tmp_path / "missing" / "m.safetensors"  # created, as for traces and results
    save(_memory(), target)
    assert torch.equal(load(target).keys, _memory().keys)
    trace.save(tmp_path / "missing2" / "t.safetensors")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"cannot create the folder of .*file\.txt/m") as err:
        save(_memory(), blocker / "m.safetensors")
    assert ".tmp" not in str(err.value)
    with pytest.raises(ValueError, match="is a directory"):
        save(_memory(), tmp_path)


def test_scale_selecting_nothing_names_the_recorded_values(trace) -> None:
    with pytest.raises(ValueError, match=r"epoch=99 \(recorded: 1, 2\)"):
        trace.scale(2.0, epoch=99)
    with pytest.raises(ValueError, match="select no pairs"):
        trace.delete(epoch=[7, 8])
    # a selection that matches in some layer is fine, as is scaling everything
    assert trace.scale(2.0, epoch=1).n_steps == trace.n_steps
    trace.scale(2.0)
