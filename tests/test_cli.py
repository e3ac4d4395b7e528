"""The `avsync` command as a user runs it: outputs, reports, exit codes, one-line errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers.fake_model import FakeModel

from sparsesync_cli import sync_model
from sparsesync_cli.testmedia.synth import Clip, cached_clip, measure


@pytest.fixture
def fake(monkeypatch):
    """Replace model loading by a FakeModel answering +0.4 s (audio early) for every window."""
    model = FakeModel(lambda t: 0.4)
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: model)
    return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two good clips, a corrupt one and one without audio."""
    d = tmp_path_factory.mktemp("batch")
    for name, spec in {
        "one": Clip(duration=6.0),
        "two": Clip(container="mkv", duration=11.0),
        "mute": Clip(acodec=None, duration=6.0),
    }.items():
        src = cached_clip(tmp_path_factory.mktemp(name), spec).path
        (d / f"{name}{src.suffix}").write_bytes(src.read_bytes())
    (d / "corrupt.mp4").write_bytes((d / "one.mp4").read_bytes()[:3000])
    (d / "notes.txt").write_text("not a video")
    return d


def test_help_states_the_sign_and_the_clock(cli):
    for cmd in ([], ["predict"], ["fix"]):
        out = cli(*cmd, "--help").output
        assert "EARLY" in out and "presentation timestamps" in " ".join(out.split()), cmd


def test_batch_reports_every_file_and_exits_1(cli, fake, folder, tmp_path):
    jsonl, csv_path, html = tmp_path / "r.jsonl", tmp_path / "r.csv", tmp_path / "r.html"
    res = cli("predict", folder, "--jsonl", jsonl, "--csv", csv_path, "--report", html)
    assert res.exit_code == 1, res.output
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in records}
    assert set(by_name) == {"corrupt.mp4", "mute.mp4", "one.mp4", "two.mkv"}  # notes.txt is not a video
    assert by_name["one.mp4"]["ok"] and by_name["one.mp4"]["offset_sec"] == pytest.approx(0.4)
    assert by_name["two.mkv"]["offset_words"] == "audio 0.40 s early"
    assert "no audio" in by_name["mute.mp4"]["error"]
    assert not by_name["corrupt.mp4"]["ok"] and "\n" not in by_name["corrupt.mp4"]["error"]
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 4 and {r["ok"] for r in rows} == {"true", "false"}
    page = html.read_text()
    assert all(name in page for name in by_name)
    # the summary table ends the run on stdout
    assert "4 file(s) checked: 2 succeeded, 2 failed" in res.output
    assert '<span class="n">4</span> files checked' in page  # the same words as the HTML report


def test_rerun_with_the_same_jsonl_skips_files_already_done(cli, fake, folder, tmp_path):
    jsonl = tmp_path / "r.jsonl"
    cli("predict", folder, "--jsonl", jsonl)
    fake.calls.clear()
    res = cli("predict", folder, "--jsonl", jsonl)
    assert res.exit_code == 1  # the failed files are retried (and fail again)
    assert fake.calls == []  # ...but no good file is checked twice
    assert "(from the report)" in res.output


def test_json_output_is_one_object_per_file(cli, fake, folder):
    res = cli("predict", folder / "one.mp4", folder / "two.mkv", "--json")
    assert res.exit_code == 0
    objs = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(objs) == 2
    for o in objs:
        assert {
            "path",
            "offset_sec",
            "confidence",
            "grid",
            "windows",
            "agreement",
            "drift_sec_per_min",
        } <= set(o)
        assert {"start_sec", "shift_sec", "logits", "probs"} <= set(o["windows"][0])
        assert o["sign"].startswith("offset_sec > 0: the audio is early")


