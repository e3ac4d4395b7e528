"""The pieces of the cluster run that need no cluster: assembling, resume keys, lists, the CLI glue."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.fake_model import FakeModel

from sparsesync_cli.analysis.predict import PredictOptions, predict_file
from sparsesync_cli.cli import ray_argv
from sparsesync_cli.distributed.sources import collect_sources, read_list, split_done
from sparsesync_cli.distributed.work import Assembler, PredictJob, ScoreJob, decode_file, run_piece
from sparsesync_cli.testmedia.synth import Clip, cached_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # 9 s at stride 1: five windows, batches of 3 -> two pieces (3 + 2 windows)
    return cached_clip(tmp_path_factory.mktemp("clip"), Clip(duration=9.0)).path


def test_pieces_in_any_order_and_repeated_give_the_local_result_once(clip):
    model = FakeModel()
    options = PredictOptions(stride_sec=1.0, batch_size=3)
    local = predict_file(clip, model, options).to_dict()
    job = PredictJob(options, model.setup)
    pieces = [run_piece(model, p) for p in decode_file(str(clip), job)]
    assert len(pieces) == 2 and [len(p["starts"]) for p in pieces] == [3, 2]
    asm = Assembler(job)
    # the last piece first, then a retried task's repeat of it: nothing until the file is whole
    assert asm.add(pieces[1]) is None and asm.add(pieces[1]) is None
    result = asm.add(pieces[0])
    assert result is not None
    assert asm.add(pieces[0]) is None  # a repeat after the file was reported: dropped
    got = result.to_dict()
    for d in (got, local):
        d.pop("elapsed_sec")
    assert got == local


def test_score_pieces_give_the_local_desync_numbers(clip):
    from sparsesync_cli.analysis.desync import score_file

    def model():
        return FakeModel(lambda t: 0.4 if t < 8 else -0.6, family="synchformer")

    local = score_file(clip, model(), batch_size=1)
    remote = model()
    job = ScoreJob(remote.setup, clip_sec=None, whole_file=True, batch_size=1)
    pieces = [run_piece(remote, p) for p in decode_file(str(clip), job)]
    # av-benchmark's first and last windows, then the whole file's two 4.8 s windows
    assert [(p["group"], p["chunk"]) for p in pieces] == [
        ("ends", 0),
        ("ends", 1),
        ("whole", 0),
        ("whole", 1),
    ]
    asm = Assembler(job)
    results = [asm.add(p) for p in reversed(pieces)]
    assert results[:3] == [None, None, None]
    assert results[3] == local
    assert local.n_windows == 2 and local.desync_windows is not None


def test_a_file_that_fails_is_one_failed_piece_with_its_cause(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    model = FakeModel()
    job = PredictJob(PredictOptions(), model.setup)
    pieces = list(decode_file(str(bad), job))
    assert len(pieces) == 1 and "not a readable media file" in pieces[0]["error"]
    result = Assembler(job).add(run_piece(model, pieces[0]))
    assert not result.ok and result.error == pieces[0]["error"]
    assert result.path == str(bad)


def test_evaluation_chunks_give_the_local_item_records_in_the_same_model_batches(clip, tmp_path):
    from sparsesync_cli.distributed.work import EvaluateJob, item_chunks
    from sparsesync_cli.evaluation.protocol import ProtocolItem
    from sparsesync_cli.evaluation.run import evaluate_items

    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    (tmp_path / "clip.mp4").symlink_to(clip)
    items = [
        ProtocolItem("clip", 0.0, 0.5),
        ProtocolItem("clip", 0.8, 1.0),
        ProtocolItem("corrupt", 0.0, 0.5),
        ProtocolItem("clip", 1.2, 2.0),
        ProtocolItem("missing", 0.0, 0.5),
        ProtocolItem("clip", -0.4, 3.5),
    ]

    def model():
        return FakeModel(lambda t: -2.0 + t / 10)  # each model call's windows get their own answer

    here = model()
    local = list(evaluate_items(items, here, tmp_path, batch_size=2))
    remote = model()
    job = EvaluateJob(remote.setup, str(tmp_path), batch_size=2)
    chunks = item_chunks(items, job.batch_size)
    pieces = [run_piece(remote, p) for c in chunks for p in job.decode(c)]
    assert remote.calls == here.calls  # the same model batches: 2 clips, [corrupt] clip, [missing] clip
    assert [c[0][0] for c in here.calls] == [2, 1, 1]
    asm = Assembler(job)
    records = [r for p in [*reversed(pieces), pieces[0]] for r in asm.add(p) or []]
    key = {(r["path"], r["vstart_sec"]): r for r in local}
    assert len(records) == 6 and {(r["path"], r["vstart_sec"]): r for r in records} == key
    assert [r["ok"] for r in local] == [True, True, False, True, False, True]
    assert "no such clip" in key[("missing", 0.5)]["error"]


def test_list_files_skip_blanks_and_comments(tmp_path, clip):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my clips\n\n{clip}\n  s3://bucket/a.mp4  \n{clip}\n")
    assert read_list(listing) == [str(clip), "s3://bucket/a.mp4", str(clip)]
    # duplicates dropped, URIs kept as given (checked, and reported, later)
    assert collect_sources([], files_from=listing) == [str(clip), "s3://bucket/a.mp4"]


def test_resume_keys_match_local_files_and_uris(clip):
    st = clip.stat()
    done = [
        {
            "ok": True,
            "path": str(clip),
            "file_size": st.st_size,
            "file_mtime": st.st_mtime,
            "model": {"name": "m"},
        },
        {"ok": True, "path": "s3://b/x.mp4", "file_size": 5, "file_mtime": 1.0, "model": {"name": "m"}},
    ]
    todo, skipped = split_done([str(clip), "s3://b/x.mp4"], done, model="m")
    # the local file is done; the object cannot be stat'ed here (no store), so it is checked again
    assert todo == ["s3://b/x.mp4"] and skipped == [done[0]]
    assert split_done([str(clip)], done, model="other") == ([str(clip)], [])
    stale = [{**done[0], "file_mtime": st.st_mtime - 10}]
    assert split_done([str(clip)], stale, model="m") == ([str(clip)], [])


def test_bare_ray_flag_means_a_local_runtime():
    assert ray_argv(["predict", "d", "--ray"]) == ["predict", "d", "--ray=local"]
    assert ray_argv(["predict", "--ray", "d", "-r"]) == ["predict", "--ray=local", "d", "-r"]
    assert ray_argv(["predict", "d", "--ray", "--jsonl", "x"]) == [
        "predict",
        "d",
        "--ray=local",
        "--jsonl",
        "x",
    ]
    assert ray_argv(["predict", "--ray", "auto", "d"]) == ["predict", "--ray", "auto", "d"]
    assert ray_argv(["predict", "--ray", "ray://head:10001"]) == ["predict", "--ray", "ray://head:10001"]


def test_importing_avsync_never_imports_ray():
    code = (
        "import sys, sparsesync_cli, sparsesync_cli.cli, sparsesync_cli.distributed.work, "
        "sparsesync_cli.distributed.sources; print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_without_ray_the_flag_says_how_to_install_it(cli, monkeypatch, clip, tmp_path, command):
    from sparsesync_cli.evaluation.protocol import ProtocolItem, write_protocol

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like
    args = ["predict", str(clip)]
    if command == "evaluate":
        write_protocol([ProtocolItem(clip.name, 0.0, 0.5)], tmp_path / "protocol.csv")
        args = ["evaluate", str(tmp_path / "protocol.csv"), "--root", str(clip.parent)]
    r = cli(*args, "--ray", "local")
    assert r.exit_code == 2
    assert "pip install 'sparsesync-cli[ray]'" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_parquet_results_round_trip_and_resume(cli, tmp_path, clip, monkeypatch):
    pytest.importorskip("pyarrow")
    from sparsesync_cli import sync_model

    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: FakeModel())
    folder = tmp_path / "pq"
    args = ["predict", str(clip), "--parquet", str(folder), "--json", "-q"]
    r = cli(*args)
    assert r.exit_code == 0, r.output
    from sparsesync_cli.distributed.parquet import read_parquet_results

    rows = read_parquet_results(folder)
    printed = json.loads(r.output.strip().splitlines()[0])
    assert rows == [printed]  # every field, nested ones too, as --json prints it
    r = cli(*args)
    assert "1 file(s) already in the report" in r.output
    assert len(read_parquet_results(folder)) == 1
