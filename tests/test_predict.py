"""Whole-file prediction and batches: windows from the file, aggregation, failures that don't stop a batch."""

from __future__ import annotations

import pytest
from helpers.fake_model import FakeModel

from sparsesync_cli.analysis.predict import (
    PredictOptions,
    collect_media_files,
    iter_predictions,
    predict_file,
)
from sparsesync_cli.errors import MediaError
from sparsesync_cli.testmedia.synth import Clip, cached_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    # One folder per clip: a clip's file name says its codecs, not its duration.
    def clip(name: str, spec: Clip):
        return cached_clip(tmp_path_factory.mktemp(name), spec).path

    return {
        "long": clip("long", Clip(duration=16.0)),
        "short": clip("short", Clip(duration=3.0, flash_sec=1.0, click_sec=1.5)),
        "silent_video": clip("silent", Clip(acodec=None, duration=6.0)),
    }


def test_a_file_is_read_window_after_window_and_combined(clips):
    model = FakeModel(lambda t: 0.4)
    result = predict_file(clips["long"], model)
    # 16 s: windows at 0, 5, 10 s and one aligned to the end (11 s), every frame seen
    assert [w.start_sec for w in result.windows] == [0.0, 5.0, 10.0, 11.0]
    assert result.ok and result.offset_sec == pytest.approx(0.4)
    assert result.offset_words == "audio 0.40 s early"
    assert result.confidence > 0.9 and result.agreement == 1.0
    assert result.drift_sec_per_min is None and not result.at_range_edge


def test_batches_of_windows_give_the_same_result(clips):
    one = predict_file(clips["long"], FakeModel(lambda t: -1.2))
    model = FakeModel(lambda t: -1.2)
    three = predict_file(clips["long"], model, PredictOptions(batch_size=3))
    assert [c[0][0] for c in model.calls] == [3, 1]
    assert [w.logits for w in three.windows] == [w.logits for w in one.windows]
    assert three.offset_sec == one.offset_sec == pytest.approx(-1.2)


def test_start_duration_and_stride_restrict_the_windows(clips):
    r = predict_file(clips["long"], FakeModel(), PredictOptions(start_sec=2.0, duration_sec=10.0))
    assert [w.start_sec for w in r.windows] == [2.0, 7.0]
    r = predict_file(clips["long"], FakeModel(), PredictOptions(stride_sec=2.0, duration_sec=10.0))
    assert [w.start_sec for w in r.windows] == [0.0, 2.0, 4.0, 5.0]  # 5.0: aligned to the range's end


def test_shift_is_reported_per_window(clips):
    r = predict_file(
        clips["long"], FakeModel(), PredictOptions(start_sec=4.0, shift_sec=-2.0, duration_sec=5.0)
    )
    assert [(w.start_sec, w.shift_sec) for w in r.windows] == [(4.0, -2.0)]


def test_a_file_shorter_than_a_window_is_a_one_line_error(clips):
    with pytest.raises(MediaError, match=r"\.mp4: shorter than one window: 3\.0 s"):
        predict_file(clips["short"], FakeModel())


def test_a_batch_records_failures_and_goes_on(clips, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    paths = [clips["long"], bad, clips["silent_video"], tmp_path / "missing.mp4", clips["short"]]
    results = list(iter_predictions(paths, FakeModel(lambda t: 0.0)))
    assert [r.ok for r in results] == [True, False, False, False, False]
    errors = [r.error for r in results[1:]]
    assert "not a readable media file" in errors[0]
    assert "no audio" in errors[1]
    assert "no such file" in errors[2]
    assert "shorter than one window" in errors[3]
    for r in results[1:]:
        assert "\n" not in r.error and r.grid  # one line; the model's grid is still recorded


def test_collect_files_from_folders(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.MKV").write_bytes(b"x")
    assert [p.name for p in collect_media_files([tmp_path])] == ["a.mp4"]
    assert [p.name for p in collect_media_files([tmp_path], recursive=True)] == ["a.mp4", "b.MKV"]
    # explicit files are kept whatever their extension, missing ones too (they fail as files)
    got = collect_media_files([tmp_path / "notes.txt", tmp_path / "gone.mp4", tmp_path / "a.mp4"])
    assert [p.name for p in got] == ["notes.txt", "gone.mp4", "a.mp4"]
    assert collect_media_files([tmp_path], extensions=["txt"]) == [tmp_path / "notes.txt"]
