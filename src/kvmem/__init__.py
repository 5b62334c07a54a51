"""kvmem: key-value memory models of the brain.

Implements, reproduces and extends Gershman, Fiete & Irie, "Key-value memory in the
brain" (Neuron 2025). See ``docs/science.md`` sections cited in each docstring.

>>> import kvmem
>>> mem = kvmem.SlotMemory(similarity="dot", separation="softmax", beta=8.0)
"""

from __future__ import annotations

import importlib
from typing import Any

from kvmem._version import __version__

_EXPORTS: dict[str, str] = {
    "SlotMemory": "kvmem.core.slot_memory",
    "MatrixMemory": "kvmem.core.matrix_memory",
    "ClassicalHopfield": "kvmem.core.hopfield",
    "DenseAssociativeMemory": "kvmem.core.dense_associative",
    "ModernHopfield": "kvmem.core.modern_hopfield",
    "SparseDistributedMemory": "kvmem.core.sparse_distributed",
    "PseudoInverseHopfield": "kvmem.core.pinv_hopfield",
    "MESH": "kvmem.core.mesh",
    "VectorHaSH": "kvmem.core.vector_hash",
    "save": "kvmem.core.persistence",
    "load": "kvmem.core.persistence",
    "Result": "kvmem.results",
    "SGDRecorder": "kvmem.nn.recorder",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kvmem' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
