"""The ``avsync`` Typer app: the root group (``--version``, ``--debug``), the commands in the
order ``avsync --help`` lists them, and the console-script entry point."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .. import __version__
from ..distributed.runner import is_ray_address
from . import evaluate, fix, models, predict, report, score
from .common import INTERRUPTED_EXIT, STATE, err_console

SIGN_HELP = "Sign: a positive offset means the audio is EARLY (heard before it is seen); negative: late."
CLOCK_HELP = "Times are file times (presentation timestamps), in seconds."


class _Group(typer.core.TyperGroup):
    """Accepts ``--debug`` after the subcommand too (``avsync predict --debug``), for every command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[1:end]:
            args = ["--debug", *(a for i, a in enumerate(args) if a != "--debug" or i >= end)]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        # typer turns a KeyboardInterrupt into a silent exit 130 before main() sees it: say it here
        # (a batch says more itself, and exits before this)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            err_console().print("avsync: interrupted", markup=False)
            raise typer.Exit(INTERRUPTED_EXIT) from None


app = typer.Typer(
    name="avsync",
    cls=_Group,
    help=(
        "Find and fix the offset between the sound and the picture of video files, with SparseSync "
        f"(BMVC 2022) or Synchformer (ICASSP 2024). {SIGN_HELP} {CLOCK_HELP}"
    ),
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
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
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
) -> None:
    """Find and fix the offset between the sound and the picture of video files."""
    STATE["debug"] = debug


app.command()(predict.predict)
app.command("report")(report.report_cmd)
app.command()(fix.fix)
app.command()(score.score)
app.command()(models.models)
app.command()(models.download)
app.add_typer(evaluate.evaluate_app, name="evaluate")


def ray_argv(argv: list[str]) -> list[str]:
    """``--ray`` alone means a local runtime: spelled ``--ray=local`` for the parser (which needs a value)."""
    return [
        "--ray=local" if a == "--ray" and (i + 1 == len(argv) or not is_ray_address(argv[i + 1])) else a
        for i, a in enumerate(argv)
    ]


def main() -> None:
    """Console-script entry point."""
    try:
        app(args=ray_argv(sys.argv[1:]))
    except KeyboardInterrupt:
        print("avsync: interrupted", file=sys.stderr)  # before a command started
        sys.exit(INTERRUPTED_EXIT)
