"""A checksum over a safetensors file's content: every tensor and every metadata string.

``save`` stores ``content_digest(tensors, metadata)`` under the metadata key
``kvmem_sha256``; ``load`` recomputes it and refuses a file whose content changed (a flipped
byte in a tensor or in the JSON metadata), naming the file. Files written before the
checksum existed carry no key and load unchecked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

__all__ = ["CHECKSUM_KEY", "content_digest", "verify_digest"]

CHECKSUM_KEY = "kvmem_sha256"


def content_digest(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """SHA-256 (hex) of the tensors (name, dtype, shape, row-major bytes) and the metadata.

    Names are visited in sorted order, so the digest does not depend on dict order; the
    checksum key itself is left out of the metadata hashed.
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    for key in sorted(k for k in metadata if k != CHECKSUM_KEY):
        h.update(f"{key}\0{metadata[key]}\0".encode())
    return h.hexdigest()


def verify_digest(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], where: str
) -> None:
    """Raise ``ValueError`` naming ``where`` when the stored checksum does not match."""
    stored = metadata.get(CHECKSUM_KEY)
    if stored is None:
        return
    if content_digest(tensors, metadata) != stored:
        raise ValueError(
            f"{where} is corrupt: its content does not match the checksum written when it "
            "was saved (the file was changed or damaged)"
        )
