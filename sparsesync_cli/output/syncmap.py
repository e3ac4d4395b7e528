"""Sync maps: one result drawn as an SVG figure of offset class against file time.

Each model window is a column; each of its offset classes a cell whose colour is that class's
probability relative to the window's most likely class (so every column shows its peak, however
flat its distribution). Colours come from the colour-blind-safe viridis palette, quantised to
:data:`PALETTE_LEVELS` steps that the colour bar shows exactly. On top: the aggregated offset as a
solid line, the drift line (the robust line fit stored in the result's ``trend``, whose slope is
the rate the result reports), and a marker above every window whose
confidence is below :data:`LOW_CONFIDENCE`.

Up: audio early (offset > 0). Down: audio late. Pure Python, no plotting library: the SVG is
written by hand, valid standalone (``xmlns``) and embeddable inline in HTML (it uses no ids).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .. import atomic
from ..clock import WINDOW_SEC
from ..errors import AvsyncError, UsageError
from .svg import esc, finite, fmt_signed, fmt_time, middle_ellipsis, nice_time_step, palette_colour

# A window whose confidence (its reported ``confidence``, else its top class probability) is below
# this gets a marker: the model gives its best guess less than even odds.
LOW_CONFIDENCE = 0.5
PALETTE_LEVELS = 32  # colour steps; the colour bar shows each one
MAX_COLUMNS = 240  # full map: more windows than this are averaged in consecutive groups
MAX_THUMB_COLUMNS = 60  # thumbnail: the same, coarser (a thumbnail is ~240 px wide)
MARKER_STYLE = 'fill="#d55e00" stroke="#000000" stroke-width="0.6"'  # vermilion: stands out on viridis
POINTER_STYLE = 'fill="#ffffff" stroke="#000000" stroke-width="0.8"'
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def has_sync_map(result: dict) -> bool:
    """True when ``result`` can be drawn: it succeeded and has at least one window."""
    return bool(result.get("ok")) and bool(result.get("windows")) and bool(result.get("grid"))


def sync_map_svg(result: dict, *, width: int = 900, height: int = 400, thumbnail: bool = False) -> str:
    """The sync map of one ``avsync.result/1`` dict, as a standalone SVG document string.

    ``thumbnail=True`` draws only the data (cells, offset and drift lines, low-confidence marks),
    for a table cell; use a small size such as 240x80. A failed result, or one without windows,
    has no map: :class:`~sparsesync_cli.errors.UsageError` (check with :func:`has_sync_map`).
    """
    if not has_sync_map(result):
        why = "it failed" if not result.get("ok") else "it has no windows"
        raise UsageError(f"no sync map: {why}", result.get("path"))
    grid = [float(g) for g in result["grid"]]
    res = float(result.get("resolution_sec") or (grid[1] - grid[0] if len(grid) > 1 else 1.0))
    cols = _columns(result, grid, MAX_THUMB_COLUMNS if thumbnail else MAX_COLUMNS)

    if thumbnail:
        left, right, top, bottom = 7.0, 7.0, 7.0, 1.0
    else:
        left, right, top, bottom = 78.0, 92.0, 62.0, 66.0
    px0, px1, py0, py1 = left, width - right, top, height - bottom
    t_hi = max([float(result.get("duration_sec") or 0.0)] + [c["x1"] for c in cols])
    y_lo, y_hi = grid[0] - res / 2, grid[-1] + res / 2

    def sx(t: float) -> float:
        return px0 + (px1 - px0) * t / t_hi if t_hi > 0 else px0

    def sy(v: float) -> float:  # offset (s) -> y; audio early (positive) is up
        return py1 - (py1 - py0) * (v - y_lo) / (y_hi - y_lo)

    name = os.path.basename(str(result.get("path") or "")) or "(unnamed)"
    verdict = verdict_words(result)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="{esc(FONT)}" class="syncmap">',
        f"<title>{esc(f'Sync map of {name}: {verdict}')}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        # Light grey where no window was analysed (before the first, after the last, in gaps).
        f'<rect x="{px0:.2f}" y="{py0:.2f}" width="{px1 - px0:.2f}" height="{py1 - py0:.2f}" '
        'fill="#d9d9d9"/>',
        # crispEdges: anti-aliased seams between adjacent cells would draw a faint grid.
        '<g shape-rendering="crispEdges">',
    ]
    # Cells: one <g> per column, vertical runs of equal colour merged into one rect to keep the
    # file small; the group's title gives the numbers behind the colours.
    for c in cols:
        x0, x1 = sx(c["x0"]), sx(c["x1"])
        tip = (
            f"{c['label']}: expected {c['expected']:+.2f} s, most likely {grid[c['argmax']]:+.1f} s "
            f"(p={c['probs'][c['argmax']]:.2f}), confidence {c['confidence']:.2f}"
        )
        out.append(f'<g data-window="{c["index"]}"><title>{esc(tip)}</title>')
        levels = [_level(p, c["probs"][c["argmax"]]) for p in c["probs"]]
        i = 0
        while i < len(grid):
            j = i
            while j + 1 < len(grid) and levels[j + 1] == levels[i]:
                j += 1
            ya, yb = sy(grid[j] + res / 2), sy(grid[i] - res / 2)
            out.append(
                f'<rect x="{x0:.2f}" y="{ya:.2f}" width="{max(x1 - x0, 0.5):.2f}" '
                f'height="{yb - ya:.2f}" fill="{palette_colour(levels[i] / (PALETTE_LEVELS - 1))}"/>'
            )
            i = j + 1
        out.append("</g>")
    out.append("</g>")
    # Low-confidence markers: small downward triangles in a strip just above the plot.
    for c in cols:
        if c["confidence"] < LOW_CONFIDENCE:
            xm, s = (sx(c["x0"]) + sx(c["x1"])) / 2, 3.0 if thumbnail else 4.5
            out.append(
                f'<path class="low-confidence" d="M{xm - s:.2f},{py0 - 2 * s - 1:.2f} '
                f'h{2 * s:.2f} l{-s:.2f},{2 * s:.2f} z" {MARKER_STYLE}/>'
            )
    out += _lines(result, cols, sx, sy, (px0, px1, py0, py1), (y_lo, y_hi), thumbnail)
    if not thumbnail:
        out += _axes(result, name, verdict, grid, t_hi, sx, sy, (px0, px1, py0, py1), width)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_sync_map(result: dict, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write :func:`sync_map_svg` of ``result`` to ``path`` (a temporary name, then ``os.replace``)."""
    text = sync_map_svg(result, **kwargs)
    return write_text_atomic(path, text)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` with :func:`sparsesync_cli.atomic.write_text`; one-line errors."""
    try:
        return atomic.write_text(path, text)
    except OSError as e:
        raise AvsyncError(f"cannot write here: {e.strerror or e}", path) from e


def verdict_words(result: dict) -> str:
    """The verdict in words: ``"audio 0.40 s early, confidence 0.93"``, or ``"failed: <cause>"``."""
    if not result.get("ok"):
        return f"failed: {result.get('error') or 'unknown error'}"
    words = result.get("offset_words") or (
        f"offset {result['offset_sec']:+.2f} s" if finite(result.get("offset_sec")) else "no offset"
    )
    conf = result.get("confidence")
    return f"{words}, confidence {conf:.2f}" if finite(conf) else words


def drift_line(result: dict) -> tuple[float, float] | None:
    """The stored drift line as (slope s/s, offset at map time 0), or None when there is no drift.

    Drawn from the result's ``trend`` (``avsync.result/1.1``), the robust fit whose slope is the
    reported ``drift_sec_per_min``, never refitted here. The trend's times are where each window's
    used part starts; the map places a window at its centre, ``WINDOW_SEC / 2`` later. A ``/1``
    record has no stored trend and gets no line (its drift is still stated in words).
    """
    trend = result.get("trend")
    if not trend or trend.get("kind") != "drift" or not trend.get("line"):
        return None
    line = trend["line"]
    slope = line.get("slope_sec_per_min")
    icpt = line.get("intercept_sec")
    if not (finite(slope) and finite(icpt)):
        return None
    per_sec = slope / 60.0
    return per_sec, icpt - per_sec * WINDOW_SEC / 2


def _probs(window: dict, grid: list[float], result: dict) -> list[float]:
    """The window's class probabilities (softmax of its logits when probs are missing)."""
    p = window.get("probs")
    if not p and window.get("logits"):
        m = max(window["logits"])
        e = [math.exp(v - m) for v in window["logits"]]
        p = [v / sum(e) for v in e]
    if not p or len(p) != len(grid):
        n = len(p or [])
        raise UsageError(
            f"a window has {n} class probabilities for a {len(grid)}-class grid", result.get("path")
        )
    return [float(v) if finite(v) and v > 0 else 0.0 for v in p]


def _expected(p: list[float], grid: list[float]) -> float:
    total = sum(p)
    return sum(a * g for a, g in zip(p, grid, strict=True)) / total if total > 0 else 0.0


def _level(p: float, pmax: float) -> int:
    return round((p / pmax if pmax > 0 else 0.0) * (PALETTE_LEVELS - 1))


def _columns(result: dict, grid: list[float], max_cols: int) -> list[dict]:
    """Windows as plot columns in file time; consecutive groups averaged when there are too many.

    A window is drawn around its centre, as wide as the spacing to its neighbours allows but at most
    WINDOW_SEC, so overlapping windows tile the axis and non-overlapping ones cover their span.
    """
    wins = sorted(result["windows"], key=lambda w: float(w["start_sec"]))
    centres = [float(w["start_sec"]) + WINDOW_SEC / 2 for w in wins]
    spans = []
    for i, c in enumerate(centres):
        lo = c - WINDOW_SEC / 2 if i == 0 else max(c - WINDOW_SEC / 2, (centres[i - 1] + c) / 2)
        hi = (
            c + WINDOW_SEC / 2 if i == len(centres) - 1 else min(c + WINDOW_SEC / 2, (c + centres[i + 1]) / 2)
        )
        spans.append((max(lo, 0.0), hi))
    group = math.ceil(len(wins) / max_cols)
    # Groups never reach across a gap (windows not read, or not decodable): a gap stays grey.
    runs, start = [], 0
    for i in range(1, len(wins) + 1):
        if i == len(wins) or i - start == group or spans[i][0] > spans[i - 1][1] + 1e-6:
            runs.append(range(start, i))
            start = i
    cols = []
    for members in runs:
        probs = [_probs(wins[i], grid, result) for i in members]
        mean = [sum(col) / len(probs) for col in zip(*probs, strict=True)]
        confs = [wins[i].get("confidence") for i in members]
        confs = [c if finite(c) else max(p) for c, p in zip(confs, probs, strict=True)]
        first, last = members[0], members[-1]
        cols.append(
            {
                "index": first,
                "x0": spans[first][0],
                "x1": spans[last][1],
                "centre": sum(centres[i] for i in members) / len(members),
                "probs": mean,
                "argmax": max(range(len(mean)), key=mean.__getitem__),
                "expected": _expected(mean, grid),
                "confidence": sum(confs) / len(confs),
                "label": (f"window {first + 1}" if group == 1 else f"windows {first + 1}-{last + 1}")
                + f" ({spans[first][0]:.1f}-{spans[last][1]:.1f} s)",
            }
        )
    return cols


def _halo_line(
    cls: str, data: str, x1: float, y1: float, x2: float, y2: float, thin: bool, dash: str
) -> list[str]:
    """A white line on a black halo, visible on both ends of the palette (dark purple, yellow)."""
    wide, narrow = (2.6, 1.2) if thin else (4.5, 2.2)
    pts = f'x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}"'
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return [
        f'<g class="{cls}" {data}>',
        f'<line {pts} stroke="#000000" stroke-width="{wide}"{dash_attr} stroke-linecap="butt"/>',
        f'<line {pts} stroke="#ffffff" stroke-width="{narrow}"{dash_attr} stroke-linecap="butt"/>',
        "</g>",
    ]


def _lines(result, cols, sx, sy, box, ydom, thin: bool) -> list[str]:
    px0, px1, _, _ = box
    y_lo, y_hi = ydom
    out = []
    drift = result.get("drift_sec_per_min")
    fit = drift_line(result) if finite(drift) else None
    if fit is not None:
        slope, icpt = fit
        t_a, t_b = cols[0]["centre"], cols[-1]["centre"]
        # Clip the fitted segment to the plotted offset range.
        ends = []
        for t in (t_a, t_b):
            v = slope * t + icpt
            if not y_lo <= v <= y_hi and slope != 0:
                t = (min(max(v, y_lo), y_hi) - icpt) / slope
                t = min(max(t, t_a), t_b)
            ends.append((t, min(max(slope * t + icpt, y_lo), y_hi)))
        data = f'data-drift-sec-per-min="{drift:g}" data-fit-sec-per-min="{slope * 60:g}"'
        (ta, va), (tb, vb) = ends
        out += _halo_line("drift-line", data, sx(ta), sy(va), sx(tb), sy(vb), thin, "3,2" if thin else "8,5")
    off = result.get("offset_sec")
    if finite(off):
        y = sy(min(max(off, y_lo), y_hi))
        data = f'data-offset-sec="{off:g}"'
        if not thin:
            return [*out, *_halo_line("offset-line", data, px0, y, px1, y, thin, "")]
        # A thumbnail's cells are ~3 px tall: a solid line would hide the band it summarises, so
        # draw a dotted line and point at it with a triangle in each side margin.
        out += [
            f'<g class="offset-line" {data}>',
            f'<line x1="{px0:.2f}" y1="{y:.2f}" x2="{px1:.2f}" y2="{y:.2f}" stroke="#ffffff" '
            'stroke-width="0.8" stroke-dasharray="1.5,2.5"/>',
            f'<path d="M{px0 - 6:.2f},{y - 4:.2f} l6,4 l-6,4 z" {POINTER_STYLE}/>',
            f'<path d="M{px1 + 6:.2f},{y - 4:.2f} l-6,4 l6,4 z" {POINTER_STYLE}/>',
            "</g>",
        ]
    return out


def _axes(result, name, verdict, grid, t_hi, sx, sy, box, width) -> list[str]:
    px0, px1, py0, py1 = box
    model = (result.get("model") or {}).get("name") or "unknown model"
    extras = []
    if finite(result.get("drift_sec_per_min")):
        extras.append(f"drift {fmt_signed(result['drift_sec_per_min'])} s/min")
    if result.get("at_range_edge"):
        extras.append("at the edge of the model's range: the true offset may be larger")
    line2 = " \u00b7 ".join([verdict, *extras])
    out = [
        f'<text x="{px0:.0f}" y="22" font-size="15" font-weight="bold" fill="#111111">'
        f"{esc(middle_ellipsis(name, int((width - px0) / 9) - len(model) - 3))} \u2014 {esc(model)}</text>",
        f'<text x="{px0:.0f}" y="42" font-size="13" fill="#222222">'
        f"{esc(middle_ellipsis(line2, int((width - px0) / 6.6)))}</text>",
        f'<rect x="{px0:.2f}" y="{py0:.2f}" width="{px1 - px0:.2f}" height="{py1 - py0:.2f}" '
        'fill="none" stroke="#333333" stroke-width="1"/>',
    ]
    # y: a labelled tick at each whole second (each class for a coarse grid), short ticks per class.
    res = grid[1] - grid[0] if len(grid) > 1 else 1.0
    for g in grid:
        major = res >= 0.99 or abs(g - round(g)) < 1e-6
        y = sy(g)
        out.append(
            f'<line class="ytick" data-value="{g:g}" x1="{px0 - (6 if major else 3):.2f}" y1="{y:.2f}" '
            f'x2="{px0:.2f}" y2="{y:.2f}" stroke="#333333"/>'
        )
        if major:
            label = "0 s" if abs(g) < 1e-9 else f"{fmt_signed(g, 1)} s"
            out.append(
                f'<text x="{px0 - 9:.2f}" y="{y + 4:.2f}" font-size="12" text-anchor="end" fill="#222222">'
                f"{label}</text>"
            )
    # Rotated to read upwards, starting (early) or ending (late) just beside zero: never overlapping.
    for text, anchor, y in (
        ("audio early \u2192", "start", sy(0.0) - 8),
        ("\u2190 audio late", "end", sy(0.0) + 8),
    ):
        out.append(
            f'<text x="22" y="{y:.2f}" font-size="12" font-weight="bold" fill="#222222" '
            f'text-anchor="{anchor}" transform="rotate(-90 22 {y:.2f})">{text}</text>'
        )
    # x: file time, in seconds, or m:ss from two minutes on.
    clock = t_hi >= 120
    step = nice_time_step(t_hi)
    k = 0
    while k * step <= t_hi + 1e-9:
        x = sx(k * step)
        out.append(
            f'<line class="xtick" data-value="{k * step:g}" x1="{x:.2f}" y1="{py1:.2f}" x2="{x:.2f}" '
            f'y2="{py1 + 5:.2f}" stroke="#333333"/>'
        )
        out.append(
            f'<text x="{x:.2f}" y="{py1 + 18:.2f}" font-size="12" text-anchor="middle" fill="#222222">'
            f"{fmt_time(k * step, clock)}</text>"
        )
        k += 1
    out.append(
        f'<text x="{(px0 + px1) / 2:.2f}" y="{py1 + 34:.2f}" font-size="12" text-anchor="middle" '
        f'fill="#222222">file time ({"m:ss" if clock else "s"}), windows of {WINDOW_SEC:g} s</text>'
    )
    out += _colour_bar(px1 + 14, py0, py1, width)
    out += _legend(result, px0, py1 + 56)
    return out


def _colour_bar(x: float, y0: float, y1: float, width: int) -> list[str]:
    out = []
    h = (y1 - y0) / PALETTE_LEVELS
    for lv in range(PALETTE_LEVELS):
        y = y1 - (lv + 1) * h
        colour = palette_colour(lv / (PALETTE_LEVELS - 1))
        out.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="14" height="{h + 0.3:.2f}" fill="{colour}"/>')
    out.append(
        f'<rect x="{x:.2f}" y="{y0:.2f}" width="14" height="{y1 - y0:.2f}" fill="none" stroke="#333333"/>'
    )
    for v, label in ((1.0, "1"), (0.5, "0.5"), (0.0, "0")):
        y = y1 - v * (y1 - y0)
        out.append(f'<text x="{x + 18:.2f}" y="{y + 4:.2f}" font-size="11" fill="#222222">{label}</text>')
    xc, yc = width - 12, (y0 + y1) / 2
    out.append(
        f'<text x="{xc:.2f}" y="{yc:.2f}" font-size="11" fill="#222222" text-anchor="middle" '
        f'transform="rotate(-90 {xc:.2f} {yc:.2f})">probability \u00f7 window maximum</text>'
    )
    return out


def _legend(result: dict, x: float, y: float) -> list[str]:
    items = []
    if finite(result.get("offset_sec")):
        items.append(("", f"offset {fmt_signed(result['offset_sec'])} s"))
    if finite(result.get("drift_sec_per_min")):
        items.append(("8,5", f"drift {fmt_signed(result['drift_sec_per_min'])} s/min (line: robust fit)"))
    items.append(("marker", f"window confidence < {LOW_CONFIDENCE:g}"))
    total, used = result.get("windows_total"), len(result.get("windows") or [])
    skipped = len(result.get("skipped") or [])
    if (total and used < total) or skipped:
        why = f"{skipped} could not be decoded" if skipped else "fast triage"
        items.append(("grey", f"grey: not read ({used} of {total or used + skipped} windows; {why})"))
    out = []
    for dash, label in items:
        if dash == "marker":
            out.append(f'<path d="M{x + 8:.2f},{y - 8:.2f} h9 l-4.5,9 z" {MARKER_STYLE}/>')
        elif dash == "grey":
            out.append(
                f'<rect class="legend-gap" x="{x + 4:.2f}" y="{y - 10:.2f}" width="18" height="12" '
                'fill="#d9d9d9"/>'
            )
        else:
            out += _halo_line("legend", "", x, y - 4, x + 26, y - 4, False, dash)[1:3]
        out.append(f'<text x="{x + 32:.2f}" y="{y:.2f}" font-size="12" fill="#222222">{esc(label)}</text>')
        x += 32 + 6.6 * len(label) + 18
    return out
