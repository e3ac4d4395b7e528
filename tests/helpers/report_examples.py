"""Constructed ``avsync.result/1.1`` dicts for the report tests.

``python tests/helpers/report_examples.py examples.jsonl`` writes the example batch as a JSONL
report, for ``bench/render_report.py`` (which never imports the tests).

They follow the schema the batch runner writes; the probabilities are made up (a peak around the
true offset, a little deterministic noise) so every branch of the sync map and the report is drawn.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

SIGN = "offset_sec > 0: the audio is early (leads the picture); < 0: the audio is late"
CLOCK = "file time by presentation timestamps"
GRID21 = [round(-2.0 + 0.2 * i, 1) for i in range(21)]
GRID3 = [-1.0, 0.0, 1.0]
SPARSESYNC = {"name": "sparsesync-vggsound", "family": "sparsesync", "checkpoint": "22-09-21T21-00-52.pt"}
SYNCHFORMER = {"name": "synchformer-vggsound", "family": "synchformer", "checkpoint": None}


def _words(offset: float, at_edge: bool) -> str:
    if abs(offset) < 0.05:
        return "in sync"
    way = "early" if offset > 0 else "late"
    return f"audio {'at least ' if at_edge else ''}{abs(offset):.2f} s {way}"


def window(start: float, grid: list[float], centre: float, sharpness: float, rng: random.Random) -> dict:
    """One window whose probabilities peak at the grid value nearest ``centre``."""
    step = grid[1] - grid[0]
    logits = [round(-sharpness * ((g - centre) / step) ** 2 + rng.uniform(-0.3, 0.3), 4) for g in grid]
    m = max(logits)
    e = [math.exp(v - m) for v in logits]
    probs = [v / sum(e) for v in e]
    best = max(range(len(grid)), key=probs.__getitem__)
    return {
        "start_sec": start,
        "shift_sec": 0.0,
        "logits": logits,
        "probs": probs,
        "offset_sec": grid[best],
        "confidence": probs[best],
    }


def result(
    path: str,
    offset: float,
    *,
    n_windows: int = 6,
    hop: float = 5.0,
    grid: list[float] = GRID21,
    drift_per_min: float | None = None,
    sharpness: float = 1.5,
    flat_windows: tuple[int, ...] = (),
    model: dict = SPARSESYNC,
    seed: int = 0,
) -> dict:
    """A successful result: ``n_windows`` windows every ``hop`` s, peaked at ``offset`` (+ drift)."""
    rng = random.Random(seed)
    starts = [i * hop for i in range(n_windows)]
    t_mid = (starts[0] + starts[-1]) / 2 + 2.5
    wins = []
    for i, s in enumerate(starts):
        centre = offset + (drift_per_min or 0.0) * (s + 2.5 - t_mid) / 60
        wins.append(window(s, grid, centre, 0.15 if i in flat_windows else sharpness, rng))
    lo, hi = grid[0], grid[-1]
    at_edge = offset <= lo or offset >= hi
    conf = sum(w["confidence"] for w in wins) / len(wins)
    mean = [sum(w["probs"][k] for w in wins) / len(wins) for k in range(len(grid))]
    trend = None
    if n_windows >= 3:  # as the aggregation stores it: a line over window start times
        slope = drift_per_min or 0.0
        line = {
            "slope_sec_per_min": slope,
            "intercept_sec": round(offset + slope * (2.5 - t_mid) / 60, 6),
            "t_first_sec": starts[0],
            "t_last_sec": starts[-1],
            "inliers": 0.9,
        }
        trend = {"kind": "drift" if drift_per_min else "constant", "line": line, "jump": None}
    return {
        "schema": "avsync.result/1.1",
        "path": path,
        "ok": True,
        "error": None,
        "model": model,
        "offset_sec": offset,
        "offset_words": _words(offset, at_edge),
        "offset_class": min(range(len(grid)), key=lambda i: abs(grid[i] - offset)),
        "at_range_edge": at_edge,
        "confidence": round(conf, 4),
        "agreement": round(sum(abs(w["offset_sec"] - offset) < 1e-6 for w in wins) / len(wins), 4),
        "drift_sec_per_min": drift_per_min,
        "grid": grid,
        "range_sec": [lo, hi],
        "resolution_sec": round(grid[1] - grid[0], 6),
        "posterior": [round(p / sum(mean), 6) for p in mean],
        "trend": trend,
        "windows": wins,
        "duration_sec": starts[-1] + 5.0 + 0.4,
        "file_size": 1_234_567 + seed,
        "file_mtime": 1_700_000_000.0 + seed,
        "elapsed_sec": 0.8 * n_windows,
        "sign": SIGN,
        "clock": CLOCK,
    }


def failed(path: str, error: str, model: dict = SPARSESYNC) -> dict:
    """A failed result: no offset, no windows, the one-line cause in ``error``."""
    return {
        "schema": "avsync.result/1.1",
        "path": path,
        "ok": False,
        "error": error,
        "model": model,
        "offset_sec": None,
        "offset_words": None,
        "offset_class": None,
        "at_range_edge": False,
        "confidence": None,
        "agreement": None,
        "drift_sec_per_min": None,
        "grid": GRID21,
        "range_sec": [-2.0, 2.0],
        "resolution_sec": 0.2,
        "posterior": [],
        "trend": None,
        "windows": [],
        "duration_sec": None,
        "file_size": 4096,
        "file_mtime": 1_700_000_000.0,
        "elapsed_sec": 0.01,
        "sign": SIGN,
        "clock": CLOCK,
    }


def example_batch() -> list[dict]:
    """One of each kind: in sync, early, late, drifting, range edge, 3-class, long, odd name, failed."""
    return [
        result("/data/clips/interview_in_sync.mp4", 0.0, seed=1),
        result("/data/clips/concert_early.mp4", 0.4, seed=2, flat_windows=(3,)),
        result("/data/clips/dubbed_late.mkv", -1.2, seed=3, n_windows=4),
        result("/data/long/lecture_drifting.mp4", 0.2, seed=4, n_windows=48, hop=5.0, drift_per_min=0.25),
        result("/data/clips/way_off.mov", 2.0, seed=5, flat_windows=(0, 4)),
        result("/data/gen/sample_0007.mp4", 1.0, grid=GRID3, model=SYNCHFORMER, seed=6, n_windows=2),
        result('/data/odd/<Tom> & "Jerry\'s" <script>.mp4', -0.2, seed=7, n_windows=3),
        failed("/data/clips/broken.mp4", "/data/clips/broken.mp4: no audio stream"),
    ]


def write_example_jsonl(path: str | Path) -> Path:
    """The example batch as a JSONL report (one result per line)."""
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in example_batch()), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_example_jsonl(sys.argv[1] if len(sys.argv) > 1 else "examples.jsonl"))
