"""Nothing about one file stops a batch; usage and output problems are found before any work.

Regression tests for issue 14 (items 1, 2, 3 and the newline half of 10): each bad input is
made here, from a synthetic clip, by the test.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from helpers.fake_model import FakeModel

from sparsesync_cli import sync_model
from sparsesync_cli.analysis.predict import PredictOptions, iter_predictions
from sparsesync_cli.errors import MediaError, UsageError
from sparsesync_cli.media.decode import MediaReader
from sparsesync_cli.media.probe import probe
from sparsesync_cli.testmedia.synth import Clip, cached_clip


class ExplodingModel(FakeModel):
    """A model whose second call raises something that is not an AvsyncError (a bug stand-in)."""

    def logits(self, frames, audio) -> torch.Tensor:
        if len(self.calls) == 1:
            self.calls.append(((), ()))
            raise RuntimeError("boom in the network")
        return super().logits(frames, audio)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return cached_clip(tmp_path_factory.mktemp("clip"), Clip(duration=5.5)).path


@pytest.fixture(scope="module")
def ts_clip(tmp_path_factory):
    return cached_clip(tmp_path_factory.mktemp("ts"), Clip(container="ts", duration=5.5)).path


@pytest.fixture
def fake(monkeypatch):
    model = FakeModel(lambda t: 0.4)
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: model)
    return model


@pytest.fixture
def never_load(monkeypatch):
    """Usage and output errors must be found before the model loads: loading fails the test."""

    def load(*a, **k):
        raise AssertionError("the model was loaded before the usage error was found")

    monkeypatch.setattr(sync_model, "load_model", load)


def copies(clip, folder, names):
    folder.mkdir(exist_ok=True)
    data = clip.read_bytes()
    out = []
    for name in names:
        p = os.path.join(os.fsencode(folder), name) if isinstance(name, bytes) else folder / name
        with open(p, "wb") as f:
            f.write(data)
        out.append(p)
    return out


# ---------------------------------------------------------------- item 1: the per-file boundary
def test_an_unexpected_exception_fails_one_file_and_the_batch_goes_on(clip, tmp_path):
    files = copies(clip, tmp_path / "in", ["a.mp4", "b.mp4", "c.mp4"])
    model = ExplodingModel(lambda t: 0.4)
    results = list(iter_predictions(files, model, PredictOptions()))
    assert [r.ok for r in results] == [True, False, True]
    err = results[1].error
    assert err.startswith("unexpected error while checking the file: RuntimeError: boom in the network")
    assert "(in analysis/predict.py:" in err and "\n" not in err  # where: the innermost frame of ours


def test_cli_batch_survives_an_unexpected_exception_and_debug_shows_the_traceback(
    cli, clip, tmp_path, monkeypatch
):
    copies(clip, tmp_path / "in", ["a.mp4", "b.mp4", "c.mp4"])
    for args in (["predict", tmp_path / "in"], ["predict", "--debug", tmp_path / "in"]):
        model = ExplodingModel(lambda t: 0.4)
        monkeypatch.setattr(sync_model, "load_model", lambda *a, _m=model, **k: _m)
        res = cli(*args)
        assert res.exit_code == 1, res.output
        assert "b.mp4: FAILED: unexpected error while checking the file: RuntimeError" in res.output
        assert "c.mp4: audio 0.40 s early" in res.output  # the file after it was still checked
        assert ("Traceback" in res.output) == ("--debug" in args), res.output


def test_fix_measure_step_gives_one_line_for_an_unexpected_exception(cli, clip, tmp_path, monkeypatch):
    model = ExplodingModel(lambda t: 0.4)
    model.calls.append(((), ()))  # the first call raises
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: model)
    res = cli("fix", clip, "-o", tmp_path / "out.mp4")
    assert res.exit_code == 1
    assert "unexpected error while checking the file: RuntimeError: boom" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "out.mp4").exists()


def _break_minf(data: bytes, handler: bytes) -> bytes:
    """Rename the ``minf`` box after ``handler``: that track loses its sample description."""
    at = data.index(b"minf", data.index(handler))
    return data[:at] + b"m\xffnf" + data[at + 4 :]


def test_a_stream_with_an_unknown_codec_is_a_one_line_media_error(clip, tmp_path):
    data = clip.read_bytes()
    bad = tmp_path / "unknown_audio_codec.mp4"
    bad.write_bytes(_break_minf(data, b"SoundHandler"))  # was an AttributeError in _first_frames
    with pytest.raises(MediaError, match="audio stream 1 has an unknown codec"):
        probe(bad)
    bad_video = tmp_path / "unknown_video_codec.mp4"
    bad_video.write_bytes(_break_minf(data, b"VideoHandler"))
    with pytest.raises(MediaError, match="video stream 0 has an unknown codec"):
        probe(bad_video)


def _late_pid(ts: bytes) -> bytes:
    """Move one PES-starting audio packet past the middle of the file onto a PID no table announces."""
    data = bytearray(ts)
    for at in range(len(data) // 2 // 188 * 188, len(data), 188):
        pid = ((data[at + 1] & 0x1F) << 8) | data[at + 2]
        if data[at] == 0x47 and data[at + 1] & 0x40 and pid == 0x101:
            data[at + 1], data[at + 2] = (data[at + 1] & 0xE0) | 0x01, 0x50  # PID 0x150
            return bytes(data)
    raise AssertionError("no audio PES start found")


def test_mpegts_packet_on_an_unannounced_pid_is_read_to_the_end(ts_clip, tmp_path):
    bad = tmp_path / "late_pid.ts"
    bad.write_bytes(_late_pid(ts_clip.read_bytes()))
    clean = probe(ts_clip)
    info = probe(bad)  # PyAV's demux raised IndexError here
    assert info.video_span == clean.video_span
    with MediaReader(bad) as reader:
        first, end = reader.video_span
        assert reader.read_frames(first, end - first).shape[0] == end - first


# ---------------------------------------------------------------- names: not UTF-8, newlines
def test_a_name_that_is_not_utf8_is_written_losslessly_and_resumes(cli, fake, clip, tmp_path):
    (bad,) = copies(clip, tmp_path / "in", [b"caf\xe9_\xff.mp4"])
    jsonl, csv_path = tmp_path / "r.jsonl", tmp_path / "r.csv"
    res = cli("predict", tmp_path / "in", "--jsonl", jsonl, "--csv", csv_path)
    assert res.exit_code == 0, res.output
    assert "caf\\udce9_\\udcff.mp4: audio 0.40 s early" in res.output  # escaped on one line
    raw = jsonl.read_bytes()
    raw.decode("utf-8")  # the report stays valid UTF-8
    (record,) = [json.loads(line) for line in raw.splitlines()]
    assert os.fsencode(record["path"]) == bad  # the exact bytes of the name come back
    assert bad in csv_path.read_bytes()  # the CSV holds the name's bytes as on disk
    again = cli("predict", tmp_path / "in", "--jsonl", jsonl)
    assert again.exit_code == 0 and "1 file(s) already in" in again.output, again.output
    assert len(jsonl.read_bytes().splitlines()) == 1


def test_a_newline_in_a_name_does_not_split_the_summary_line(cli, fake, clip, tmp_path):
    copies(clip, tmp_path / "in", ["two\nlines.mp4"])
    res = cli("predict", tmp_path / "in")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(
        ln.endswith("two\\nlines.mp4: audio 0.40 s early (+0.40 s)")
        or "two\\nlines.mp4: audio 0.40 s early (+0.40 s)," in ln
        for ln in lines
    ), res.output
    assert not any(ln.startswith("lines.mp4") for ln in lines), res.output


# ---------------------------------------------------------------- items 2 and 3: before any work
@pytest.mark.parametrize("option", ["--csv", "--jsonl", "--report"])
def test_a_report_into_a_missing_folder_is_refused_before_the_model_loads(
    cli, never_load, clip, tmp_path, option
):
    res = cli("predict", clip, option, tmp_path / "nowhere" / "r.out")
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "the folder" in res.output and "does not exist" in res.output


def test_a_report_under_a_file_is_refused_before_the_model_loads(cli, never_load, clip, tmp_path):
    (tmp_path / "afile").write_text("x")
    res = cli("predict", clip, "--csv", tmp_path / "afile" / "r.csv")
    assert res.exit_code == 2 and "is not a folder" in res.output, res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_report_into_a_read_only_folder_is_refused(cli, never_load, clip, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = cli("predict", clip, "--jsonl", ro / "r.jsonl")
        assert res.exit_code == 2 and "Permission denied" in res.output, res.output
        res = cli("fix", clip, "-o", ro / "out.mp4", "--offset", "0.4")
        assert res.exit_code == 2 and "Permission denied" in res.output, res.output
    finally:
        ro.chmod(0o755)


def test_fix_output_into_a_missing_folder_is_refused_before_measuring(cli, never_load, clip, tmp_path):
    res = cli("fix", clip, "-o", tmp_path / "nowhere" / "out.mp4")
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "does not exist" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "-3"], "--start) must be a file time >= 0 s"),
        (["--start", "60"], "--start 60 s is beyond the end of the file (5.5"),
        (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    ],
)
def test_usage_errors_exit_2_before_the_model_loads(cli, never_load, clip, args, message):
    res = cli("predict", clip, *args)
    assert res.exit_code == 2, res.output
    assert message in res.output and res.output.count("\n") == 1, res.output


def test_a_missing_input_is_named_even_when_the_model_cannot_be_fetched(cli, never_load, clip, tmp_path):
    # never_load stands for "the default model is not cached and there is no network": the
    # missing file must be what the user hears about.
    for cmd in (["predict"], ["score"], ["fix", "-o", tmp_path / "o.mp4"]):
        res = cli(*cmd, tmp_path / "missing.mp4")
        assert res.exit_code == 2, res.output
        assert "missing.mp4: no such file" in res.output, res.output


# ---------------------------------------------------------------- item 12: first contact
def test_debug_is_accepted_after_the_subcommand_too(cli, clip, tmp_path):
    missing = tmp_path / "missing.mp4"
    for args in (["--debug", "predict", missing], ["predict", missing, "--debug"], ["models", "--debug"]):
        res = cli(*args)
        assert "No such option" not in res.output, (args, res.output)
    res = cli("predict", missing, "--debug")
    assert isinstance(res.exception, UsageError)  # --debug: the exception itself, not one line


def test_tables_keep_every_name_whole_at_80_columns(cli, fake, clip, tmp_path, monkeypatch):
    from sparsesync_cli.checkpoints.registry import load_registry

    res = cli("models", columns=80)
    assert res.exit_code == 0 and max(len(line) for line in res.output.splitlines()) <= 80
    for name in load_registry():
        assert any(f" {name} " in line for line in res.output.splitlines()), (name, res.output)
    names = ["interview_take_07.mp4", "a-rather-long-name-for-a-file.mp4"]
    copies(clip, tmp_path / "in", names)
    monkeypatch.chdir(tmp_path)
    res = cli("predict", "in", columns=80)
    table = res.output.split("2 file(s) checked: 2 succeeded, 0 failed", 1)[1]
    assert max(len(line) for line in table.splitlines()) <= 80
    for name in names:
        assert any(f"│ in/{name} " in line for line in table.splitlines()), table
