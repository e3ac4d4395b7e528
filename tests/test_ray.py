"""``avsync predict/evaluate --ray`` on a real local Ray runtime and a real S3 server (moto), both
started here.

One Ray runtime (2 CPUs) and one S3 server serve the whole module: Ray takes ~10-20 s to start.
The reference is the same command without ``--ray``; results must be equal, logits bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest

from sparsesync_cli.testmedia.synth import Clip, cached_clip

ray = pytest.importorskip("ray", reason="the Ray tests need pip install 'sparsesync-cli[ray]'")
pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_CLIP = "vggsound_3qesirWAGt4_25fps_256side_16k.mp4"  # 10 s, 454x256: two windows
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
BUCKET = "clips"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1, in this process (its own thread)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*S3_CREDENTIALS, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def ray_runtime(s3_endpoint):
    """A real local Ray runtime with 2 CPUs, shared by the module's tests, shut down after."""
    env = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint, "PYTHONPATH": str(REPO_ROOT)}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_args(shared_dir):
    d = shared_dir / "fixtures" / "sparsesync"
    return [
        "--checkpoint",
        d / "tiny_sparsesync.pt",
        "--config",
        d / "cfg-tiny_sparsesync.yaml",
        "--threads",
        "1",
    ]


@pytest.fixture(scope="module")
def library(tmp_path_factory, shared_dir) -> Path:
    """A folder: synthetic clips, a real clip in a sub-folder, a corrupt file, a clip without audio."""
    root = tmp_path_factory.mktemp("library")
    synth = tmp_path_factory.mktemp("synth")
    for clip in (Clip(), Clip(container="mkv", duration=5.5, click_sec=2.5), Clip(acodec=None)):
        truth = cached_clip(synth, clip)
        (root / truth.path.name).write_bytes(truth.path.read_bytes())
    (root / "sub").mkdir()
    (root / "sub" / "real.mp4").write_bytes((shared_dir / "media" / REAL_CLIP).read_bytes())
    (root / "sub" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    return root


def _rows(path: Path) -> dict[str, dict]:
    """JSONL rows by path, without the wall-clock field (the only one allowed to differ)."""
    rows = {}
    for line in path.read_text().splitlines():
        d = json.loads(line)
        d.pop("elapsed_sec")
        rows[d["path"]] = d
    return rows


@pytest.fixture(scope="module")
def local_rows(cli, library, model_args, tmp_path_factory) -> dict[str, dict]:
    import torch

    out = tmp_path_factory.mktemp("local") / "local.jsonl"
    threads = torch.get_num_threads()
    r = cli("predict", library, "-r", "--jsonl", out, *model_args)
    torch.set_num_threads(threads)
    assert r.exit_code == 1, r.output  # the corrupt file and the silent clip fail, the rest is checked
    return _rows(out)


def test_ray_run_equals_local_run(cli, ray_runtime, library, model_args, local_rows, tmp_path):
    rows = local_rows
    assert len(rows) == 5
    assert sum(r["ok"] for r in rows.values()) == 3
    assert "no audio stream" in next(r["error"] for p, r in rows.items() if "noaudio" in p)

    out, parquet, csv_path = tmp_path / "ray.jsonl", tmp_path / "pq", tmp_path / "ray.csv"
    r = cli("predict", library, "-r", "--ray", "local", "--jsonl", out, "--parquet", parquet,
            "--csv", csv_path, *model_args)  # fmt: skip
    assert r.exit_code == 1, r.output
    ray_rows = _rows(out)
    assert ray_rows.keys() == rows.keys()
    for path, row in rows.items():
        assert ray_rows[path] == row, path  # offset, confidence, every window's logits: bit-exact
    assert len(out.read_text().splitlines()) == 5  # each file once

    import pyarrow.parquet as pq

    from sparsesync_cli.distributed.parquet import read_parquet_results

    parquet_rows = read_parquet_results(parquet)
    for t in parquet_rows:
        t.pop("elapsed_sec")
    assert {t["path"]: t for t in parquet_rows} == ray_rows  # the Parquet rows are the JSONL records
    assert len(csv_path.read_text().splitlines()) == 6

    # Resume from the Parquet folder: the three checked files are skipped, the two failures retried.
    r = cli("predict", library, "-r", "--ray", "local", "--parquet", parquet, *model_args)
    assert "3 file(s) already in the report" in r.output
    assert len(pq.read_table(parquet)) == 7


def _model_actor_pids() -> list[int]:
    """The model actors of THIS test's Ray runtime: children of its raylet (another Ray runtime on
    the machine, e.g. a parallel test worker's, has actors of its own that must not count)."""
    import ray

    node = ray._private.worker._global_node
    raylets = {info.process.pid for info in node.all_processes.get("raylet", [])}
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid in raylets and b"MapBatches(_ModelActor)" in cmd:
                pids.append(int(p.name))
    return pids


def test_an_actor_killed_mid_run_loses_no_file_and_repeats_none(ray_runtime, library, local_rows, shared_dir):
    from sparsesync_cli.analysis.predict import PredictOptions
    from sparsesync_cli.distributed.ray_pipeline import predict_on_ray
    from sparsesync_cli.distributed.sources import collect_sources
    from sparsesync_cli.distributed.work import ModelSpec

    d = shared_dir / "fixtures" / "sparsesync"
    spec = ModelSpec(
        checkpoint=str(d / "tiny_sparsesync.pt"), config=str(d / "cfg-tiny_sparsesync.yaml"), threads=1
    )
    setup = spec.load().setup
    sources = collect_sources([str(library)], recursive=True)
    killed: list[int] = []
    results = []
    for r in predict_on_ray(sources, spec, PredictOptions(), setup, actors=1):
        results.append(r.to_dict())
        if not killed:  # mid-run: one file is done, the others are on their way
            pids = _model_actor_pids()
            assert len(pids) == 1, pids
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
    assert killed
    paths = [r["path"] for r in results]
    assert sorted(paths) == sorted(sources)  # every file, once
    for r in results:
        r.pop("elapsed_sec")
        assert r == local_rows[r["path"]]


def test_s3_uris_from_a_list_equal_local_files(
    cli, ray_runtime, s3_endpoint, library, model_args, local_rows, tmp_path
):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    names = {"real.mp4": library / "sub" / "real.mp4", "corrupt.mp4": library / "sub" / "corrupt.mp4"}
    for name, path in names.items():
        s3.upload_file(str(path), BUCKET, f"in/{name}")
    listing = tmp_path / "list.txt"
    uris = [f"s3://{BUCKET}/in/{n}" for n in names] + [f"s3://{BUCKET}/in/missing.mp4"]
    listing.write_text("# clips\n" + "\n".join(uris) + "\n")
    out = tmp_path / "s3.jsonl"
    r = cli("predict", "--files-from", listing, "--ray", "local", "--jsonl", out, *model_args)
    assert r.exit_code == 1, r.output
    rows = _rows(out)
    assert set(rows) == set(uris)
    assert rows[uris[2]]["error"] == "no such object"
    for name, path in names.items():
        got, want = rows[f"s3://{BUCKET}/in/{name}"], dict(local_rows[str(path)])
        assert got["file_size"] == path.stat().st_size
        for k in ("path", "file_size", "file_mtime"):
            got.pop(k), want.pop(k)
        assert got == want, name

    # Resume: the checked object is skipped by its key (URI, size, last-modified).
    r = cli("predict", "--files-from", listing, "--ray", "local", "--jsonl", out, *model_args)
    assert "1 file(s) already in the report" in r.output


def _items(path: Path) -> dict[tuple, dict]:
    """Evaluation item records by item (path, start, offset)."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["path"], r["vstart_sec"], r["offset_sec"]): r for r in records}


def test_evaluate_on_ray_equals_local_evaluate(cli, ray_runtime, library, model_args, tmp_path):
    import torch

    from sparsesync_cli.evaluation.protocol import ProtocolItem, write_protocol

    synthetic = next(p.stem for p in library.glob("*.mp4") if "noaudio" not in p.name)
    items = [  # batches of 2: two windows of a clip, a failing item with another clip's, a failure
        ProtocolItem("sub/real", 0.0, 0.0),
        ProtocolItem("sub/real", 1.6, 2.0),
        ProtocolItem("sub/corrupt", 0.0, 0.0),
        ProtocolItem(synthetic, -0.4, 0.5),
        ProtocolItem("sub/missing", 0.0, 0.0),
    ]
    protocol = tmp_path / "protocol.csv"
    write_protocol(items, protocol)
    args = ["evaluate", protocol, "--root", library, "--batch-size", "2", "--json", *model_args]
    threads = torch.get_num_threads()
    local = cli(*args, "--jsonl", tmp_path / "local.jsonl")
    torch.set_num_threads(threads)
    assert local.exit_code == 1, local.output  # two items fail, the rest is evaluated
    out = tmp_path / "ray.jsonl"
    on_ray = cli(*args, "--jsonl", out, "--ray", "local")
    assert on_ray.exit_code == 1, on_ray.output

    want, got = _items(tmp_path / "local.jsonl"), _items(out)
    assert got == want  # every item's logits bit for bit, and the same error rows
    assert len(out.read_text().splitlines()) == 5  # each item once
    assert sum(r["ok"] for r in got.values()) == 3
    assert "no such clip" in got[("sub/missing", 0.0, 0.0)]["error"]
    assert "corrupt.mp4" in got[("sub/corrupt", 0.0, 0.0)]["error"]
    metrics = json.loads(on_ray.stdout.splitlines()[-1])
    assert metrics == json.loads(local.stdout.splitlines()[-1])
    assert (metrics["n"], metrics["n_failed"]) == (3, 2)

    # Resume: the three evaluated items are taken from the JSONL, the two failures retried.
    again = cli(*args, "--jsonl", out, "--ray", "local")
    assert "3 item(s) taken from" in again.output
    assert json.loads(again.stdout.splitlines()[-1]) == metrics
    assert len(out.read_text().splitlines()) == 7


@pytest.mark.slow  # the tiny Synchformer still takes ~20 s per window on 2 cores
def test_score_on_ray_equals_local_score(cli, ray_runtime, library, shared_dir):
    d = shared_dir / "fixtures" / "synchformer"
    model = [
        "--checkpoint",
        d / "tiny_synchformer_state_dict.pt",
        "--config",
        d / "cfg-tiny_synchformer.yaml",
    ]
    files = [library / "sub" / "real.mp4", library / "sub" / "corrupt.mp4"]

    def score(*extra) -> list[dict]:
        r = cli("score", *files, "--json", "--no-whole-file", "--threads", "1", *model, *extra)
        assert r.exit_code == 1, r.output  # the corrupt file fails
        return [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]

    local, on_ray = score(), score("--ray", "local")
    assert {r["path"] for r in on_ray if "path" in r} == {str(f) for f in files}
    by_path = {r["path"]: r for r in on_ray if "path" in r}
    for r in local:
        if "path" in r:
            assert by_path[r["path"]] == r
    assert on_ray[-1] == local[-1]  # the summary: {"summary": ...}
    assert by_path[str(files[0])]["desync_av_benchmark"] is not None
