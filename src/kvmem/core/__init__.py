"""The mathematics of memory as plain, batched tensor code (docs/science.md 1).

Names are imported lazily so ``import kvmem.core`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    "get_similarity": "kvmem.core.similarity",
    "get_separation": "kvmem.core.separation",
    "SIMILARITIES": "kvmem.core.similarity",
    "SEPARATIONS": "kvmem.core.separation",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kvmem.core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
