"""Command-line interface: ``hinerv <command>``.

Each ``*_cmd`` module registers its commands on the shared :data:`app`. :func:`main` runs the app and
turns a :class:`~hinerv.errors.HinervError` (a user mistake: bad input, corrupt bitstream) into a
one-line message and exit code 2.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from hinerv.cli._app import app, err_console
from hinerv.errors import HinervError

__all__ = ["app", "main"]

# Register every subcommand module (``*_cmd.py``) found in this package.
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd")):
    importlib.import_module(f"{__name__}.{_mod}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``hinerv`` console script."""
    from hinerv.runtime import configure_process

    configure_process()  # process-wide settings belong to the program, not to the library
    try:
        app(args=argv, prog_name="hinerv", standalone_mode=True)
    except HinervError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
