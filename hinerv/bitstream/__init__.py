"""The hinerv bitstream: the only package that lays out bytes.

A bitstream holds everything a decoder needs to rebuild the quantized network of one video:
the :class:`~hinerv.types.VideoInfo`, the model configuration fields, free-form meta fields,
the quantized tensors (shapes, fp16 scales or steps, entropy-coded integers) and a few raw
float16 vectors (biases). Tensor *names* are not stored: the decoder rebuilds the model from the
config and knows the canonical order; shapes are stored and checked.

Modules (``docs/bitstream.md`` is the normative description):

* :mod:`~hinerv.bitstream.fields`: varints, the bounds-checked reader, typed key/value fields;
* :mod:`~hinerv.bitstream.container`: magic, version byte, framed sections with CRC32s, END, the
  video header;
* :mod:`~hinerv.bitstream.stream`: :class:`Stream`, :class:`StreamSummary` and the :class:`Format`
  record of a version;
* :mod:`~hinerv.bitstream.checks`: validation shared by the versions;
* :mod:`~hinerv.bitstream.v1` (``paper`` pipeline: bit depths, masks, histogram tables) and
  :mod:`~hinerv.bitstream.v2` (``rd`` pipeline: learned steps, parametric and context models);
* :mod:`~hinerv.bitstream.registry`: the version registry, :func:`pack`, :func:`unpack`, :func:`peek`.

Reading is defensive: every size is validated against ``max_elements`` and against the bytes
actually present before anything is allocated or decoded, and every problem raises
:class:`~hinerv.errors.BitstreamError` with a one-line message.
"""

from hinerv.bitstream.container import MAGIC, SECTION_NAMES
from hinerv.bitstream.registry import FORMAT_VERSION, FORMATS, format_of, pack, peek, unpack
from hinerv.bitstream.stream import Format, Stream, StreamSummary
from hinerv.bitstream.v1 import QuantTensor, TensorSpec
from hinerv.bitstream.v2 import CodedSpec, CodedTensor

__all__ = [
    "FORMAT_VERSION",
    "FORMATS",
    "MAGIC",
    "SECTION_NAMES",
    "Format",
    "QuantTensor",
    "CodedTensor",
    "Stream",
    "TensorSpec",
    "CodedSpec",
    "StreamSummary",
    "format_of",
    "pack",
    "unpack",
    "peek",
]
