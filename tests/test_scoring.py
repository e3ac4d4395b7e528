"""`avsync score`: DeSync as av-benchmark computes it, and over whole files."""

from __future__ import annotations

import json

import pytest
from helpers.fake_model import FakeModel

from sparsesync_cli import sync_model
from sparsesync_cli.analysis.desync import score_file, score_files, summarize
from sparsesync_cli.errors import UsageError
from sparsesync_cli.sync_model import load_model
from sparsesync_cli.testmedia.synth import Clip, cached_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return cached_clip(tmp_path_factory.mktemp("score"), Clip(duration=12.0)).path


def test_desync_is_the_mean_absolute_offset(clip):
    # The fake answers by call order: the first window it sees says 0.4 s, every later one -1.2 s.
    model = FakeModel(lambda t: 0.4 if t == 0 else -1.2, family="synchformer")
    r = score_file(clip, model, clip_sec=8.0)
    assert (r.first_offset_sec, r.last_offset_sec) == (pytest.approx(0.4), pytest.approx(-1.2))
    assert r.desync_av_benchmark == pytest.approx(0.8)
    # whole file: 12 s in 4.8 s windows (+ one aligned to the end) = 3 more windows, all -1.2 s
    assert r.n_windows == 3 and r.desync_windows == pytest.approx(1.2)
    assert [c[0][0] for c in model.calls] == [1, 1, 1, 1, 1]
    assert r.desync_aggregated == pytest.approx(1.2)


def test_files_that_cannot_be_scored_are_reported_and_the_mean_skips_them(clip, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    model = FakeModel(lambda t: 0.2, family="synchformer")
    results = list(score_files([clip, bad], model, clip_sec=20.0, whole_file=False))
    assert not results[0].ok and "shorter than the clip" in results[0].error  # av-benchmark drops it
    assert not results[1].ok
    s = summarize(results + list(score_files([clip], model, whole_file=False)))
    assert (s["scored"], s["failed"]) == (1, 2) and s["desync_av_benchmark"] == pytest.approx(0.2)


def test_desync_needs_synchformer(clip):
    with pytest.raises(UsageError, match="Synchformer"):
        score_file(clip, FakeModel())


def test_score_command_with_the_real_tiny_synchformer(cli, shared_dir, monkeypatch):
    fx = shared_dir / "fixtures/synchformer"
    model = load_model(checkpoint=fx / "tiny_synchformer_state_dict.pt", device="cpu")
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: model)
    media = shared_dir / "media/vggsound_3qesirWAGt4_25fps_256side_16k.mp4"
    res = cli("score", str(media), "--clip-sec", "8", "--no-whole-file", "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    per_file, summary = lines[0], lines[-1]["summary"]
    assert per_file["ok"] and per_file["desync_av_benchmark"] == pytest.approx(
        (abs(per_file["first_offset_sec"]) + abs(per_file["last_offset_sec"])) / 2
    )
    assert summary["desync_av_benchmark"] == pytest.approx(per_file["desync_av_benchmark"])
