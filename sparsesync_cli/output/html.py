"""A batch of results as ONE self-contained HTML page: summary, sortable table, sync maps, errors.

Nothing is fetched when the page opens: the CSS, the script and every sync map (inline SVG) are
inside the file, so it can be mailed, archived or opened from disk. Every string that comes from
a result or the settings (file names may hold ``<``, ``&`` or quotes) is escaped.

A file counts as *in sync* when ``|offset| < IN_SYNC_SEC`` (0.1 s): half the 0.2 s class step, so
exactly the files whose nearest class of the 21-class grid is zero; it is *out of sync* otherwise,
and *failed* when it has no offset.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..clock import CLOCK, IN_SYNC_TOLERANCE_SEC, SIGN, describe_offset
from ..errors import AvsyncError
from .assets import CSS, JS
from .svg import esc, finite, fmt_signed, fmt_time
from .syncmap import LOW_CONFIDENCE, has_sync_map, sync_map_svg, write_text_atomic

IN_SYNC_SEC = IN_SYNC_TOLERANCE_SEC  # one threshold for words, report and fix (clock.py)
THUMB_SIZE = (240, 80)  # px, the sync map in a table row
FULL_SIZE = (900, 400)  # px, the sync map a click reveals
COLUMNS = (  # header, sort key (None: not sortable), sort type, class, tooltip
    ("Sync map", None, "", "fit", ""),
    ("File", "name", "text", "", "Sort by file name"),
    ("Verdict", "abs", "number", "", "Sort by the size of the offset, |offset|"),
    ("Offset (s)", "offset", "number", "num fit", "Sort by signed offset (> 0: audio early)"),
    ("Confidence", "conf", "number", "num fit", "Sort by confidence"),
    ("Agreement", None, "", "num fit", ""),
    ("Drift (s/min)", "drift", "number", "num fit", "Sort by drift"),
    ("Duration", "duration", "number", "num fit", "Sort by duration"),
    ("Model", None, "", "", ""),
)


def status(result: dict) -> str:
    """``"in sync"``, ``"out of sync"`` or ``"failed"`` (see :data:`IN_SYNC_SEC`)."""
    off = result.get("offset_sec")
    if result.get("ok") and finite(off):
        return "in sync" if abs(off) < IN_SYNC_SEC else "out of sync"
    return "failed"


def summary_counts(results: list[dict]) -> dict[str, int]:
    """Files checked, in sync, out of sync and failed."""
    kinds = [status(r) for r in results]
    return {
        "checked": len(kinds),
        "in_sync": kinds.count("in sync"),
        "out_of_sync": kinds.count("out of sync"),
        "failed": kinds.count("failed"),
    }


def render_html_report(
    results: list[dict],
    *,
    title: str = "avsync report",
    settings: dict | None = None,
    generated_at: dt.datetime | None = None,
) -> str:
    """The HTML page for ``results`` (``avsync.result/1`` dicts), as a string.

    ``settings`` (e.g. window hop, device, batch size) are listed verbatim under "Model and
    settings". ``generated_at`` defaults to now (UTC).
    """
    when = (generated_at or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    counts = summary_counts(results)
    failed = [r for r in results if status(r) == "failed"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="avsync ' + esc(__version__) + '">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        "<noscript><style>tr.detail[hidden] { display: table-row; }</style></noscript>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">avsync {esc(__version__)} \u00b7 generated {esc(when)}</p>',
        "</header>",
        "<main>",
        '<section aria-labelledby="summary-h">',
        '<h2 id="summary-h">Summary</h2>',
        '<div class="cards">',
        _card("checked", counts["checked"], "files checked"),
        _card("in-sync", counts["in_sync"], "in sync"),
        _card("out-of-sync", counts["out_of_sync"], "out of sync"),
        _card("failed", counts["failed"], "failed"),
        "</div>",
        f'<p class="note">In sync: |offset| &lt; {IN_SYNC_SEC:g} s, half of the model\'s 0.2 s class '
        "step (the nearest class is zero). Out of sync: any larger offset. Failed: no offset could be "
        "measured.</p>",
        "</section>",
    ]
    out += _files_table(results)
    if failed:
        out += ['<section aria-labelledby="errors-h">', '<h2 id="errors-h">Errors</h2>', "<ul>"]
        for r in failed:
            out.append(
                f'<li><span class="fname">{esc(_name(r))}</span> <span class="error">'
                f"{esc(r.get('error') or 'no offset was measured')}</span></li>"
            )
        out += ["</ul>", "</section>"]
    out += _models_and_settings(results, settings)
    out += _how_to_read(results)
    out += [
        "</main>",
        f"<footer>avsync {esc(__version__)} \u00b7 report generated {esc(when)} \u00b7 "
        "self-contained: no network access is needed to view it.</footer>",
        f"<script>{JS}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(out) + "\n"


def write_html_report(results: list[dict], path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write :func:`render_html_report` to ``path`` (a temporary name, then ``os.replace``)."""
    return write_text_atomic(path, render_html_report(results, **kwargs))


