"""A writer that writes on a worker thread, so frames are stored while the next ones are computed.

:class:`BackgroundWriter` wraps any :class:`~hinerv.io.VideoWriter`. The caller hands it frames; a worker
thread writes them in order. At most ``depth`` frames wait (the caller blocks beyond that, so memory
stays bounded). The output stays atomic: the wrapped writer commits only in :meth:`BackgroundWriter.close`,
after the worker wrote every frame; an error in the caller (an exception in the ``with`` block) or in the
worker (raised again in the caller at its next call) aborts it, and nothing appears at the path.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np

from hinerv.io.base import CommitOnExit, VideoWriter

__all__ = ["BackgroundWriter"]

_STOP = object()


class BackgroundWriter(CommitOnExit):
    """Write frames into ``writer`` on a worker thread.

    Args:
        writer: the (atomic) writer the frames go to; owned from now on (closed or aborted here).
        depth: frames that may wait in the queue.

    The frame methods mirror :class:`~hinerv.io.VideoWriter`'s and take the same arrays; the caller must
    not modify an array after handing it over.
    """

    def __init__(self, writer: VideoWriter, depth: int = 4) -> None:
        self.writer = writer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(
            target=self._run, name=f"hinerv-writer:{writer.path.name}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is None:  # after an error the rest is drained unwritten
                method, args = item
                try:
                    getattr(self.writer, method)(*args)
                except BaseException as e:  # raised again in the caller's thread
                    self._error = e

    def _put(self, method: str, *args: np.ndarray) -> None:
        if self._finished:
            raise ValueError(f"writer of {self.writer.path} is closed")
        self._raise_worker_error()
        self._queue.put((method, args))

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            self.abort()
            raise self._error

    def _stop(self) -> None:
        if not self._finished:
            self._finished = True
            self._queue.put(_STOP)
            self._thread.join()

    # ------------------------------------------------------------------ frames
    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Queue one frame of integer planes (:meth:`VideoWriter.write_yuv`)."""
        self._put("write_yuv", y, u, v)

    def write_rgb(self, rgb_float: np.ndarray) -> None:
        """Queue one float RGB frame (:meth:`VideoWriter.write_rgb`)."""
        self._put("write_rgb", rgb_float)

    def write_rgb_int(self, rgb: np.ndarray) -> None:
        """Queue one integer RGB frame (:meth:`VideoWriter.write_rgb_int`)."""
        self._put("write_rgb_int", rgb)

    # ------------------------------------------------------------------ end
    def close(self) -> None:
        """Wait for every queued frame, then commit the output; a worker error aborts it and is raised."""
        self._stop()
        if self._error is not None:
            self.writer.abort()
            raise self._error
        self.writer.close()

    def abort(self) -> None:
        """Stop the worker (queued frames are dropped unwritten) and discard the output."""
        if not self._finished:
            self._error = self._error or _Aborted()
            self._stop()
        self.writer.abort()


class _Aborted(Exception):
    """Marks a writer aborted by its caller: the worker drops what is still queued."""
