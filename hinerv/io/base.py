"""Abstract reader / writer and the atomic-output helpers shared by every format."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar

import numpy as np
import torch

from hinerv.color import dequantize_rgb, quantize_rgb, rgb_to_yuv, sample_dtype, yuv_to_rgb
from hinerv.errors import InputError
from hinerv.io.frames import FrameBatch, quantize_rgb_t, yuv_to_rgb_t
from hinerv.types import VideoInfo

__all__ = [
    "AtomicDir",
    "AtomicFile",
    "CommitOnExit",
    "Planes",
    "VideoReader",
    "VideoWriter",
    "atomic_write",
    "clean_stale_temps",
    "commit_temp",
    "fix_mode",
    "make_temp",
]

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


class VideoReader(ABC):
    """Random-access, lazy frame source. Holds at most one decoded frame (or a small cache).

    Attributes:
        path: the file or folder read.
        info: geometry and format; ``info.frames`` is the (possibly ``max_frames``-truncated) count.
    """

    path: Path
    info: VideoInfo

    def __len__(self) -> int:
        return self.info.frames

    def _check_index(self, t: int) -> int:
        t = int(t)
        if not 0 <= t < self.info.frames:
            raise IndexError(f"frame {t} out of range 0..{self.info.frames - 1} in {self.path}")
        return t

    @abstractmethod
    def read_yuv(self, t: int) -> Planes:
        """Frame ``t`` as integer planes.

        Returns:
            ``(y, u, v)``: ``y [H, W]``; ``u, v [H/2, W/2]`` (chroma "420") or ``[H, W]`` ("444");
            uint8 (8-bit) or uint16, values in ``[0, info.peak]``.
        """

    def read_rgb(self, t: int) -> np.ndarray:
        """Frame ``t`` as integer RGB at ``info.bit_depth``: the RGB the codec trains on.

        YUV sources are converted with :func:`hinerv.color.yuv_to_rgb` (``info.matrix``,
        ``info.full_range``, bilinear MPEG-2-sited chroma) and rounded half up.

        Returns:
            uint8 / uint16 ``[3, H, W]`` in ``[0, info.peak]``.
        """
        y, u, v = self.read_yuv(t)
        i = self.info
        rgb = yuv_to_rgb(y, u, v, bit_depth=i.bit_depth, matrix=i.matrix, full_range=i.full_range)
        return quantize_rgb(rgb, i.bit_depth)

    def read_rgb_float(self, t: int) -> np.ndarray:
        """``read_rgb(t) / info.peak`` as float32 ``[3, H, W]`` in ``[0, 1]``."""
        return dequantize_rgb(self.read_rgb(t), self.info.bit_depth)

    def read_batch(self, frames: Sequence[int], device: torch.device | str = "cpu") -> FrameBatch:
        """Frames ``frames`` as :meth:`read_yuv` and :meth:`read_rgb` return them, as int32 tensors on
        ``device``; the file is read on the host, the colour conversion runs on ``device``
        (:mod:`hinerv.io.frames`, the same integers as :meth:`read_rgb`)."""
        planes = [self.read_yuv(t) for t in frames]
        y, u, v = (_to_device_int32(np.stack([p[k] for p in planes]), device) for k in range(3))
        rgb = quantize_rgb_t(yuv_to_rgb_t(y, u, v, self.info), self.info.bit_depth)
        return FrameBatch(y, u, v, rgb)

    def __iter__(self) -> Iterator[Planes]:
        """Yield :meth:`read_yuv` frames 0..T-1 in order."""
        for t in range(self.info.frames):
            yield self.read_yuv(t)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the file handle(s); the reader must not be used afterwards."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, {self.info})"


def _to_device_int32(a: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """Integer samples as int32 on ``device``; 8-bit ones cross to the device as bytes (a quarter of
    the traffic) and widen there."""
    if a.dtype == np.uint8:
        return torch.from_numpy(a).to(device).to(torch.int32)
    return torch.from_numpy(a.astype(np.int32)).to(device)


_Output = TypeVar("_Output", bound="CommitOnExit")


class CommitOnExit(ABC):
    """Context-manager protocol of an output that commits or is discarded: a clean exit of the ``with``
    block calls :meth:`close` (commit), an exception calls :meth:`abort` (nothing appears)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    def __enter__(self: _Output) -> _Output:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class VideoWriter(CommitOnExit):
    """Frame sink; output appears at ``path`` only when :meth:`close` completes.

    Use as a context manager: a clean exit commits (renames the temporary output into place), an
    exception deletes the temporary output and leaves any previous file at ``path`` untouched.
    """

    path: Path
    info: VideoInfo
    frames_written: int
    #: what the output keeps of a frame given to :meth:`write_rgb`: ``"yuv"`` the integer planes of
    #: :func:`hinerv.color.rgb_to_yuv` at ``info`` (a reader returns exactly them), ``"rgb"`` the integer
    #: RGB of :func:`hinerv.color.quantize_rgb`, ``"preview"`` a lossy encoding
    stores: str = "yuv"

    def __init__(self, path: Path, info: VideoInfo) -> None:
        _check_info(info, path)
        self.path = path
        self.info = info
        self.frames_written = 0
        self._done = False

    def _check_planes(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> Planes:
        i = self.info
        cs = (i.height // 2, i.width // 2) if i.chroma == "420" else (i.height, i.width)
        if y.shape != (i.height, i.width) or u.shape != cs or v.shape != cs:
            raise ValueError(
                f"planes {y.shape}/{u.shape}/{v.shape} do not match {i.width}x{i.height} chroma {i.chroma}"
            )
        dt = sample_dtype(i.bit_depth)
        return tuple(np.ascontiguousarray(np.clip(p, 0, i.peak).astype(dt)) for p in (y, u, v))  # type: ignore[return-value]

    @abstractmethod
    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Append one frame given as integer planes in the writer's format (see ``info``).

        Args:
            y: ``[H, W]``; u, v: ``[H/2, W/2]`` ("420") or ``[H, W]`` ("444"); integers in
                ``[0, info.peak]`` (clipped), stored as uint8 / uint16.
        """

    def write_rgb(self, rgb_float: np.ndarray) -> None:
        """Append one frame given as float32 ``[3, H, W]`` RGB in ``[0, 1]``.

        Converted with :func:`hinerv.color.rgb_to_yuv` at ``info.bit_depth`` / ``matrix`` /
        ``full_range`` / ``chroma`` (formats that store RGB override this).
        """
        i = self.info
        self.write_yuv(
            *rgb_to_yuv(
                rgb_float,
                bit_depth=i.bit_depth,
                matrix=i.matrix,
                full_range=i.full_range,
                chroma=i.chroma,
            )
        )

    def write_rgb_int(self, rgb: np.ndarray) -> None:
        """Append one frame given as integer RGB ``[3, H, W]`` at ``info.bit_depth``.

        A writer that stores RGB (``stores == "rgb"``) keeps these integers as they are; the others
        convert ``rgb / peak`` as :meth:`write_rgb` does.
        """
        self.write_rgb(dequantize_rgb(rgb, self.info.bit_depth))

    def close(self) -> None:
        """Finish the output and move it into place (idempotent)."""
        if not self._done:
            self._done = True
            self._commit()

    def abort(self) -> None:
        """Drop the temporary output; nothing appears at ``path`` (idempotent)."""
        if not self._done:
            self._done = True
            self._discard()

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _discard(self) -> None: ...

    def __del__(self) -> None:
        # a writer dropped without close() must not leave a temporary file behind
        try:
            if not getattr(self, "_done", True):
                self.abort()
        except Exception:
            pass


def _check_info(info: VideoInfo, path: Path) -> None:
    if info.width < 1 or info.height < 1:
        raise InputError(f"invalid frame size {info.width}x{info.height} for {path}")
    if info.chroma == "420" and (info.width % 2 or info.height % 2):
        raise InputError(f"4:2:0 needs an even width and height, got {info.width}x{info.height} for {path}")
    if info.chroma not in ("420", "444"):
        raise InputError(f"unsupported chroma format {info.chroma!r} for {path}")
    if not 8 <= info.bit_depth <= 16:
        raise InputError(f"unsupported bit depth {info.bit_depth} for {path} (8..16)")
    if info.fps <= 0:
        raise InputError(f"frame rate must be positive, got {info.fps} for {path}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fix_mode(path: Path, directory: bool = False) -> None:
    """Give a ``mkstemp``/``mkdtemp`` result (0600/0700) the usual permissions under the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", socket.gethostname()) or "host"


_TEMP_RE = re.compile(r"\.hinerv-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-[^/]*$")


def _temp_prefix(path: Path) -> str:
    # The owner (host, pid) is part of the name, so a later write can tell a live temporary from one
    # a killed process left behind (see clean_stale_temps).
    return f".{path.name}.hinerv-{_host()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists, owned by someone else
        return True
    return True


def clean_stale_temps(path: Path) -> list[Path]:
    """Remove temporary files / folders of ``path`` left behind by killed hinerv processes.

    Only names :func:`make_temp` creates (``.NAME.hinerv-HOST-PID-*``) whose host is this
    machine and whose process no longer exists are removed; a live writer's temporary is never
    touched. Returns the removed paths.
    """
    parent = path.parent
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    host, me = _host(), os.getpid()
    prefix = f".{path.name}."
    try:
        entries = [e for e in parent.iterdir() if e.name.startswith(prefix)]
    except OSError:
        return removed
    for e in entries:
        m = _TEMP_RE.match(e.name[len(prefix) - 1 :])
        if m is None or m["host"] != host:
            continue
        pid = int(m["pid"])
        if pid == me or _alive(pid):
            continue
        try:
            if e.is_dir() and not e.is_symlink():
                shutil.rmtree(e)
            else:
                e.unlink()
            removed.append(e)
        except OSError:
            pass
    return removed


def make_temp(path: Path, *, suffix: str = ".tmp", directory: bool = False) -> Path:
    """Create the temporary file (closed, empty) or folder an atomic write of ``path`` goes through.

    It lies next to ``path`` (same file system, so ``os.replace`` is atomic), is hidden, names its
    owner, and leftovers of killed writers of the same ``path`` are removed first.

    Raises:
        InputError: the parent folder does not exist.
    """
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"output folder {parent} does not exist")
    clean_stale_temps(path)
    if directory:
        return Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=suffix, dir=parent))
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=parent)
    os.close(fd)
    return Path(tmp)


