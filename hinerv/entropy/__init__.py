"""Entropy coding of integer arrays (the only package that imports :mod:`constriction`).

* :mod:`~hinerv.entropy.coder`: the range coder wrapper (:class:`StreamEncoder`, :class:`StreamDecoder`).
* :mod:`~hinerv.entropy.tables`: histogram tables (format 1).
* :mod:`~hinerv.entropy.parametric`: geometric models and the ``tensor`` / ``channel`` codings (format 2).
* :mod:`~hinerv.entropy.context`: context coding of feature grids (format 2).
* :mod:`~hinerv.entropy.registry`: the format-2 codings, in stored-code order.

Typical use::

    table = histogram(q)                 # q: any-shape integer array
    payload = encode(q.ravel(), table)   # bytes
    q2 = decode(payload, table, q.size)  # int32 [q.size]
    tbytes = encode_tables([table])      # the table's own compact serialization
"""

from hinerv.entropy.coder import StreamDecoder, StreamEncoder, min_coded_bits
from hinerv.entropy.coding import Coding
from hinerv.entropy.context import CTX_BUCKETS, context_buckets, context_map, decode_context, encode_context
from hinerv.entropy.parametric import GEOM_MAX_ABS, GEOM_R_MAX, GEOM_Z_MAX, GeomModel, abs_histogram, fit_geom
from hinerv.entropy.registry import CODINGS, coding_names
from hinerv.entropy.tables import (
    MAX_STEP,
    Table,
    cross_entropy_bits,
    decode,
    decode_tables,
    encode,
    encode_tables,
    entropy_bits,
    histogram,
)

__all__ = [
    "Table",
    "histogram",
    "encode",
    "decode",
    "entropy_bits",
    "cross_entropy_bits",
    "min_coded_bits",
    "encode_tables",
    "decode_tables",
    "StreamEncoder",
    "StreamDecoder",
    "MAX_STEP",
    "GeomModel",
    "fit_geom",
    "abs_histogram",
    "CTX_BUCKETS",
    "context_map",
    "context_buckets",
    "encode_context",
    "decode_context",
    "GEOM_R_MAX",
    "GEOM_Z_MAX",
    "GEOM_MAX_ABS",
    "Coding",
    "CODINGS",
    "coding_names",
]