def _name(r: dict) -> str:
    return os.path.basename(str(r.get("path") or "")) or "(unnamed)"


def _card(cls: str, n: int, label: str) -> str:
    return f'<div class="card {cls}"><span class="n">{n}</span> {label}</div>'


def _num(x: Any, digits: int = 2, signed: bool = False) -> str:
    if not finite(x):
        return '<span aria-label="none">\u2014</span>'
    return fmt_signed(x, digits) if signed else f"{x:.{digits}f}"


def _data(x: Any) -> str:
    return repr(float(x)) if finite(x) else ""


def _duration(sec: Any) -> str:
    if not finite(sec):
        return _num(None)
    return fmt_time(sec, True) if sec >= 60 else f"{sec:.1f} s"


def _files_table(results: list[dict]) -> list[str]:
    out = [
        '<section aria-labelledby="files-h">',
        '<h2 id="files-h">Files</h2>',
        '<div class="toolbar"><button type="button" id="show-all">Show all maps</button> '
        '<button type="button" id="hide-all">Hide all maps</button></div>',
        '<table id="files">',
        '<caption class="hint">Click a column heading to sort; click a sync map to enlarge it. '
        "Up in a map is audio early, down is audio late.</caption>",
        "<thead><tr>",
    ]
    for head, key, kind, cls, tip in COLUMNS:
        if key is None:
            out.append(f'<th scope="col" class="{cls}">{esc(head)}</th>')
        else:
            out.append(
                f'<th scope="col" class="{cls}" data-sort="{key}" data-type="{kind}"><button type="button" '
                f'class="sort" title="{esc(tip)}">{esc(head)}</button></th>'
            )
    out.append("</tr></thead>")
    for i, r in enumerate(results):
        out += _file_rows(i, r)
    out += ["</table>", "</section>"]
    return out


def _file_rows(i: int, r: dict) -> list[str]:
    kind = status(r)
    name, path = _name(r), str(r.get("path") or "")
    off = r.get("offset_sec") if kind != "failed" else None
    model = r.get("model") or {}
    drawable = has_sync_map(r)
    map_error = ""
    if drawable:
        try:
            thumb = sync_map_svg(r, width=THUMB_SIZE[0], height=THUMB_SIZE[1], thumbnail=True)
            full = sync_map_svg(r, width=FULL_SIZE[0], height=FULL_SIZE[1])
        except AvsyncError as e:  # a malformed result loses its map, not the whole report
            drawable, map_error = False, e.cause
    keys = {
        "index": str(i),
        "name": name,
        "offset": _data(off),
        "abs": _data(abs(off)) if finite(off) else "",
        "conf": _data(r.get("confidence")),
        "drift": _data(r.get("drift_sec_per_min")),
        "duration": _data(r.get("duration_sec")),
    }
    attrs = " ".join(f'data-{k}="{esc(v)}"' for k, v in keys.items())
    out = [f'<tbody class="file {kind.replace(" ", "-")}" {attrs}>', '<tr class="row">']
    if drawable:
        out.append(
            f'<td class="fit"><button type="button" class="thumb" aria-expanded="false" '
            f'aria-controls="detail-{i}" '
            f'title="{esc(f"Show or hide the full sync map of {name}")}">{thumb}</button></td>'
        )
    else:
        out.append(f'<td><span class="nomap">no map{esc(": " + map_error) if map_error else ""}</span></td>')
    out.append(
        f'<th scope="row" class="name" title="{esc(path)}"><span class="fname">{esc(name)}</span>'
        f'<span class="dir">{esc(os.path.dirname(path))}</span></th>'
    )
    badges = [f'<span class="badge {kind.replace(" ", "-")}">{kind}</span>']
    if r.get("at_range_edge"):
        badges.append(
            '<span class="badge warn" title="The offset is at the edge of the model\'s range: '
            'the true offset may be larger">range edge</span>'
        )
    if finite(r.get("confidence")) and r["confidence"] < LOW_CONFIDENCE:
        badges.append(f'<span class="badge warn">confidence &lt; {LOW_CONFIDENCE:g}</span>')
    if r.get("ok") and r.get("decided") is False:
        badges.append(f'<span class="badge warn" title="{esc(r.get("stopped") or "")}">undecided</span>')
    if r.get("ok") and r.get("partial"):
        n = len(r.get("skipped") or [])
        badges.append(f'<span class="badge warn" title="{n} window(s) could not be decoded">partial</span>')
    # The confidence has its own column; the verdict cell says the offset in words, or the cause.
    if kind == "failed":
        words = f'<span class="error">{esc(r.get("error") or "no offset was measured")}</span>'
    else:
        text = r.get("offset_words") or describe_offset(r["offset_sec"])  # finite: not "failed"
        words = "" if text == kind else f'<span class="words">{esc(text)}</span>'
    out.append(f'<td class="verdict">{"".join(badges)}{words}</td>')
    out.append(f'<td class="num fit">{_num(off, 2, signed=True)}</td>')
    out.append(f'<td class="num fit">{_num(r.get("confidence"))}</td>')
    out.append(f'<td class="num fit">{_num(r.get("agreement"))}</td>')
    out.append(f'<td class="num fit">{_num(r.get("drift_sec_per_min"), 2, signed=True)}</td>')
    out.append(f'<td class="num fit">{_duration(r.get("duration_sec"))}</td>')
    out.append(f"<td>{esc(model.get('name') or 'unknown')}</td>")
    out.append("</tr>")
    if drawable:
        out += [
            f'<tr class="detail" id="detail-{i}" hidden><td colspan="{len(COLUMNS)}">',
            full,
            _facts(r),
            "</td></tr>",
        ]
    out.append("</tbody>")
    return out