def commit_temp(tmp: Path, path: Path) -> None:
    """Finish an atomic write: flush ``tmp`` to disk (fsync), give it the usual mode, rename it onto
    ``path``. Every atomic writer of the package ends here, so a crash leaves the old file or the new
    one, never a torn one."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fix_mode(tmp)
    os.replace(tmp, path)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file next to ``path``, which then
    replaces ``path`` (:func:`commit_temp`); on any error the temporary file is removed.

    Raises:
        InputError: the parent folder does not exist.
    """
    f = AtomicFile(path)
    try:
        write(f.file)
    except BaseException:
        f.discard()
        raise
    f.commit()


class AtomicFile:
    """A temporary file next to ``path``; :meth:`commit` renames it onto ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = make_temp(path)
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit() / discard()

    def commit(self) -> None:
        try:
            self.file.close()
            commit_temp(self.tmp, self.path)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class AtomicDir:
    """A temporary folder next to ``path``; :meth:`commit` renames it onto ``path``.

    An existing ``path`` is replaced only when it is empty or holds nothing but ``*.png`` files
    (a previous output); anything else raises :class:`InputError` before writing starts.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        parent = path.parent
        if not parent.is_dir():
            raise InputError(f"output folder {parent} does not exist")
        if path.exists():
            if not path.is_dir():
                raise InputError(f"{path} exists and is not a folder")
            others = [p.name for p in path.iterdir() if p.suffix.lower() != ".png" or p.is_dir()]
            if others:
                raise InputError(
                    f"refusing to replace folder {path}: it holds files other than PNGs (e.g. {others[0]!r})"
                )
        self.tmp = make_temp(path, directory=True)

    def commit(self) -> None:
        old: Path | None = None
        if self.path.exists():
            old = make_temp(self.path, suffix=".old", directory=True)
            os.replace(self.path, old / "x")
        fix_mode(self.tmp, directory=True)
        for f in self.tmp.iterdir():
            fix_mode(f)
        os.replace(self.tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
