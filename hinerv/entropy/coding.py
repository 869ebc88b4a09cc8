"""The codings of format 2: how a tensor's integers are split over entropy models.

A :class:`Coding` decides which models a tensor carries (:meth:`~Coding.fit`, encoder side), in which
order its integers are range-coded (:meth:`~Coding.encode` / :meth:`~Coding.decode`) and how one
model is stored in the MODELS section. The codings a stream may use are listed, in the order of their
stored code, in :data:`hinerv.entropy.registry.CODINGS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from hinerv.entropy.coder import StreamDecoder, StreamEncoder

__all__ = ["Coding", "View"]

View = tuple[int, int] | None
"""``(T, R)``: a feature grid viewed as ``[T, R, size / (T R)]`` (time slices, rows), or None."""


class Coding(ABC):
    """One way of coding the integers ``q`` (``|q| <= M``, ``M >= 1``) of a non-empty tensor.

    Attributes:
        name: the name in stream summaries and in ``CodedTensor.coding``.
        needs_view: the tensor carries a context view ``(T, R)`` (stored in the header).
        model_bytes: bytes of one model in the MODELS section.
    """

    name: str = ""
    needs_view: bool = False
    model_bytes: int = 2

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether a tensor of ``shape`` may use this coding (checked when reading a header)."""
        return True

    @abstractmethod
    def n_models(self, shape: tuple[int, ...]) -> int:
        """Models a non-empty tensor of ``shape`` carries."""

    @abstractmethod
    def fit(self, q: np.ndarray, max_abs: int, view: View) -> tuple[float, list[Any]] | None:
        """``(payload bits + model bits, models)`` for ``q``, or None when not applicable."""

    @abstractmethod
    def encode(self, enc: StreamEncoder, q: np.ndarray, models: list[Any], view: View) -> None:
        """Append ``q`` to the range coder."""

    @abstractmethod
    def decode(self, dec: StreamDecoder, shape: tuple[int, ...], models: list[Any], view: View) -> np.ndarray:
        """Inverse of :meth:`encode`: integers of ``shape``."""

    @abstractmethod
    def write_model(self, model: Any) -> bytes:
        """The ``model_bytes`` bytes of one model."""

    @abstractmethod
    def read_model(self, max_abs: int, data: bytes) -> Any:
        """Inverse of :meth:`write_model`; ValueError for codes out of range."""
