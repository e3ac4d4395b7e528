"""MkDocs hook: write the command-line reference from the Typer app itself, so it cannot drift.

``docs/reference/cli.md`` holds a marker line; at build time :func:`on_page_markdown` replaces it
with every command of ``avsync`` (groups and their subcommands included): its usage line, its
help text, and a table of its arguments and options (names, type, default, help), read from the
same objects ``avsync CMD --help`` prints. Edit the help texts in the code, not the page.

``tests/test_docs.py`` imports :func:`cli_reference_markdown` to check that every command is in
the reference without building the site.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = "<!-- avsync-cli-reference -->"
PAGE = "reference/cli.md"
PROGRAM = "avsync"

# The bracketed notes Typer appends to an option's help: "  [default: 0.8; 0.0<=x<=1.0]".
_NOTES = re.compile(r"\s+\[([^\[\]]*)\]\s*$")
# Typer's name column: "-m, --model <str>", "PATHS... <list[str]>", "--ray [ADDRESS]", "--json".
_SHOWN = re.compile(r"^(?P<names>.*?)(?: (?P<type><.*>|\[[^\]]*\]))?$")


def _escape(text: str) -> str:
    """``text`` safe in Markdown (and in a table cell): ``<``, ``>`` and ``|`` escaped outside code."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def _cell(text: str) -> str:
    return _escape(" ".join(text.split()))


def _split_notes(record_help: str) -> tuple[str, str | None, bool]:
    """Typer's help column -> (notes other than default/required, the default, required?)."""
    match = _NOTES.search(record_help)
    if not match:
        return "", None, False
    default, required, others = None, False, []
    for note in (n.strip() for n in match.group(1).split(";")):
        if note.startswith("default: "):
            default = note.removeprefix("default: ")
        elif note == "required":
            required = True
        elif note:
            others.append(note)
    return "; ".join(others), default, required


def _param_rows(command: Any, ctx: Any) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or "--help" in param.opts:
            continue
        shown_name, record_help = record
        shown = _SHOWN.match(shown_name)
        names, shown_type = shown.group("names"), shown.group("type") or ""
        notes, default, required = _split_notes(record_help)
        kind = "argument" if param.param_type_name == "argument" else "option"
        if shown_type.startswith("["):  # --ray [ADDRESS]: a value that may be left out
            type_text = f"{shown_type.strip('[]')} (optional)"
        else:
            type_text = shown_type.strip("<>") or ("flag" if kind == "option" else "")
        default_text = "required" if required else (f"`{default}`" if default is not None else "")
        help_text = _cell(param.help or "")
        if notes:
            help_text += f" ({_cell(notes)})"
        rows.append(f"| `{names}` | {kind} | {_cell(type_text)} | {default_text} | {help_text} |")
    return rows


def _command_markdown(command: Any, ctx: Any, path: str, level: int) -> list[str]:
    lines = [f"{'#' * level} {path}", ""]
    usage = command.get_usage(ctx).removeprefix("Usage: ").strip()
    lines += ["```text", f"{usage}", "```", ""]
    if command.help:
        lines += [_escape(command.help.strip()), ""]
    rows = _param_rows(command, ctx)
    if rows:
        lines += ["| name | kind | type | default | help |", "| --- | --- | --- | --- | --- |", *rows, ""]
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            lines += _command_markdown(sub, sub_ctx, f"{path} {name}", min(level + 1, 4))
    return lines


def command_paths() -> list[str]:
    """Every command of the app as the user types it: ``avsync``, ``avsync predict``, ..."""
    import typer

    from sparsesync_cli.cli import app

    root = typer.main.get_command(app)
    paths = []

    def walk(command: Any, ctx: Any, path: str) -> None:
        paths.append(path)
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, sub.context_class(sub, info_name=name, parent=ctx), f"{path} {name}")

    walk(root, root.context_class(root, info_name=PROGRAM), PROGRAM)
    return paths


def cli_reference_markdown() -> str:
    """The reference of every command, argument and option, as Markdown."""
    import typer

    from sparsesync_cli.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name=PROGRAM)
    return "\n".join(_command_markdown(root, ctx, PROGRAM, 2))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the marker of the CLI reference page."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its marker line {MARKER!r}")
    return markdown.replace(MARKER, cli_reference_markdown())
