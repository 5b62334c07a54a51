"""The registry of experiments: name -> module (see ``kvmem.experiments.base``).

Adding an experiment is one new module in this package and one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kvmem.experiments.base import ConfigError

__all__ = ["REGISTRY", "GROUPS", "PAPER", "BEYOND", "get", "group_of", "names"]

REGISTRY: dict[str, str] = {
    # the paper's simulations (docs/science.md 3)
    "kv-optimization": "kvmem.experiments.paper.kv_optimization",
    "forgetting": "kvmem.experiments.paper.forgetting",
    # how much a memory holds and how well it reads
    "capacity": "kvmem.experiments.capacity.capacity",
    "scaffold-capacity": "kvmem.experiments.capacity.scaffold_capacity",
    "robustness": "kvmem.experiments.capacity.robustness",
    "generalization": "kvmem.experiments.capacity.generalization",
    "keys-vs-values": "kvmem.experiments.capacity.keys_vs_values",
    # forgetting as retrieval failure, against behavioural data
    "ab-ac": "kvmem.experiments.retrieval.ab_ac",
    "cued-recall": "kvmem.experiments.retrieval.cued_recall",
    "metamemory": "kvmem.experiments.retrieval.metamemory",
    "accessibility-precision": "kvmem.experiments.retrieval.accessibility_precision",
    "engram-reactivation": "kvmem.experiments.retrieval.engram_reactivation",
    # systems consolidation and key repulsion
    "consolidation": "kvmem.experiments.systems.consolidation",
    "repulsion": "kvmem.experiments.systems.repulsion",
    # free recall with context as the key
    "free-recall": "kvmem.experiments.recall.free_recall",
    # key-value memory against its rivals (the review's two contrasts)
    "value-cleanup": "kvmem.experiments.contrasts.value_cleanup",
    "episode-vs-gist": "kvmem.experiments.contrasts.episode_vs_gist",
    # memory layers in trained models
    "mqar": "kvmem.experiments.ml.mqar",
}

#: Experiments grouped by the question they answer, in report order: (heading, names).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("The paper's simulations", ("kv-optimization", "forgetting")),
    (
        "Capacity and retrieval quality",
        ("capacity", "scaffold-capacity", "robustness", "generalization", "keys-vs-values"),
    ),
    (
        "Forgetting as retrieval failure, against behavioural data",
        (
            "ab-ac",
            "cued-recall",
            "metamemory",
            "accessibility-precision",
            "engram-reactivation",
        ),
    ),
    ("Systems consolidation and key repulsion", ("consolidation", "repulsion")),
    ("Free recall with context as the key", ("free-recall",)),
    ("Key-value memory against its rivals", ("value-cleanup", "episode-vs-gist")),
    ("Memory layers in trained models", ("mqar",)),
)

PAPER = GROUPS[0][1]
BEYOND = tuple(n for _, names_ in GROUPS[1:] for n in names_)


def names() -> list[str]:
    """Registered experiment names, in registry order."""
    return list(REGISTRY)


def get(name: str) -> ModuleType:
    """Import and return the module of experiment ``name``.

    Raises ``ConfigError`` (a one-line message) for an unknown name.
    """
    if name not in REGISTRY:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name])


def group_of(name: str) -> str:
    """The heading of the group that experiment ``name`` belongs to."""
    for heading, members in GROUPS:
        if name in members:
            return heading
    raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(REGISTRY)}")
