"""The data model shared by every format version: :class:`Stream`, :class:`StreamSummary`, the parsed
container (:class:`Parsed`) and the :class:`Format` record a version registers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hinerv.config import FieldValue
from hinerv.types import VideoInfo

__all__ = ["Stream", "StreamSummary", "Parsed", "Head", "Format", "ShapesFn"]

ShapesFn = Callable[[VideoInfo, dict[str, FieldValue]], Sequence[tuple[int, ...]]]
"""``(info, model_fields) -> tensor shapes``: what a decoder expects (see :func:`hinerv.bitstream.unpack`)."""


@dataclass(frozen=True, eq=False)
class Stream:
    """Everything a bitstream carries.

    Attributes:
        info: the video geometry and colour format.
        model: model config fields (``ModelConfig.to_fields()``), in a stable order.
        meta: free-form fields (encoder version, training settings, ...).
        tensors: quantized tensors in the decoder's canonical order.
        vectors: 1-D float16 arrays (biases), in canonical order.
    """

    info: VideoInfo
    model: dict[str, FieldValue]
    meta: dict[str, FieldValue] = field(default_factory=dict)
    tensors: list[Any] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class StreamSummary:
    """What :func:`peek` reports, without entropy-decoding anything.

    Attributes:
        version: format version of the stream.
        info, model, meta: as in :class:`Stream`.
        tensors: header descriptors, in order.
        vector_lengths: length of each fp16 vector.
        section_bytes: bytes per section kind (``header``, ``tables``, ``scales``, ``masks``,
            ``payload``, ``vectors``, ``ancillary``) with each section's own framing (kind,
            length, CRC) included; ``framing`` is magic + version + END + overall CRC.
        total_bytes: ``len(data)``.
        default_pipeline: the pipeline of the format version, reported when meta has none.
    """

    version: int
    info: VideoInfo
    model: dict[str, FieldValue]
    meta: dict[str, FieldValue]
    tensors: list[Any]
    vector_lengths: list[int]
    section_bytes: dict[str, int]
    total_bytes: int
    default_pipeline: str = "paper"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (fps as a string ``"num/den"``)."""
        i = self.info
        return {
            "version": self.version,
            "pipeline": str(self.meta.get("pipeline", self.default_pipeline)),
            "video": {
                "width": i.width,
                "height": i.height,
                "frames": i.frames,
                "fps": f"{i.fps.numerator}/{i.fps.denominator}",
                "bit_depth": i.bit_depth,
                "chroma": i.chroma,
                "matrix": i.matrix,
                "full_range": i.full_range,
            },
            "model": {k: list(v) if isinstance(v, tuple) else v for k, v in self.model.items()},
            "meta": {k: list(v) if isinstance(v, tuple) else v for k, v in self.meta.items()},
            "tensors": len(self.tensors),
            "elements": sum(t.size for t in self.tensors),
            "scales": sum(t.n_scales for t in self.tensors),
            "vectors": len(self.vector_lengths),
            "section_bytes": dict(self.section_bytes),
            "total_bytes": self.total_bytes,
        }


@dataclass
class Parsed:
    """A container split into sections, with the HEAD read (nothing entropy-decoded yet)."""

    version: int
    info: VideoInfo
    model: dict[str, FieldValue]
    meta: dict[str, FieldValue]
    specs: list[Any]
    vec_lens: list[int]
    bodies: dict[int, bytes]
    section_bytes: dict[str, int]


Head = tuple[VideoInfo, dict, dict, list, list]
"""What a version's HEAD reader returns: info, model fields, meta fields, tensor specs, vector lengths."""


@dataclass(frozen=True)
class Format:
    """One format version, as registered in :data:`hinerv.bitstream.registry.FORMATS`.

    Attributes:
        version: the version byte.
        sections: the required section kinds, in order.
        tensor_type: the tensor class :func:`hinerv.bitstream.pack` writes in this version.
        pipeline: the encoder pipeline that writes it (reported by ``peek`` when meta has none).
        codes_every_parameter: the tensors are all the network's parameters in ``named_parameters()``
            order (else: its quantizable tensors, and the other parameters are the fp16 vectors).
        read_head: ``(HEAD body, max_elements) -> Head``.
        pack: ``(stream, vector lengths) -> bytes`` (info and vectors already validated).
        unpack: ``Parsed -> Stream`` (entropy decoding).
    """

    version: int
    sections: tuple[int, ...]
    tensor_type: type
    pipeline: str
    codes_every_parameter: bool
    read_head: Callable[[bytes, int], Head]
    pack: Callable[[Stream, Sequence[int]], bytes]
    unpack: Callable[[Parsed], Stream]
