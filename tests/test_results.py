"""The avsync.result/1.1 JSON: fields, meanings, rounding, failures, the round trip, /1 records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sparsesync_cli import clock
from sparsesync_cli.analysis.aggregate import aggregate
from sparsesync_cli.analysis.results import SCHEMA, ModelRecord, SyncResult, WindowResult
from sparsesync_cli.errors import MediaError

GRID = np.linspace(-2, 2, 21, dtype=np.float32)  # as the reference makes it
MODEL = ModelRecord("sparsesync-vggsound-21", "sparsesync", "/cache/22-09-21T21-00-52.pt")
KEYS = [
    "schema", "path", "ok", "error", "model", "offset_sec", "offset_words", "offset_class",
    "at_range_edge", "confidence", "agreement", "drift_sec_per_min", "grid", "range_sec",
    "resolution_sec", "posterior", "trend", "windows", "sampling", "windows_used", "windows_total",
    "stopped", "decided", "partial", "skipped", "duration_sec", "file_size", "file_mtime",
    "elapsed_sec", "sign", "clock",
]  # fmt: skip
WINDOW_KEYS = ["start_sec", "shift_sec", "logits", "probs", "offset_sec", "confidence"]


def make_result(tmp_path, n=4, peak=12):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 1234)
    rng = np.random.default_rng(0)
    windows = []
    for i in range(n):
        logits = rng.standard_normal(21) * 0.5
        logits[peak] += 6.0
        windows.append(WindowResult.from_logits(i * 5.0, 0.0, logits, GRID))
    agg = aggregate(np.array([w.probs for w in windows]), GRID, [w.start_sec for w in windows])
    result = SyncResult.from_aggregate(
        video, model=MODEL, grid=GRID, windows=windows, aggregate=agg, duration_sec=20.0, elapsed_sec=1.23456
    )
    return result, video


def test_schema_fields_in_order(tmp_path):
    result, video = make_result(tmp_path)
    d = result.to_dict()
    assert list(d) == KEYS
    assert d["schema"] == SCHEMA == "avsync.result/1.1"
    assert d["ok"] is True and d["error"] is None
    assert d["model"] == {"name": MODEL.name, "family": "sparsesync", "checkpoint": MODEL.checkpoint}
    assert d["sign"] == clock.SIGN and d["clock"] == clock.CLOCK
    assert d["path"] == str(video)
    assert [list(w) for w in d["windows"]] == [WINDOW_KEYS] * 4


def test_values_mean_what_the_schema_says(tmp_path):
    result, video = make_result(tmp_path)
    d = result.to_dict()
    assert d["offset_sec"] == 0.4 and d["offset_class"] == 12  # float32 0.4 comes out as 0.4
    assert d["offset_words"] == "audio 0.40 s early"
    assert d["at_range_edge"] is False
    assert 0.9 < d["confidence"] <= 1.0 and d["agreement"] == 1.0
    assert d["drift_sec_per_min"] is None
    assert d["grid"][:3] == [-2.0, -1.8, -1.6] and len(d["grid"]) == 21
    assert d["range_sec"] == [-2.0, 2.0] and d["resolution_sec"] == 0.2
    assert d["file_size"] == 1234 and d["file_mtime"] == video.stat().st_mtime
    assert d["duration_sec"] == 20.0 and d["elapsed_sec"] == 1.235
    w = d["windows"][1]
    assert w["start_sec"] == 5.0 and w["shift_sec"] == 0.0 and w["offset_sec"] == 0.4
    assert sum(w["probs"]) == pytest.approx(1.0, abs=1e-5)
    assert w["confidence"] == pytest.approx(sum(w["probs"][11:14]), abs=1e-5)


def test_rounding_keeps_logits_precise_and_probabilities_readable(tmp_path):
    result, _ = make_result(tmp_path)
    d = result.to_dict()
    for w, raw in zip(d["windows"], result.windows, strict=True):
        assert max(abs(a - b) for a, b in zip(w["logits"], raw.logits, strict=True)) <= 5e-7
        for p, q in zip(w["probs"], raw.probs, strict=True):
            assert p == pytest.approx(q, rel=1e-5)  # 6 significant digits, also for tiny ones
            assert p == float(f"{p:.6g}")
    text = json.dumps(d)
    assert "0.20000000298" not in text  # no float32 noise in the grid


def test_json_round_trip(tmp_path):
    result, _ = make_result(tmp_path)
    d = json.loads(json.dumps(result.to_dict()))
    again = SyncResult.from_dict(d)
    assert again.to_dict() == d
    assert again.n_windows == 4 and again.model == MODEL
    assert again.windows[0].logits == tuple(d["windows"][0]["logits"])


def test_from_dict_refuses_another_schema(tmp_path):
    d = make_result(tmp_path)[0].to_dict()
    d["schema"] = "avsync.result/2"
    with pytest.raises(ValueError, match=r"avsync\.result/1"):
        SyncResult.from_dict(d)


def test_failure_records_cause_size_and_mtime(tmp_path):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"not a video")
    err = MediaError("no video stream", video)
    d = SyncResult.failed(video, err, model=MODEL, grid=GRID, elapsed_sec=0.5).to_dict()
    assert list(d) == KEYS
    assert d["ok"] is False and d["error"] == "no video stream"  # the cause; the path is separate
    assert d["file_size"] == 11 and d["file_mtime"] == video.stat().st_mtime
    assert d["offset_sec"] is None and d["confidence"] is None and d["windows"] == []
    assert d["at_range_edge"] is False and d["range_sec"] == [-2.0, 2.0]
    assert SyncResult.from_dict(json.loads(json.dumps(d))).to_dict() == d


def test_failure_of_a_missing_file_and_of_a_bug(tmp_path):
    d = SyncResult.failed(tmp_path / "gone.mp4", "file not found", model=MODEL).to_dict()
    assert d["file_size"] is None and d["file_mtime"] is None
    assert d["grid"] == [] and d["range_sec"] is None and d["resolution_sec"] is None
    bug = RuntimeError("CUDA out of memory\nTried to allocate")
    d = SyncResult.failed("x.mp4", bug, model=MODEL).to_dict()
    assert d["error"] == "RuntimeError: CUDA out of memory Tried to allocate"  # one line


def test_edge_offset_is_at_least(tmp_path):
    result, _ = make_result(tmp_path, peak=0)
    d = result.to_dict()
    assert d["at_range_edge"] is True and d["offset_sec"] == -2.0
    assert d["offset_words"] == "audio at least 2.00 s late"


def test_window_from_logits_rejects_bad_logits():
    with pytest.raises(ValueError):
        WindowResult.from_logits(0.0, 0.0, [0.0] * 20, GRID)
    with pytest.raises(ValueError):
        WindowResult.from_logits(0.0, 0.0, [math.nan] * 21, GRID)


def test_model_family_is_checked():
    with pytest.raises(ValueError, match="family"):
        ModelRecord("x", "syncnet")


def test_the_combined_posterior_and_the_trend_are_stored(tmp_path):
    # Views (the CLI's top-3, the sync map's drift line) read these instead of recomputing them.
    result, _ = make_result(tmp_path, n=6)
    d = result.to_dict()
    agg = aggregate(np.array([w.probs for w in result.windows]), GRID, [w.start_sec for w in result.windows])
    assert d["posterior"] == pytest.approx(list(agg.posterior), rel=1e-5, abs=1e-12)
    assert max(range(21), key=d["posterior"].__getitem__) == d["offset_class"]
    assert d["trend"]["kind"] == "constant" and d["trend"]["jump"] is None
    line = d["trend"]["line"]
    assert line["slope_sec_per_min"] == pytest.approx(agg.trend.slope_sec_per_min, abs=1e-6)
    assert (line["t_first_sec"], line["t_last_sec"]) == (0.0, 25.0)
    again = SyncResult.from_dict(json.loads(json.dumps(d)))
    assert again.trend_kind == "constant" and again.to_dict() == d


def test_fewer_than_three_windows_and_failures_store_no_trend(tmp_path):
    assert make_result(tmp_path, n=2)[0].to_dict()["trend"] is None
    failed = SyncResult.failed(tmp_path / "x.mp4", "no audio stream", model=MODEL).to_dict()
    assert failed["posterior"] == [] and failed["trend"] is None


def test_a_version_1_0_record_is_still_read(tmp_path):
    d = make_result(tmp_path)[0].to_dict()
    d["schema"] = "avsync.result/1"
    del d["posterior"], d["trend"]
    old = SyncResult.from_dict(d)
    assert old.posterior == () and old.trend is None and old.offset_sec == pytest.approx(0.4)
