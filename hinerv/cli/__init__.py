"""Command-line interface: ``hinerv <command>``.

Each ``*_cmd`` module registers its commands on the shared :data:`app`. :func:`main` runs the app and
turns a :class:`~hinerv.errors.HinervError` (a user mistake: bad input, corrupt bitstream) or a usage
error (an unknown option, ``--epochs abc``) into a one-line message and exit code 2.

Importing this package is cheap (no torch, PyAV or SciPy): the command modules import the heavy
libraries inside the commands that need them, so ``hinerv --help`` starts at once.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import typer

from hinerv.cli._app import app, err_console
from hinerv.errors import HinervError

__all__ = ["app", "main"]

# Register every subcommand module (``*_cmd.py``) found in this package.
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd")):
    importlib.import_module(f"{__name__}.{_mod}")

# click's exception classes, whichever click typer runs on (its own copy or the click package)
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def _configured(callback: Any) -> Any:
    """``callback`` run after :func:`hinerv.runtime.configure_process` (which imports torch): only a
    command that runs pays for it, ``--help`` and usage errors do not."""

    def run(*args: Any, **kwargs: Any) -> Any:
        from hinerv.runtime import configure_process

        configure_process()  # process-wide settings belong to the program, not to the library
        return callback(*args, **kwargs)

    run.__wrapped__ = callback  # type: ignore[attr-defined]
    return run


def _configure_commands(cmd: Any) -> None:
    """Wrap every leaf command's callback with :func:`_configured` (groups are walked, not wrapped)."""
    subs = getattr(cmd, "commands", None)
    if subs is not None:
        for sub in subs.values():
            _configure_commands(sub)
    elif cmd.callback is not None and not hasattr(cmd.callback, "__wrapped__"):
        cmd.callback = _configured(cmd.callback)


def _usage_line(e: Exception) -> str:
    """One line for a click usage error: the message and where the help is."""
    msg = " ".join(str(e.format_message()).split())  # type: ignore[attr-defined]
    ctx = getattr(e, "ctx", None)
    where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    return f"{msg}{where}"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``hinerv`` console script; always ends with ``sys.exit``."""
    command = typer.main.get_command(app)
    _configure_commands(command)
    try:
        rv = command.main(args=argv, prog_name="hinerv", standalone_mode=False)
    except HinervError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
    except _ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare ``hinerv``: the help, exit 2 as before
            sys.stdout.write(str(e.format_message()) + "\n")  # type: ignore[attr-defined]
            sys.exit(2)
        err_console.print(f"[bold red]error:[/] {_usage_line(e)}", highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except (typer.Abort, EOFError):
        err_console.print("[bold red]aborted[/]")
        sys.exit(1)
    if rv == 130:
        err_console.print("[bold red]interrupted[/]")
    sys.exit(rv if isinstance(rv, int) else 0)
