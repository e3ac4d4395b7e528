"""What a new user meets first: Ctrl-C in a batch, offline first runs, the words of the summaries,
option names in errors, usage errors before the model loads."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.fake_model import FakeModel

from sparsesync_cli import sync_model
from sparsesync_cli.evaluation.protocol import ProtocolItem, write_protocol
from sparsesync_cli.testmedia.synth import Clip, cached_clip

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Three copies of a 6 s clip."""
    src = cached_clip(tmp_path_factory.mktemp("clip"), Clip(duration=6.0)).path
    d = tmp_path_factory.mktemp("three")
    for name in ("a", "b", "c"):
        (d / f"{name}.mp4").write_bytes(src.read_bytes())
    return sorted(d.iterdir())


class InterruptedModel(FakeModel):
    """Ctrl-C while its ``n``-th window runs (what Python's SIGINT handler raises)."""

    def __init__(self, n: int, family: str = "sparsesync") -> None:
        super().__init__(lambda t: 0.4, family=family)
        self.n = n

    def logits(self, frames, audio):
        if len(self.starts) + 1 >= self.n:
            raise KeyboardInterrupt
        return super().logits(frames, audio)


# A user's process: the real entry point, with a model that answers at once until the first
# verdict is printed and then takes its time, so the batch is surely running when SIGINT arrives.
DRIVER = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (CI may ignore SIGINT)
sys.path.insert(0, sys.argv.pop(1))
from helpers.fake_model import FakeModel
from sparsesync_cli import sync_model
from sparsesync_cli.cli import main

printed = []
write = sys.stdout.write
sys.stdout.write = lambda s: printed.append(s) or write(s)

class Slow(FakeModel):
    def logits(self, frames, audio):
        while printed:  # short sleeps: SIGINT may land on another thread, and Python raises
            time.sleep(0.05)  # it in this one at the next bytecode
        return super().logits(frames, audio)

sync_model.load_model = lambda *a, **k: Slow(lambda t: 0.4)
main()
"""


def test_ctrl_c_in_a_batch_writes_the_reports_and_says_a_rerun_resumes(cli, clips, tmp_path, monkeypatch):
    jsonl, csv_path, html = tmp_path / "r.jsonl", tmp_path / "r.csv", tmp_path / "r.html"
    args = [*clips, "--jsonl", jsonl, "--csv", csv_path, "--report", html]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-c", DRIVER, str(TESTS), "predict", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()  # the first file's verdict: the second one is running now
        assert "a.mp4: audio 0.40 s early" in first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.splitlines() == [
        f"avsync: interrupted: 1 of 3 file(s) done; written: {jsonl}, {csv_path}, {html}; "
        f"the same command resumes from {jsonl}"
    ]
    assert len(read_jsonl_lines(jsonl)) == 1
    assert [r["path"] for r in csv.DictReader(csv_path.open())] == [str(clips[0])]
    assert "a.mp4" in html.read_text() and "b.mp4" not in html.read_text()
    # ...and the same command does resume
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: FakeModel(lambda t: 0.4))
    res = cli("predict", *args)
    assert res.exit_code == 0 and "1 file(s) already in the report" in res.output


def read_jsonl_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ctrl_c_in_score_and_evaluate_ends_with_one_line(cli, clips, tmp_path, monkeypatch):
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: InterruptedModel(3, "synchformer"))
    res = cli("score", *clips, "--no-whole-file", "--clip-sec", "5")  # 2 windows a file
    assert res.exit_code == 130
    assert res.stderr.splitlines()[-1] == (
        "avsync: interrupted: 1 of 3 file(s) scored; nothing written; "
        "score keeps no report: a re-run scores every file again"
    )
    protocol, jsonl = tmp_path / "p.csv", tmp_path / "e.jsonl"
    write_protocol([ProtocolItem(c.name, 0.0, 0.5) for c in clips], protocol)
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: InterruptedModel(2))
    res = cli("evaluate", protocol, "--root", clips[0].parent, "--jsonl", jsonl)
    assert res.exit_code == 130
    assert res.stderr.splitlines() == [
        f"avsync: interrupted: 1 of 3 item(s) evaluated; written: {jsonl}; "
        f"the same command resumes from {jsonl}"
    ]


def test_s3_without_the_ray_extra_names_the_extra(cli, monkeypatch, tmp_path):
    # what an install without [ray] has: no pyarrow, but fsspec (torch brings it) without s3fs
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: FakeModel())
    res = cli("predict", "s3://bucket/clip.mp4", "--json")
    assert res.exit_code == 1
    row = json.loads(res.stdout.splitlines()[0])
    assert row["error"] == "reading s3:// needs the [ray] extra: pip install 'sparsesync-cli[ray]'"


@pytest.mark.parametrize("flag", ["--duration", "--stride"])
def test_errors_name_the_option_as_typed(cli, clips, flag):
    res = cli("predict", clips[0], flag, "0")
    assert res.exit_code == 2
    assert res.output == f"avsync: error: {flag} 0: must be more than 0 seconds\n"


@pytest.mark.parametrize("command", ["predict", "score"])
def test_no_input_says_so_and_exits_2(cli, command):
    res = cli(command)
    assert res.exit_code == 2
    assert res.output == (
        "avsync: error: no input: name the video files, folders or URIs to check (or --files-from LIST)\n"
    )


@pytest.mark.parametrize("missing", ["--checkpoint", "--config"])
def test_a_missing_model_file_exits_2_before_the_model_loads(cli, clips, tmp_path, monkeypatch, missing):
    loads = []
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: loads.append(k) or FakeModel())
    files = {"--checkpoint": tmp_path / "model.pt", "--config": tmp_path / "cfg-x.yaml"}
    for flag, path in files.items():
        if flag != missing:
            path.write_bytes(b"x")
    res = cli("predict", clips[0], *(x for kv in files.items() for x in kv))
    assert res.exit_code == 2
    assert res.output == f"avsync: error: {files[missing]}: no such file ({missing})\n"
    assert loads == []


def test_the_offline_first_run_leads_with_what_to_do_and_leaves_no_folder(cli, clips, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(cache))
    monkeypatch.setenv("AVSYNC_MIRROR", "http://avsync-test.invalid/")  # .invalid never resolves
    res = cli("predict", clips[0])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    line = res.output.removeprefix("avsync: error: ")
    assert line.startswith(
        "sparsesync-audioset is not cached and cannot be downloaded now: use a checkpoint file you "
        "have (--checkpoint FILE.pt --config cfg-ID.yaml), or run `avsync download sparsesync-audioset`"
    )
    assert line.index("http://avsync-test.invalid/") > line.index("; why: ")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_reruns_keep_one_jsonl_row_per_file(cli, clips, tmp_path, monkeypatch):
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: FakeModel(lambda t: 0.4))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    jsonl = tmp_path / "r.jsonl"
    for _ in range(3):  # the failed file is retried each time
        assert cli("predict", clips[0], bad, "--jsonl", jsonl).exit_code == 1
    rows = read_jsonl_lines(jsonl)
    assert sorted(Path(r["path"]).name for r in rows) == ["a.mp4", "bad.mp4"]
    bad.write_bytes(clips[1].read_bytes())  # fixed: its success replaces the failure
    assert cli("predict", clips[0], bad, "--jsonl", jsonl).exit_code == 0
    assert [(Path(r["path"]).name, r["ok"]) for r in read_jsonl_lines(jsonl)] == [
        ("a.mp4", True),
        ("bad.mp4", True),
    ]
