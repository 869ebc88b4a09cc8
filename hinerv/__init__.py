"""hinerv: a HiNeRV neural video codec (Kwan et al., "HiNeRV: Video Compression with Hierarchical
Encoding-based Neural Representation", NeurIPS 2023).

A video is compressed by over-fitting a small network to it; the pruned, quantized and
entropy-coded network is the bitstream.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
