"""Exception types shared by every layer.

A :class:`HinervError` is a *user* problem (bad input file, corrupt bitstream, impossible option).
The CLI turns it into a one-line message on stderr and exit code 2, without a traceback.
Anything else escaping the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["HinervError", "InputError", "BitstreamError", "ConfigError"]


class HinervError(Exception):
    """Base class of all user-facing errors (exit code 2)."""

    exit_code: int = 2


class InputError(HinervError):
    """A video or result file that cannot be read as requested (missing, wrong size, bad format)."""


class BitstreamError(HinervError):
    """A malformed, truncated, corrupt or unsupported hinerv bitstream."""


class ConfigError(HinervError):
    """An impossible or inconsistent model, training or benchmark configuration."""
