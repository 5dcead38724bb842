"""What every command shares: the app, the consoles, and failures as one line."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console

from ..errors import PetriError, SpecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="petri: controlled deep-learning experiments on small image data sets.")
data_app = typer.Typer(no_args_is_help=True, help="List, verify and fetch data sets.")
app.add_typer(data_app, name="data")
# Piped output is not cut at 80 columns (rich's default when stdout is not a terminal).
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def fail(e: PetriError) -> None:
    err_console.print(f"petri: error: {e}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def parse_json(text: str, option: str):
    """An option's JSON value; one line naming the option when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{option}: not valid JSON ({e.msg} at column {e.colno})") from None


def option_error(message: str) -> SpecError:
    """A mistake in the command line's options, said as a study's mistakes are (exit 2)."""
    return SpecError(message)
