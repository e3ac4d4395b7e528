"""The ``avsync`` command line: the only module that prints or imports typer and rich."""

from __future__ import annotations

from typing import Annotated

import typer

from . import __version__

app = typer.Typer(
    name="avsync",
    help="Find and fix the offset between the sound and the picture of video files.",
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avsync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Find and fix the offset between the sound and the picture of video files."""


def main() -> None:
    """Console-script entry point."""
    app()
