"""PyTorch modules and tools built on the core: gradient descent as a key-value memory."""

from kvmem.nn.attention import KeyValueAttention
from kvmem.nn.dual import Attribution, KeyValueTrace, LayerPairs
from kvmem.nn.fast_weights import FastWeightMemory, fast_weight_chunked, fast_weight_reference
from kvmem.nn.hopfield_layers import Hopfield, HopfieldLayer, HopfieldPooling
from kvmem.nn.recorder import SGDRecorder

__all__ = [
    "Attribution",
    "FastWeightMemory",
    "Hopfield",
    "HopfieldLayer",
    "HopfieldPooling",
    "KeyValueAttention",
    "KeyValueTrace",
    "LayerPairs",
    "SGDRecorder",
    "fast_weight_chunked",
    "fast_weight_reference",
]
