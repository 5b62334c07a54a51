"""Circuit-level memory models with local plasticity (docs/science.md 1.3, 2)."""

from kvmem.bio.consolidation import Consolidation
from kvmem.bio.three_factor import ThreeFactorSlotMemory

__all__ = ["Consolidation", "ThreeFactorSlotMemory"]
