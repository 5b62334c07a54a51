"""Save and load memories with safetensors (no pickle): ``save(memory, path)``, ``load(path)``.

A kvmem file is a safetensors file whose tensors are ``memory.state_tensors()`` and whose
metadata holds ``kvmem_class`` (the class name), ``kvmem_config`` (``memory.state_config()`` as
JSON), ``kvmem_version`` and ``kvmem_sha256`` (a checksum of every tensor and metadata string,
verified on load, so a damaged file is refused instead of loading with other numbers).
``load`` looks the class up in a fixed table of kvmem classes and calls
``from_state(config, tensors)`` (the persistence protocol of ``docs/architecture.md``), so
loading a file never runs code named by the file.

>>> import torch, tempfile, os
>>> from kvmem.core.slot_memory import SlotMemory
>>> mem = SlotMemory(separation="hard_max")
>>> mem.write(torch.eye(2), torch.ones(2, 3))
>>> path = os.path.join(tempfile.mkdtemp(), "mem.safetensors")
>>> save(mem, path)
>>> torch.equal(load(path).keys, mem.keys)
True
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import tempfile
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from kvmem._version import __version__
from kvmem.core.checksum import CHECKSUM_KEY, content_digest, verify_digest

__all__ = ["save", "load", "MEMORY_CLASSES"]

MEMORY_CLASSES: dict[str, str] = {
    "SlotMemory": "kvmem.core.slot_memory",
    "MatrixMemory": "kvmem.core.matrix_memory",
    "ClassicalHopfield": "kvmem.core.hopfield",
    "DenseAssociativeMemory": "kvmem.core.dense_associative",
    "ModernHopfield": "kvmem.core.modern_hopfield",
    "SparseDistributedMemory": "kvmem.core.sparse_distributed",
    "PseudoInverseHopfield": "kvmem.core.pinv_hopfield",
    "MESH": "kvmem.core.mesh",
    "VectorHaSH": "kvmem.core.vector_hash",
}
"""Class name -> module: the only classes ``load`` will construct."""


def save(memory: Any, path: str | os.PathLike[str]) -> None:
    """Write ``memory`` to ``path`` as a safetensors file with kvmem metadata, atomically.

    Tensors are copied to CPU (contiguous, detached); dtypes and shapes are kept exactly. The file
    is written to a temporary file in the same folder (created when missing) and moved into
    place with ``os.replace``, so a crash never leaves a half-written file at ``path``. A
    memory built from a user callable raises ``ValueError`` (its ``state_config`` cannot
    name the callable).
    """
    cls_name = type(memory).__name__
    if cls_name not in MEMORY_CLASSES:
        raise ValueError(
            f"memory: cannot save a {cls_name}; kvmem files hold one of "
            + ", ".join(MEMORY_CLASSES)
        )
    if not all(hasattr(memory, a) for a in ("state_tensors", "state_config")):
        raise ValueError(f"memory: {cls_name} does not implement state_tensors() / state_config()")
    config = memory.state_config()  # raises ValueError for user callables
    try:
        config_json = json.dumps(config, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"memory: its configuration cannot be written as JSON ({err})") from None
    tensors: dict[str, torch.Tensor] = {}
    for name, t in memory.state_tensors().items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"memory: state tensor {name!r} is a {type(t).__name__}, not a tensor")
        # clone: safetensors refuses tensors that share storage (e.g. keys is values)
        tensors[name] = t.detach().to("cpu").contiguous().clone()
    metadata = {
        "kvmem_class": cls_name,
        "kvmem_config": config_json,
        "kvmem_version": __version__,
    }
    metadata[CHECKSUM_KEY] = content_digest(tensors, metadata)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"path: {path!r} is a directory; give a file name to save to")
    try:  # as traces and results do: a missing folder is created
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ValueError(f"path: cannot create the folder of {path!r} ({err.strerror})") from None
    fd, tmp = tempfile.mkstemp(prefix=".kvmem-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def load(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Any:
    """Read a memory written by ``save``; tensors go to ``device`` (default CPU).

    Only safetensors is used (never pickle). A file that is not safetensors, lacks the kvmem
    metadata, names a class outside ``MEMORY_CLASSES``, or whose checksum does not match its
    content raises ``ValueError``; so do a missing path, a directory and a ``device`` that is
    not a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
    """
    path = os.fspath(path)
    device = check_device(device)
    check_readable(path)
    try:
        # read on CPU: the checksum is over the stored bytes, then move
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except SafetensorError as err:
        raise ValueError(f"path: {path!r} is not a safetensors file ({err})") from None
    verify_digest(tensors, metadata, f"path: {path!r}")
    if device.type != "cpu":
        tensors = {name: t.to(device) for name, t in tensors.items()}
    if "kvmem_class" not in metadata or "kvmem_config" not in metadata:
        raise ValueError(
            f"path: {path!r} is not a kvmem file (no kvmem_class / kvmem_config metadata)"
        )
    cls_name = metadata["kvmem_class"]
    if cls_name not in MEMORY_CLASSES:
        raise ValueError(
            f"path: {path!r} holds an unknown kvmem class {cls_name!r}; known: "
            + ", ".join(MEMORY_CLASSES)
        )
    try:
        config = json.loads(metadata["kvmem_config"])
    except json.JSONDecodeError as err:
        raise ValueError(f"path: {path!r} has a corrupt kvmem_config ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(f"path: {path!r} has a kvmem_config that is not a JSON object")
    module = importlib.import_module(MEMORY_CLASSES[cls_name])
    cls = getattr(module, cls_name)
    return cls.from_state(config, tensors)


def check_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``, or a one-line ``ValueError`` naming the bad value."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device: {device!r} is not a torch device; use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from None


def check_readable(path: str) -> None:
    """One-line ``ValueError`` for a path that is missing or a directory."""
    if not os.path.exists(path):
        raise ValueError(f"path: {path!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"path: {path!r} is a directory, not a kvmem file")
