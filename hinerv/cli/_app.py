"""The typer application object and the helpers every subcommand module shares.

Subcommand modules (``hinerv/cli/*_cmd.py``) import :data:`app` from here and register with
``@app.command()``. They parse options, call the library and present results; nothing else.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app", "err_console", "out_console", "print_json", "print_table"]

app = typer.Typer(
    name="hinerv",
    help="HiNeRV neural video codec: encode, decode, evaluate and benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: progress, logs and errors go to stderr; results (tables, JSON) go to stdout.
err_console = Console(stderr=True)
out_console = Console()


def _version(value: bool) -> None:
    if value:
        from hinerv import __version__

        sys.stdout.write(f"hinerv {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """HiNeRV neural video codec: encode, decode, evaluate and benchmark."""


def print_json(obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON to stdout (machine-readable output, no rich markup).

    NaN and infinities, which JSON cannot express, are written as ``null``.
    """
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, Mapping):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if hasattr(o, "item") and not isinstance(o, (str, bytes)):
        try:
            return _finite(o.item())
        except (TypeError, ValueError):
            return o
    return o


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "__fspath__"):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def print_table(title: str, rows: Mapping[str, Any] | list[Mapping[str, Any]]) -> None:
    """Print a key/value mapping (two columns) or a list of records (one row each) as a table."""
    table = Table(title=title, show_header=True, header_style="bold")
    if isinstance(rows, Mapping):
        table.add_column("key")
        table.add_column("value", justify="right")
        for k, v in rows.items():
            table.add_row(str(k), _fmt(v))
    else:
        keys: list[str] = []
        for r in rows:
            keys.extend(k for k in r if k not in keys)
        for k in keys:
            table.add_column(k, justify="right")
        for r in rows:
            table.add_row(*(_fmt(r.get(k, "")) for k in keys))
    out_console.print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.4g}"
        return f"{v:.4f}"
    return str(v)