def _facts(r: dict) -> str:
    model = r.get("model") or {}
    lo, hi = (r.get("range_sec") or [None, None])[:2]
    facts = [
        ("Path", r.get("path")),
        (
            "Model",
            f"{model.get('name')} ({model.get('family')}), checkpoint {model.get('checkpoint') or 'default'}",
        ),
        ("Windows", _windows_read(r)),
        ("Range, resolution", f"{lo} s to {hi} s, {r.get('resolution_sec')} s steps"),
        ("File size", f"{r['file_size']:,} bytes" if finite(r.get("file_size")) else "unknown"),
        ("Analysis time", f"{r['elapsed_sec']:.1f} s" if finite(r.get("elapsed_sec")) else "unknown"),
    ]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _windows_read(r: dict) -> str:
    """How many windows the verdict comes from, of how many, and why reading stopped (1.1)."""
    used = len(r.get("windows") or [])
    total = r.get("windows_total")
    text = f"{used} of {total} ({r.get('sampling')}: {r.get('stopped')})" if total else str(used)
    skipped = r.get("skipped") or []
    if skipped:
        where = ", ".join(f"{s['start_sec']:g} s" for s in skipped[:5]) + (
            ", ..." if len(skipped) > 5 else ""
        )
        text += f"; {len(skipped)} could not be decoded (at {where}: {skipped[0]['error']})"
    return text


def _models_and_settings(results: list[dict], settings: dict | None) -> list[str]:
    models: dict[tuple, int] = {}
    for r in results:
        m = r.get("model") or {}
        key = (m.get("name") or "unknown", m.get("family") or "", m.get("checkpoint") or "default")
        models[key] = models.get(key, 0) + 1
    out = [
        '<section aria-labelledby="settings-h">',
        '<h2 id="settings-h">Model and settings</h2>',
        '<table class="kv"><thead><tr><th scope="col">Model</th><th scope="col">Family</th>'
        '<th scope="col">Checkpoint</th><th scope="col">Files</th></tr></thead><tbody>',
    ]
    for (name, family, ckpt), n in models.items():
        out.append(
            f"<tr><td>{esc(name)}</td><td>{esc(family)}</td><td><code>{esc(ckpt)}</code></td><td>{n}</td></tr>"
        )
    out.append("</tbody></table>")
    if settings:
        out.append('<h3 id="settings-list-h">Settings</h3>')
        out.append('<table class="kv" aria-labelledby="settings-list-h"><tbody>')
        for k, v in settings.items():
            text = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
            out.append(f'<tr><th scope="row">{esc(k)}</th><td><code>{esc(text)}</code></td></tr>')
        out.append("</tbody></table>")
    out.append("</section>")
    return out


def _how_to_read(results: list[dict]) -> list[str]:
    signs = sorted({str(r["sign"]) for r in results if r.get("sign")}) or [SIGN]
    clocks = sorted({str(r["clock"]) for r in results if r.get("clock")}) or [CLOCK]
    return [
        '<section aria-labelledby="read-h">',
        '<h2 id="read-h">How to read this report</h2>',
        '<table class="kv"><tbody>',
        f'<tr><th scope="row">Sign</th><td>{"<br>".join(esc(s) for s in signs)}</td></tr>',
        f'<tr><th scope="row">Clock</th><td>{"<br>".join(esc(c) for c in clocks)}</td></tr>',
        '<tr><th scope="row">Sync map</th><td>Each column is one 5 s window of the file; each row an offset '
        "class (up: audio early, down: audio late). Colour is the class probability relative to the "
        "window's most likely class (viridis: dark purple = unlikely, yellow = most likely). Solid line: "
        "the file's offset. Dashed line: a least-squares fit of the windows' expected offsets, labelled "
        f"with the reported drift. Orange triangles: windows with confidence below {LOW_CONFIDENCE:g}. "
        "Grey: no window.</td></tr>",
        f'<tr><th scope="row">In sync</th><td>|offset| &lt; {IN_SYNC_SEC:g} s</td></tr>',
        "</tbody></table>",
        "</section>",
    ]
