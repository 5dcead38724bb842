"""The `petri` command: a thin shell over the library (every command is a function call), in command
groups: ``data`` (data sets), ``explore`` (train, models, preview, summary), ``study`` (run, show,
export, weights, plan, analyse, report)."""

from __future__ import annotations

from importlib import import_module

import typer

from ..errors import PetriError

# first: each adds its commands, in --help's order
for _module in ('explore', 'study', 'data'):
    import_module(f".{_module}", __name__)
from .base import app, console, err_console

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """The console entry point: a bad command line is one line (`petri: error: ...`, exit 2), not a box;
    PETRI_DEBUG=1 shows tracebacks of unexpected errors."""
    import os

    from typer._click import exceptions as cx  # typer carries its own click

    try:
        code = app(args=argv, prog_name="petri", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except cx.NoArgsIsHelpError as e:  # `petri` alone, or a group alone: its help, as usual
        console.print(e.ctx.get_help(), markup=False, highlight=False)
        return 0
    except cx.UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else ""
        err_console.print(f"petri: error: {' '.join(e.format_message().split())}{where}", markup=False,
                          highlight=False, soft_wrap=True)
        return 2
    except cx.ClickException as e:
        err_console.print(f"petri: error: {' '.join(e.format_message().split())}", markup=False, highlight=False,
                          soft_wrap=True)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("petri: interrupted", markup=False)
        return 130
    except PetriError as e:
        err_console.print(f"petri: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - a bug of petri's: one line, and the traceback on request
        if os.environ.get("PETRI_DEBUG"):
            raise
        err_console.print(f"petri: internal error: {type(e).__name__}: {' '.join(str(e).split())[:500]} "
                          "(PETRI_DEBUG=1 shows the traceback; please report it)", markup=False, highlight=False,
                          soft_wrap=True)
        return 1
