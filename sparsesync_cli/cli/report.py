"""``avsync report``: a JSONL report into one self-contained HTML page (and SVG sync maps)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import AvsyncError
from .common import err_console, one_line_errors


def report_cmd(
    jsonl: Annotated[Path, typer.Argument(help="A JSON Lines report written by `avsync predict --jsonl`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    title: Annotated[str, typer.Option("--title", help="The report's title.")] = "avsync report",
    maps: Annotated[
        Path | None, typer.Option("--maps", help="Also write one SVG sync map per file into this folder.")
    ] = None,
) -> None:
    """Turn a JSONL report into one self-contained HTML page with a sync map per file."""
    from ..report.html import write_html_report
    from ..report.records import latest_results, read_jsonl
    from ..report.syncmap import has_sync_map, write_sync_map

    with one_line_errors():
        try:
            results = latest_results(read_jsonl(jsonl))
            write_html_report(results, output, title=title)
            if maps is not None:
                maps.mkdir(parents=True, exist_ok=True)
                for i, r in enumerate(results):
                    if has_sync_map(r):
                        write_sync_map(r, maps / f"{i:04d}_{Path(r['path']).stem}.svg")
        except OSError as e:  # a folder that cannot be written: one line naming it
            raise AvsyncError(f"cannot write: {e.strerror or e}", e.filename) from None
    err_console().print(f"avsync: wrote {output} ({len(results)} file(s))", markup=False)
