"""The registry of format-2 codings: a tensor's coding is stored as its index in :data:`CODINGS`.

To add an entropy model: write a module with a :class:`~hinerv.entropy.coding.Coding` subclass and
append one instance here (append only: the index is the stored code, 0..31).
"""

from __future__ import annotations

from hinerv.entropy.coding import Coding
from hinerv.entropy.context import ContextCoding
from hinerv.entropy.parametric import ChannelCoding, TensorCoding

__all__ = ["CODINGS", "coding_names"]

CODINGS: tuple[Coding, ...] = (
    TensorCoding(),
    ChannelCoding(),
    ContextCoding(),
)


def coding_names() -> tuple[str, ...]:
    """Names of the registered codings, in stored-code order."""
    return tuple(c.name for c in CODINGS)
