"""How results look on the terminal: one summary line per file, the single file's detail, the
windows table and the batch table (the CLI's text; JSON output is the results' own dicts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import SIGN
from .common import shown

if TYPE_CHECKING:
    from rich.console import JustifyMethod
    from rich.table import Table

    from ..analysis.desync import DesyncResult
    from ..analysis.results import SyncResult


def summary_line(result: SyncResult) -> str:
    """One file's verdict on one line (its name escaped by :func:`~.common.shown`)."""
    name = shown(result.path)
    if not result.ok:
        return f"{name}: FAILED: {shown(result.error or '')}"
    conf = f"confidence {result.confidence:.2f}" if result.confidence is not None else ""
    drift = (
        f", drifting {result.drift_sec_per_min:+.2f} s/min" if result.drift_sec_per_min is not None else ""
    )
    sm = result.sampling
    read = f", {sm.windows_used} of {sm.windows_total} windows" if sm.sampling != "all" or sm.skipped else ""
    return f"{name}: {result.offset_words} ({result.offset_sec:+.2f} s), {conf}{drift}{read}"


def detail(d: dict[str, Any]) -> str:
    """The extra lines for a single file: top-3 offsets of the combined verdict, range, sign.

    The top 3 are read from the stored combined posterior, not recomputed (a version 1.0 record,
    resumed from an old report, has none: the line is left out).
    """
    grid, post = d["grid"], d.get("posterior") or []
    best = sorted(range(len(post)), key=lambda i: post[i], reverse=True)[:3]
    top3 = ", ".join(f"{grid[i]:+.1f} s (p={post[i]:.3f})" for i in best)
    lo, hi = d["range_sec"]
    lines = [
        f"  model {d['model']['name']} ({d['model']['family']}), {len(d['windows'])} window(s), "
        f"agreement {d['agreement']:.2f}",
        f"  top-3 offsets: {top3}" if top3 else None,
        f"  range {lo:+.1f}..{hi:+.1f} s in {d['resolution_sec']:.1f} s steps; {SIGN}",
    ]
    return "\n".join(line for line in lines if line)


def windows_table(result: SyncResult) -> Table:
    """``--windows``: every window's start, shift, offset and confidence."""
    from rich.table import Table

    t = Table(title=f"windows of {Path(result.path).name}", title_justify="left")
    for col in ("start (s)", "shift (s)", "offset (s)", "confidence"):
        t.add_column(col, justify="right")
    for w in result.windows:
        t.add_row(f"{w.start_sec:.2f}", f"{w.shift_sec:+.2f}", f"{w.offset_sec:+.2f}", f"{w.confidence:.2f}")
    return t


def checked_line(results: list[dict[str, Any]]) -> str:
    """The batch in the HTML report's words: every file is checked; each succeeded or failed."""
    failed = sum(1 for r in results if not r.get("ok"))
    return f"{len(results)} file(s) checked: {len(results) - failed} succeeded, {failed} failed"


def batch_table(results: list[dict[str, Any]], width: int) -> Table | str:
    """The batch's closing table, or its title alone where whole names would not fit ``width``."""
    from rich.table import Table

    title = checked_line(results)
    longest = max((len(shown(r["path"])) for r in results), default=0)
    if longest > width - 36:  # no room for whole names beside a verdict: the lines above say it all
        return title
    t = Table(title=title, title_justify="left")
    t.add_column("file", no_wrap=True, min_width=longest)  # names stay whole; verdicts wrap at words
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("offset (s)", "right"),
        ("verdict", "left"),
        ("confidence", "right"),
    )
    for col, just in columns:
        t.add_column(col, justify=just)
    for r in results:
        if r.get("ok"):
            drift = r.get("drift_sec_per_min")
            words = r["offset_words"] + (f", drift {drift:+.2f} s/min" if drift is not None else "")
            t.add_row(shown(r["path"]), f"{r['offset_sec']:+.2f}", words, f"{r['confidence']:.2f}")
        else:
            t.add_row(shown(r["path"]), "", f"FAILED: {shown(r['error'])}", "")
    return t


def desync_line(r: DesyncResult) -> str:
    """One file's DeSync scores (``avsync score``) on one line."""
    if not r.ok:
        return f"{shown(r.path)}: FAILED: {shown(r.error or '')}"
    whole = (
        f", whole file {r.desync_windows:.3f} (windows) / {r.desync_aggregated:.3f} (combined)"
        + (f", {r.n_windows} of {r.windows_total} windows" if r.sampling == "auto" else "")
        if r.desync_windows is not None
        else ""
    )
    return (
        f"{shown(r.path)}: DeSync {r.desync_av_benchmark:.3f} s "
        f"(first {r.first_offset_sec:+.1f}, last {r.last_offset_sec:+.1f}){whole}"
    )
