"""The evaluation as one self-contained HTML page: the summary against the published value, the
confusion matrix as a heat map, the reliability diagram, accuracy per offset and the worst items.

It formats what :func:`~.metrics.compute_metrics` computed and the item records; it recomputes
no metric.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import softmax
from .protocol import write_text_atomic

WORST_ITEMS = 25
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse}td,th{padding:2px 6px;border:1px solid #ddd;text-align:right}
th{background:#f4f4f4}.cm td{width:26px;height:22px;font-size:11px;padding:0;text-align:center}
.big{font-size:1.3em}.muted{color:#777}a{color:#0645ad}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _summary(
    metrics: dict[str, Any], published: dict[str, float], title: str, settings: dict[str, Any]
) -> str:
    rows = [
        ("items evaluated", metrics["n"]),
        ("items failed", metrics["n_failed"]),
        ("Acc@1 (%)", _fmt(metrics["acc1"])),
        ("Acc@1 within ±1 class (%)", _fmt(metrics["acc1_pm1"])),
        ("Acc@5 (%)", _fmt(metrics.get("acc5"))),
        ("Acc@5 within ±1 class (%)", _fmt(metrics.get("acc5_pm1"))),
        ("mAP (one-vs-rest)", _fmt(metrics.get("map"), 4)),
        ("mean ROC-AUC", _fmt(metrics.get("roc_auc"), 4)),
        ("d-prime", _fmt(metrics.get("dprime"), 4)),
        ("mean |offset error| (s)", _fmt(metrics["mean_abs_offset_error_sec"], 3)),
        ("ECE (10 bins)", _fmt(metrics["ece"], 4)),
        ("Brier score", _fmt(metrics["brier"], 4)),
        ("temperature", metrics.get("temperature", 1.0)),
    ]
    if metrics.get("passes"):
        rows.append(("randomised passes (seed)", f"{metrics['passes']} ({metrics['seed']})"))
        rows.append(("Acc@1 per pass (%)", ", ".join(_fmt(x) for x in metrics["acc1_per_pass"])))
        rows.append(("Acc@1 std over passes", _fmt(metrics["acc1_per_pass_std"])))
    rows += [("warning", w) for w in metrics.get("warnings") or []]
    for name, value in published.items():
        rows.append((f"published Acc@1 of {name} (%)", value))
    rows += [(k, v) for k, v in settings.items() if v is not None]
    body = "".join(f"<tr><th style='text-align:left'>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<h1>{_e(title)}</h1><p class='big'>Acc@1 {_fmt(metrics['acc1'])} %</p><table>{body}</table>"


def _fmt(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _confusion(metrics: dict[str, Any]) -> str:
    cm = np.asarray(metrics["confusion"], dtype=float)
    if cm.size == 0:
        return ""
    grid = metrics["grid"]
    rows_total = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows_total, out=np.zeros_like(cm), where=rows_total > 0)
    head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{g:+.1f}</th>" for g in grid) + "</tr>"
    body = []
    for i, g in enumerate(grid):
        cells = []
        for j in range(len(grid)):
            s = share[i, j]
            color = f"rgba(20,80,200,{s:.3f})"
            fg = "#fff" if s > 0.5 else "#222"
            n = int(cm[i, j])
            cells.append(f"<td style='background:{color};color:{fg}' title='{n} item(s)'>{n or ''}</td>")
        body.append(f"<tr><th>{g:+.1f}</th>{''.join(cells)}</tr>")
    return (
        "<h2>Confusion matrix</h2><p class='muted'>rows: true offset (s), columns: predicted; "
        "colour: share of the row</p><table class='cm'>" + head + "".join(body) + "</table>"
    )


def _reliability_svg(metrics: dict[str, Any]) -> str:
    w, h, pad = 320, 320, 40
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{w + 2 * pad}' height='{h + 2 * pad}'>",
        f"<rect x='{pad}' y='{pad}' width='{w}' height='{h}' fill='none' stroke='#999'/>",
        f"<line x1='{pad}' y1='{pad + h}' x2='{pad + w}' y2='{pad}' stroke='#bbb' stroke-dasharray='4'/>",
    ]
    for r in metrics["reliability"]:
        if not r["n"]:
            continue
        x = pad + r["lo"] * w
        bh = r["accuracy"] * h
        parts.append(
            f"<rect x='{x + 1:.1f}' y='{pad + h - bh:.1f}' width='{w / 10 - 2:.1f}' height='{bh:.1f}' "
            f"fill='#3b6fd4'><title>confidence {r['confidence']:.3f}, accuracy {r['accuracy']:.3f}, "
            f"{r['n']} item(s)</title></rect>"
        )
        cy = pad + h - r["confidence"] * h
        parts.append(f"<circle cx='{x + w / 20:.1f}' cy='{cy:.1f}' r='3' fill='#d43b3b'/>")
    for k in range(0, 11, 2):
        parts.append(
            f"<text x='{pad + k * w / 10:.0f}' y='{pad + h + 15}' font-size='10' "
            f"text-anchor='middle'>{k / 10:.1f}</text>"
        )
        parts.append(
            f"<text x='{pad - 5}' y='{pad + h - k * h / 10 + 3:.0f}' font-size='10' "
            f"text-anchor='end'>{k / 10:.1f}</text>"
        )
    parts.append(
        f"<text x='{pad + w / 2}' y='{pad + h + 32}' font-size='11' text-anchor='middle'>confidence</text>"
    )
    parts.append("</svg>")
    return (
        "<h2>Reliability diagram</h2><p class='muted'>bars: accuracy per confidence bin; red dots: "
        "mean confidence; dashed: perfect calibration</p>" + "".join(parts)
    )


def _per_offset(metrics: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{c['offset_sec']:+.1f}</td><td>{c['n']}</td><td>{_fmt(c['acc1'])}</td>"
        f"<td style='text-align:left'><div style='background:#3b6fd4;height:10px;"
        f"width:{(c['acc1'] or 0) * 2:.0f}px'></div></td></tr>"
        for c in metrics["per_class"]
    )
    return (
        "<h2>Accuracy per offset</h2><table><tr><th>true offset (s)</th><th>items</th><th>Acc@1 (%)</th>"
        f"<th></th></tr>{rows}</table>"
    )


def worst_items(
    records: Sequence[dict[str, Any]], grid: Sequence[float], temperature: float = 1.0, k: int = WORST_ITEMS
) -> list[dict[str, Any]]:
    """Wrong items, largest offset error first, then the most confident."""
    out = []
    for r in records:
        if not r.get("ok") or r["pred_class"] == r["target_class"]:
            continue
        p = softmax(np.asarray([r["logits"]]), temperature)[0]
        err = abs(grid[r["pred_class"]] - r["offset_sec"])
        out.append({**r, "error_sec": err, "confidence": float(p.max())})
    out.sort(key=lambda r: (-r["error_sec"], -r["confidence"]))
    return out[:k]


def _link(r: dict[str, Any]) -> str:
    f = r.get("file")
    if not f:
        return _e(r["path"])
    return f"<a href='{_e(Path(os.path.abspath(f)).as_uri())}'>{_e(r['path'])}</a>"


def _worst(records, metrics) -> str:
    rows = "".join(
        f"<tr><td style='text-align:left'>{_link(r)}</td><td>{r['vstart_sec']:.2f}</td>"
        f"<td>{r['offset_sec']:+.2f}</td>"
        f"<td>{metrics['grid'][r['pred_class']]:+.1f}</td><td>{r['confidence']:.2f}</td></tr>"
        for r in worst_items(records, metrics["grid"], metrics.get("temperature", 1.0))
    )
    failed = "".join(
        f"<tr><td style='text-align:left'>{_e(f['path'])}</td><td>{f['vstart_sec']:.2f}</td>"
        f"<td>{f['offset_sec']:+.2f}</td>"
        f"<td style='text-align:left' colspan='2'>{_e(f['error'])}</td></tr>"
        for f in metrics["failed"]
    )
    out = (
        "<h2>Worst items</h2><table><tr><th>clip</th><th>start (s)</th><th>true offset (s)</th>"
        f"<th>predicted (s)</th><th>confidence</th></tr>{rows}</table>"
    )
    if failed:
        out += (
            f"<h2>Failed items ({metrics['n_failed']})</h2><table><tr><th>clip</th><th>start</th>"
            f"<th>offset</th><th colspan='2'>error</th></tr>{failed}</table>"
        )
    return out


def evaluation_html(
    metrics: dict[str, Any],
    records: Sequence[dict[str, Any]],
    *,
    title: str = "avsync evaluation",
    published: dict[str, float] | None = None,
    settings: dict[str, Any] | None = None,
) -> str:
    """The page as a string (no external resources)."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
        + _summary(metrics, published or {}, title, settings or {})
        + _confusion(metrics)
        + _reliability_svg(metrics)
        + _per_offset(metrics)
        + _worst(records, metrics)
        + "</body></html>\n"
    )


def write_evaluation_html(
    path: str | os.PathLike, metrics: dict[str, Any], records: Sequence[dict[str, Any]], **kw: Any
) -> None:
    """Write :func:`evaluation_html` atomically to ``path``."""
    write_text_atomic(Path(path), evaluation_html(metrics, records, **kw))
