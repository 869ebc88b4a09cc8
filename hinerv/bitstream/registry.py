"""The format-version registry and the entry points that dispatch through it.

A version is a module with a :class:`~hinerv.bitstream.stream.Format` record (``FORMAT``); registering
it is one line in :data:`FORMATS`. :func:`pack` picks the version from the tensor type, :func:`unpack`
and :func:`peek` from the version byte.
"""

from __future__ import annotations

from hinerv.bitstream.checks import check_expected_shapes, vector_lengths
from hinerv.bitstream.container import HEAD, check_info, read_sections
from hinerv.bitstream.stream import Format, Parsed, ShapesFn, Stream, StreamSummary
from hinerv.bitstream.v1 import FORMAT as FORMAT_1
from hinerv.bitstream.v2 import FORMAT as FORMAT_2

__all__ = ["FORMATS", "FORMAT_VERSION", "format_of", "parse", "pack", "unpack", "peek"]

FORMATS: dict[int, Format] = {f.version: f for f in (FORMAT_1, FORMAT_2)}
"""Every readable version, by version byte."""

FORMAT_VERSION = max(FORMATS)
"""The newest version this package reads (it reads every older one too)."""

_EMPTY_STREAM_VERSION = 1  # a stream without tensors is written as format 1


def format_of(data: bytes) -> Format:
    """The :class:`Format` of a whole stream (its header and CRCs checked, as :func:`peek`)."""
    return FORMATS[peek(data).version]


def parse(data: bytes, max_elements: int, check_crc: bool) -> Parsed:
    """Split a stream into sections and read its HEAD with its version's reader."""
    version, bodies, sizes = read_sections(data, {v: f.sections for v, f in FORMATS.items()}, check_crc)
    info, model, meta, specs, vec_lens = FORMATS[version].read_head(bodies[HEAD], max_elements)
    return Parsed(version, info, model, meta, specs, vec_lens, bodies, sizes)


def pack(stream: Stream) -> bytes:
    """Serialize a :class:`Stream` (deterministic: the same stream gives the same bytes).

    The version follows from the tensor type (:class:`~hinerv.bitstream.v1.QuantTensor`: format 1,
    :class:`~hinerv.bitstream.v2.CodedTensor`: format 2).

    Args:
        stream: the content; every tensor is validated (dtypes, shapes, value ranges,
            ``q == 0`` off-mask, finite scales and vectors).

    Returns:
        The bitstream bytes.

    Raises:
        ValueError: invalid content (a programming error of the caller, not a user error), or
            tensors of more than one format.
    """
    check_info(stream.info)
    vec_lens = vector_lengths(stream)
    by_type = {f.tensor_type: f for f in FORMATS.values()}
    fmts = {by_type.get(type(t)) for t in stream.tensors}
    if None in fmts:
        raise ValueError("stream tensors must be QuantTensor (format 1) or CodedTensor (format 2)")
    if len(fmts) > 1:
        raise ValueError("a stream cannot mix format-v1 and format-v2 tensors")
    fmt = fmts.pop() if fmts else FORMATS[_EMPTY_STREAM_VERSION]
    assert fmt is not None
    return fmt.pack(stream, vec_lens)


def peek(data: bytes, *, max_elements: int = 2**28, expected_shapes: ShapesFn | None = None) -> StreamSummary:
    """Read the header and section sizes (CRCs checked) without decoding any tensor.

    Args:
        data: a whole bitstream.
        max_elements: limit on the total number of tensor elements.
        expected_shapes: as in :func:`unpack`: the same header checks a decoder applies.

    Raises:
        BitstreamError: anything malformed.
    """
    p = parse(data, max_elements, True)
    check_expected_shapes(p, expected_shapes)
    return StreamSummary(
        p.version, p.info, p.model, p.meta, p.specs, p.vec_lens, p.section_bytes, len(data),
        FORMATS[p.version].pipeline,
    )  # fmt: skip


def unpack(
    data: bytes,
    *,
    max_elements: int = 2**28,
    expected_shapes: ShapesFn | None = None,
    check_crc: bool = True,
) -> Stream:
    """Parse and entropy-decode a bitstream.

    Args:
        data: a whole bitstream as written by :func:`pack`.
        max_elements: limit on the total number of tensor elements (checked before any
            allocation; a one-symbol table codes any number of elements in 0 bytes).
        expected_shapes: optional cheap callback ``(info, model_fields) -> tensor shapes`` (e.g.
            the analytic shapes of the model the config describes). When given, the stored
            shapes must equal it before anything is decoded; a :class:`HinervError` it raises
            (e.g. ``ConfigError`` for a nonsense config) becomes a :class:`BitstreamError`.
        check_crc: verify the CRC32s (only fuzz tests turn this off, to reach the parser).

    Returns:
        The :class:`Stream`; ``q`` int32, masks bool, scales and vectors float16.

    Raises:
        BitstreamError: bad magic, unsupported version, truncation, CRC mismatch, sizes over
            the limits or inconsistent with the bytes present, invalid tables or fields, or a
            range-coded body that is not exactly the coding of its symbols.
    """
    p = parse(data, max_elements, check_crc)
    check_expected_shapes(p, expected_shapes)
    return FORMATS[p.version].unpack(p)
