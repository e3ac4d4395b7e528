"""The sync map: checked by parsing the SVG and comparing its geometry with the result's numbers."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from helpers.report_examples import GRID3, SYNCHFORMER, failed, result

from sparsesync_cli.errors import AvsyncError, UsageError
from sparsesync_cli.output.svg import VIRIDIS
from sparsesync_cli.output.syncmap import (
    LOW_CONFIDENCE,
    MAX_COLUMNS,
    has_sync_map,
    sync_map_svg,
    write_sync_map,
)

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{NS}svg"
    return root


def axis(root: ET.Element, cls: str) -> tuple[float, float, float, float]:
    """(value_a, pixel_a, value_b, pixel_b) of the first and last tick of an axis."""
    ticks = [e for e in root.iter(f"{NS}line") if e.get("class") == cls]
    assert len(ticks) >= 2
    coord = "y1" if cls == "ytick" else "x1"
    a, b = ticks[0], ticks[-1]
    return float(a.get("data-value")), float(a.get(coord)), float(b.get("data-value")), float(b.get(coord))


def to_px(value: float, ax: tuple[float, float, float, float]) -> float:
    va, pa, vb, pb = ax
    return pa + (value - va) * (pb - pa) / (vb - va)


def to_value(px: float, ax: tuple[float, float, float, float]) -> float:
    va, pa, vb, pb = ax
    return va + (px - pa) * (vb - va) / (pb - pa)


def group(root: ET.Element, cls: str) -> ET.Element | None:
    return next((g for g in root.iter(f"{NS}g") if g.get("class") == cls), None)


@pytest.mark.parametrize(
    "res",
    [
        result("a.mp4", 0.4, seed=2),
        result("b.mp4", -1.2, seed=3),
        result("c.mp4", 0.0, seed=1),
        result("d.mp4", 1.0, grid=GRID3, model=SYNCHFORMER, n_windows=2, seed=6),
    ],
    ids=["early", "late", "in-sync", "3-class"],
)
@pytest.mark.parametrize("thumbnail", [False, True])
def test_offset_line_sits_at_the_results_offset(res, thumbnail):
    root = parse(sync_map_svg(res))
    y_axis = axis(root, "ytick")
    # Up is audio early: the tick of a larger offset is higher on the page.
    assert y_axis[3] < y_axis[1] and y_axis[2] > y_axis[0]
    expected_y = to_px(res["offset_sec"], y_axis)
    if thumbnail:  # same figure, without axes: the line must sit on the row of the offset's class
        root = parse(sync_map_svg(res, width=240, height=80, thumbnail=True))
    line = group(root, "offset-line").find(f"{NS}line")
    assert float(line.get("y1")) == pytest.approx(float(line.get("y2")))
    if not thumbnail:
        assert float(line.get("y1")) == pytest.approx(expected_y, abs=0.01)
    # The line runs through the middle of the offset's class cell in every column.
    cls = res["grid"].index(res["offset_sec"])
    for g in root.iter(f"{NS}g"):
        if g.get("data-window") is None:
            continue
        cell = cell_of_class(g, cls, len(res["grid"]), root)
        assert float(cell.get("y")) < float(line.get("y1")) < float(cell.get("y")) + float(cell.get("height"))


def cell_of_class(g: ET.Element, cls: int, n_classes: int, root: ET.Element) -> ET.Element:
    """The rect of a window column that covers class ``cls`` (rows are merged runs, top = last class)."""
    rects = sorted(g.findall(f"{NS}rect"), key=lambda r: float(r.get("y")))
    top = float(rects[0].get("y"))
    bottom = float(rects[-1].get("y")) + float(rects[-1].get("height"))
    row_h = (bottom - top) / n_classes
    y_mid = top + (n_classes - 1 - cls + 0.5) * row_h
    hits = [r for r in rects if float(r.get("y")) <= y_mid <= float(r.get("y")) + float(r.get("height"))]
    assert len(hits) == 1
    return hits[0]


@pytest.mark.parametrize("thumbnail", [False, True])
def test_colours_follow_the_probabilities(thumbnail):
    res = result("a.mp4", 0.4, seed=2, flat_windows=(3,))
    root = parse(
        sync_map_svg(
            res, width=240 if thumbnail else 900, height=80 if thumbnail else 400, thumbnail=thumbnail
        )
    )
    columns = [g for g in root.iter(f"{NS}g") if g.get("data-window") is not None]
    assert len(columns) == len(res["windows"])
    for g, w in zip(columns, res["windows"], strict=True):
        p = np.array(w["probs"])
        best = int(p.argmax())
        assert cell_of_class(g, best, 21, root).get("fill") == VIRIDIS[-1]  # the top of the palette
        # A class with under 1/100 of the top probability gets the palette's bottom colour.
        for k in np.flatnonzero(p < p.max() / 100):
            assert cell_of_class(g, int(k), 21, root).get("fill") == VIRIDIS[0]
        # Colour order follows probability order (viridis green rises monotonically).
        greens = [int(cell_of_class(g, k, 21, root).get("fill")[3:5], 16) for k in np.argsort(p)]
        assert greens == sorted(greens)


def test_low_confidence_windows_are_marked():
    res = result("a.mp4", 0.4, seed=2, flat_windows=(1, 3))
    low = [w for w in res["windows"] if w["confidence"] < LOW_CONFIDENCE]
    assert len(low) == 2
    root = parse(sync_map_svg(res))
    marks = [e for e in root.iter(f"{NS}path") if e.get("class") == "low-confidence"]
    assert len(marks) == 2
    x_axis = axis(root, "xtick")
    for mark, w in zip(marks, low, strict=True):  # each marker is centred over its window
        x_tip = float(mark.get("d").split()[0][1:].split(",")[0]) + 4.5
        assert to_value(x_tip, x_axis) == pytest.approx(w["start_sec"] + 2.5, abs=0.05)
    assert "window confidence &lt; 0.5" in sync_map_svg(res)


def test_drift_line_is_the_stored_trend_and_labelled_with_the_reported_rate():
    res = result("long.mp4", 0.2, n_windows=48, drift_per_min=0.25, seed=4)
    # The stored robust fit differs from a least-squares fit of the window means: the map must
    # draw the stored line (the one its label's rate belongs to), not refit the windows.
    res["trend"]["line"]["intercept_sec"] += 0.3
    line_fit = res["trend"]["line"]
    svg = sync_map_svg(res)
    root = parse(svg)
    line = group(root, "drift-line").find(f"{NS}line")
    x_axis, y_axis = axis(root, "xtick"), axis(root, "ytick")
    centres = np.array([w["start_sec"] + 2.5 for w in res["windows"]])
    for xa, ya in (("x1", "y1"), ("x2", "y2")):
        t = to_value(float(line.get(xa)), x_axis)  # a window centre; its used part starts 2.5 s earlier
        stored = line_fit["intercept_sec"] + line_fit["slope_sec_per_min"] * (t - 2.5) / 60
        assert to_value(float(line.get(ya)), y_axis) == pytest.approx(stored, abs=0.01)
    assert to_value(float(line.get("x1")), x_axis) == pytest.approx(centres[0], abs=0.05)
    assert to_value(float(line.get("x2")), x_axis) == pytest.approx(centres[-1], abs=0.05)
    assert "drift +0.25 s/min" in svg
    # A version 1.0 record has no stored trend: the drift is stated, no line is made up.
    old = {**res, "schema": "avsync.result/1"}
    del old["trend"], old["posterior"]
    old_svg = sync_map_svg(old)
    assert group(parse(old_svg), "drift-line") is None and "drift +0.25 s/min" in old_svg
    # 48 windows x 5 s = 4 minutes: the time axis switches to m:ss.
    labels = [e.text for e in root.iter(f"{NS}text")]
    assert "1:00" in labels and "4:00" in labels
    # No drift reported, no drift line.
    assert group(parse(sync_map_svg(result("a.mp4", 0.4))), "drift-line") is None


def test_title_names_file_model_and_verdict():
    res = result("/videos/concert.mp4", 0.4, seed=2)
    texts = " ".join(e.text or "" for e in parse(sync_map_svg(res)).iter(f"{NS}text"))
    assert "concert.mp4" in texts and "/videos" not in texts
    assert "sparsesync-vggsound" in texts
    assert f"audio 0.40 s early, confidence {res['confidence']:.2f}" in texts
    edge = result("e.mp4", 2.0, seed=5)
    texts = " ".join(e.text or "" for e in parse(sync_map_svg(edge)).iter(f"{NS}text"))
    assert "audio at least 2.00 s early" in texts
    assert "edge of the model's range" in texts


def test_hostile_file_names_are_escaped_and_the_svg_stays_valid():
    name = '<Tom> & "Jerry\'s" <script>alert(1)<\\script>\x01\udcff.mp4'
    svg = sync_map_svg(result(f"/x/{name}", -0.2, seed=7))
    assert "<script>" not in svg and "<Tom>" not in svg
    svg.encode("utf-8")  # a lone surrogate would make this raise
    title = parse(svg).find(f"{NS}title").text
    assert '<Tom> & "Jerry\'s" <script>alert(1)' in title  # shown as text, not markup


def test_failed_or_windowless_results_have_no_map():
    bad = failed("/x/broken.mp4", "/x/broken.mp4: no audio stream")
    assert not has_sync_map(bad)
    with pytest.raises(UsageError, match=r"broken\.mp4: no sync map: it failed"):
        sync_map_svg(bad)
    empty = dict(result("e.mp4", 0.0), windows=[])
    assert not has_sync_map(empty)
    with pytest.raises(UsageError, match="no windows"):
        sync_map_svg(empty)


def test_malformed_windows_are_a_clear_error_and_logits_alone_suffice():
    res = result("m.mp4", 0.4, seed=2)
    res["windows"][2]["probs"] = res["windows"][2]["probs"][:20]
    with pytest.raises(UsageError, match=r"m\.mp4: a window has 20 class probabilities for a 21-class grid"):
        sync_map_svg(res)
    res = result("m.mp4", 0.4, seed=2)
    for w in res["windows"]:
        del w["probs"]
    root = parse(sync_map_svg(res))
    g = next(g for g in root.iter(f"{NS}g") if g.get("data-window") == "0")
    best = int(np.argmax(result("m.mp4", 0.4, seed=2)["windows"][0]["logits"]))
    assert cell_of_class(g, best, 21, root).get("fill") == VIRIDIS[-1]  # the top of the palette


def test_long_files_are_summarised_to_a_bounded_number_of_columns():
    res = result("hour.mp4", -0.6, n_windows=720, seed=9)  # one hour of 5 s windows
    svg = sync_map_svg(res)
    root = parse(svg)
    columns = [g for g in root.iter(f"{NS}g") if g.get("data-window") is not None]
    assert len(columns) <= MAX_COLUMNS
    x_axis = axis(root, "xtick")
    rects = [r for g in columns for r in g.findall(f"{NS}rect")]
    left = min(float(r.get("x")) for r in rects)
    right = max(float(r.get("x")) + float(r.get("width")) for r in rects)
    assert to_value(left, x_axis) == pytest.approx(0.0, abs=1)
    assert to_value(right, x_axis) == pytest.approx(3600.0, abs=1)
    assert "1:00:00" in [e.text for e in root.iter(f"{NS}text")]
    assert len(svg) < 400_000


def test_write_sync_map_is_atomic_and_matches(tmp_path):
    res = result("a.mp4", 0.4, seed=2)
    out = write_sync_map(res, tmp_path / "a.svg")
    assert out.read_text(encoding="utf-8") == sync_map_svg(res)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.svg"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    with pytest.raises(UsageError):
        write_sync_map(failed("b.mp4", "b.mp4: no video stream"), tmp_path / "b.svg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.svg"]


def test_an_unwritable_destination_is_a_one_line_error(tmp_path):
    with pytest.raises(AvsyncError, match=r"a\.svg: cannot write here: No such file"):
        write_sync_map(result("a.mp4", 0.4), tmp_path / "nowhere" / "a.svg")