def test_single_file_prints_words_confidence_and_top3(cli, fake, folder):
    res = cli("predict", folder / "one.mp4")
    assert res.exit_code == 0
    assert "audio 0.40 s early (+0.40 s), confidence" in res.output
    assert "top-3 offsets: +0.4 s" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "cfg.yaml"], "--config goes with --checkpoint"),
        (["--model", "no-such-model"], "unknown model"),
        (["--batch-size", "0"], "batch-size"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, folder, args, message):
    res = cli("predict", folder / "one.mp4", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_a_bad_checkpoint_is_one_line_and_exit_1(cli, folder, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage")
    res = cli("predict", folder / "one.mp4", "--checkpoint", bad)
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "model.pt" in res.output and "Traceback" not in res.output


def test_the_papers_window_through_the_cli(cli, shared_dir):
    """The issue's check: golden case 2 (start 4 s, audio 2 s late) from the command line."""
    fx = shared_dir / "fixtures/sparsesync"
    case = json.loads((fx / "golden_logits.json").read_text())[2]
    ckpt, cfg = fx / "tiny_sparsesync.pt", fx / "cfg-tiny_sparsesync.yaml"
    args = ["--start", "4", "--shift", "-2", "--json", "--device", "cpu"]
    res = cli("predict", shared_dir / case["path"], "--checkpoint", ckpt, "--config", cfg, *args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.splitlines()[0])
    first = out["windows"][0]
    assert (first["start_sec"], first["shift_sec"]) == (4.0, -2.0)
    assert np.abs(np.array(first["logits"]) - case["logits"]).max() <= 1e-2
    assert int(np.argmax(first["logits"])) == case["argmax"]


# ---------------------------------------------------------------- fix
def test_fix_with_a_given_offset_moves_the_audio(cli, folder, tmp_path):
    src = folder / "one.mp4"
    before = src.read_bytes()
    out = tmp_path / "fixed.mp4"
    res = cli("fix", src, "-o", out, "--offset", "0.4")
    assert res.exit_code == 0, res.output
    assert "audio delayed by 0.40 s" in res.output
    assert src.read_bytes() == before  # the input is never touched
    assert measure(out).click_sample - measure(src).click_sample == pytest.approx(0.4 * 16000, abs=16)
    again = cli("fix", src, "-o", out, "--offset", "0.4")
    assert again.exit_code == 2 and "--force overwrites it" in again.output


def test_fix_measures_when_no_offset_is_given(cli, fake, folder, tmp_path):
    out = tmp_path / "auto.mkv"
    res = cli("fix", folder / "two.mkv", "-o", out, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout.splitlines()[-1])
    assert d["applied"] and d["offset_sec"] == pytest.approx(0.4) and d["measured"]["ok"]
    assert out.exists()


def test_fix_skips_when_unsure_and_writes_nothing(cli, monkeypatch, folder, tmp_path):
    unsure = FakeModel(lambda t: 0.4, sharpness=0.5)  # flat probabilities: low confidence
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: unsure)
    out = tmp_path / "never.mp4"
    res = cli("fix", folder / "one.mp4", "-o", out)
    assert res.exit_code == 3
    assert "not fixed: confidence" in res.output
    assert not out.exists()


def test_fix_dry_run_writes_nothing(cli, fake, folder, tmp_path):
    out = tmp_path / "dry.mp4"
    res = cli("fix", folder / "one.mp4", "-o", out, "--dry-run")
    assert res.exit_code == 0 and "would write" in res.output and not out.exists()


# ---------------------------------------------------------------- models, download, report
def test_models_table_lists_the_registry(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(tmp_path))
    res = cli("models", "--json")
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    names = {r["name"] for r in rows}
    assert {"sparsesync-audioset", "sparsesync-lrs3", "synchformer-audioset"} <= names
    assert sum(r["default"] for r in rows) == 1 and not any(r["cached"] for r in rows)
    assert "sparsesync-audioset *" in cli("models").output


def test_download_offline_says_what_to_do(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    res = cli("download", "sparsesync-lrs3")
    assert res.exit_code == 1
    assert "AVSYNC_OFFLINE" in res.output and "Traceback" not in res.output


def test_report_from_jsonl(cli, fake, folder, tmp_path):
    jsonl = tmp_path / "r.jsonl"
    cli("predict", folder, "--jsonl", jsonl)
    html, maps = tmp_path / "page.html", tmp_path / "maps"
    res = cli("report", jsonl, "-o", html, "--maps", maps)
    assert res.exit_code == 0, res.output
    assert "two.mkv" in html.read_text()
    assert len(list(maps.glob("*.svg"))) == 2  # one map per checked file, none for failures
