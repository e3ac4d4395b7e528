"""--decode-workers: files decoded in worker processes feed one model, with the rows of one worker.

The model here is a real torch module whose logits depend on every decoded byte (average pools of
the model's inputs times fixed random weights): cheap enough to run many windows, and any byte
lost, reordered or mixed between files on the way through the workers changes the logits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from sparsesync_cli.analysis.predict import PredictOptions, iter_predictions
from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY, SYNCHFORMER_GEOMETRY
from sparsesync_cli.distributed.batched_run import SLOTS_PER_WORKER
from sparsesync_cli.distributed.decode_pool import DecodePool, SlotLayout, auto_workers
from sparsesync_cli.distributed.work import PredictJob
from sparsesync_cli.sync_model import ModelSetup, SyncModel
from sparsesync_cli.testmedia.synth import Clip, cached_clip

GRID = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))


class Probe(torch.nn.Module):
    """Logits from 256-bin average pools of the video and audio inputs (every byte counts)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.wv = torch.nn.Parameter(torch.randn(256, 21, generator=g), requires_grad=False)
        self.wa = torch.nn.Parameter(torch.randn(256, 21, generator=g), requires_grad=False)

    def forward(self, vid: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        def pool(x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool1d(x.float().flatten(1)[:, None], 256)[:, 0]

        return 50 * pool(vid) @ self.wv + 5 * pool(aud) @ self.wa


class ProbeModel(SyncModel):
    def __init__(self, family: str = "sparsesync") -> None:
        geometry = SPARSESYNC_GEOMETRY if family == "sparsesync" else SYNCHFORMER_GEOMETRY
        super().__init__(Probe().eval(), ModelSetup("probe", family, None, GRID, geometry, "cpu", "fp32"))
        self.batches: list[int] = []

    def logits(self, frames, audio):
        self.batches.append(len(frames))
        return super().logits(frames, audio)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three clips of 1, 3 and 2 windows at stride 2 s, a corrupt file and a missing one."""
    root = tmp_path_factory.mktemp("dw")
    clips = []
    for k, d in enumerate((5.5, 9.0, 7.0)):
        (root / str(k)).mkdir()
        clips.append(cached_clip(root / str(k), Clip(duration=d, flash_sec=1.0 + k, click_sec=1.4 + k)).path)
    bad = root / "corrupt.mp4"
    bad.write_bytes(clips[0].read_bytes()[:3000])  # a real header cut short
    return [clips[0], bad, clips[1], root / "missing.mp4", clips[2]]


def rows(results) -> list[dict]:
    out = []
    for r in results:
        d = r.to_dict()
        d.pop("elapsed_sec")
        out.append(d)
    return out


def test_workers_give_the_rows_of_the_in_process_run(files):
    options = PredictOptions(stride_sec=2.0)
    local = rows(iter_predictions(files, ProbeModel(), options))
    two = rows(iter_predictions(files, ProbeModel(), options, decode_workers=2))
    assert [r["path"] for r in two] == [str(f) for f in files]
    assert [r["ok"] for r in two] == [True, False, True, False, True]
    assert two[1]["error"] and two[3]["error"] == "no such file"
    assert [len(r["windows"]) for r in two if r["ok"]] == [1, 3, 2]
    # logits bit for bit (the rows hold every window's logits as floats); 1 worker: the CLI test
    assert two == local


def test_model_batches_span_files_and_do_not_depend_on_the_workers(files):
    options = PredictOptions(stride_sec=2.0, batch_size=4)
    one, two = ProbeModel(), ProbeModel()
    a = rows(iter_predictions(files, one, options, decode_workers=1))
    b = rows(iter_predictions(files, two, options, decode_workers=2))
    assert a == b
    assert one.batches == two.batches == [4, 2]  # 1 + 3 + 2 windows: the first call spans 3 files


def test_a_model_call_that_fails_is_its_files_failed_row(files):
    class Flaky(ProbeModel):
        def logits(self, frames, audio):
            if len(self.batches) == 1:  # the second call: the first window of files[2]
                self.batches.append(len(frames))
                raise RuntimeError("CUDA out of memory (simulated)")
            return super().logits(frames, audio)

    got = rows(iter_predictions(files, Flaky(), PredictOptions(stride_sec=2.0), decode_workers=2))
    assert [r["ok"] for r in got] == [True, False, False, False, True]
    assert "CUDA out of memory (simulated)" in got[2]["error"]


def test_score_and_evaluate_with_workers_equal_the_in_process_run(files, tmp_path):
    from sparsesync_cli.analysis.desync import score_files
    from sparsesync_cli.evaluation.protocol import ProtocolItem
    from sparsesync_cli.evaluation.run import evaluate_items

    some = [files[1], files[0], files[3], files[4]]  # corrupt, 1 window, missing, 2 windows
    model = ProbeModel("synchformer")
    local = list(score_files(some, model, batch_size=1))
    pooled = list(score_files(some, model, batch_size=1, decode_workers=2))
    assert pooled == local and [r.ok for r in pooled] == [False, True, False, True]

    root = files[0].parent
    items = [ProtocolItem(os.path.relpath(f, root), o, 0.0) for f in some for o in (0.0, -0.4)]
    model = ProbeModel()
    local = list(evaluate_items(items, model, root, batch_size=1))
    pooled = list(evaluate_items(items, model, root, batch_size=1, decode_workers=2))
    assert pooled == local
    assert [r["ok"] for r in pooled] == [False, False, True, True, False, False, True, True]


def _pool(files: list[Path], workers: int, slots: int) -> DecodePool:
    job = PredictJob(PredictOptions(stride_sec=2.0, batch_size=1), ProbeModel().setup)
    layout = SlotLayout(1, (125, 3, 224, 224), 80_000)
    return DecodePool(job, [str(f) for f in files], workers, layout, slots)


def test_a_killed_worker_fails_the_file_it_held_and_the_batch_goes_on(files):
    clips = [files[0], files[2], files[4], files[2]]
    got: dict[int, list[str]] = {}
    with _pool(clips, workers=2, slots=1) as pool:
        for i, piece in pool.pieces():
            if not got:  # file 0's first window is here; file 1 (3 windows, 1 slot) is not done
                victim = pool.holder_pid(1)
                assert victim is not None
                os.kill(victim, signal.SIGKILL)
            got.setdefault(i, []).append(piece["error"])
        assert pool.restarts == 1 and victim not in pool.pids()
    assert got[0] == [""]
    assert got[1][-1] == "the decode worker was killed by SIGKILL (out of memory?) while reading this file"
    assert got[2] == ["", ""] and got[3] == ["", "", ""]  # a new worker took over


def test_leaving_a_batch_early_stops_every_worker(files):
    with _pool([files[2]] * 6, workers=2, slots=SLOTS_PER_WORKER) as pool:
        pieces = pool.pieces()
        next(pieces)
        pids = pool.pids()
        pieces.close()
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ctrl_c_ends_a_batch_and_its_workers_promptly(files, tmp_path):
    script = tmp_path / "batch.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parents[1])]!r}
        from test_decode_workers import ProbeModel
        from sparsesync_cli.analysis.predict import PredictOptions, iter_predictions

        if __name__ == "__main__":
            for r in iter_predictions([{str(files[0])!r}] * 50, ProbeModel(), PredictOptions(stride_sec=2.0),
                                      decode_workers=2):
                print("row", flush=True)
        """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline() == "row\n"
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr.read()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the workers (and multiprocessing's helpers) are gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("processes of the interrupted batch are still running")


def test_auto_leaves_the_model_its_cores():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert auto_workers("cuda", 1) == max(1, cores - 1)
    assert auto_workers("cpu", cores) == 1  # the model's threads take every core: one worker
    assert auto_workers("cpu", 1) == max(1, cores - 1)


# ---------------------------------------------------------------- the command line
def run(*args):
    from typer.testing import CliRunner

    from sparsesync_cli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_predict_with_2_and_1_decode_workers_writes_the_same_jsonl(files, tmp_path, monkeypatch):
    from sparsesync_cli import sync_model

    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: ProbeModel())
    folder = files[0].parents[1]  # the three clips (in sub-folders) and the corrupt file
    out = {}
    for n in (2, 1):
        jsonl = tmp_path / f"{n}.jsonl"
        res = run("predict", folder, "-r", "--stride", "2", "--decode-workers", n, "--jsonl", jsonl, "-q")
        assert res.exit_code == 1, res.output  # the corrupt file failed, as its own row
        out[n] = [{k: v for k, v in r.items() if k != "elapsed_sec"} for r in map(json.loads, jsonl.open())]
    assert out[2] == out[1]
    assert [r["ok"] for r in out[2]] == [True, True, True, False]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cpu", "--decoder", "gpu"], "the GPU decoder needs CUDA (--device cuda), not --device"),
        (["--decoder", "nvdec"], "--decoder nvdec: expected one of auto, cpu, gpu"),
        (["--decode-workers", "0"], "--decode-workers 0: expected a positive number or auto"),
        (["--decode-workers", "2", "--sample", "auto"], "--sample auto runs in this process only"),
    ],
)
def test_decoder_options_are_usage_errors_before_any_model_loads(files, monkeypatch, args, message):
    from sparsesync_cli import sync_model

    def never(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(sync_model, "load_model", never)
    res = run("predict", files[0], *args)
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and message in res.output, res.output


def test_decoding_needs_no_torch_and_crops_the_same_bytes(files):
    import numpy as np

    from sparsesync_cli.features.common import center_crop, center_crop_array

    x = np.random.default_rng(0).integers(0, 255, (2, 3, 257, 341, 3), dtype=np.uint8)
    assert np.array_equal(center_crop_array(x), center_crop(x).numpy())
    code = textwrap.dedent(f"""
        import sys
        from sparsesync_cli.analysis.predict import PredictOptions
        from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY
        from sparsesync_cli.distributed import decode_pool  # noqa: F401  (what a worker imports)
        from sparsesync_cli.distributed.work import PredictJob
        from sparsesync_cli.sync_model import ModelSetup

        setup = ModelSetup("x", "sparsesync", None, (0.0,), SPARSESYNC_GEOMETRY, "cpu", "fp32")
        pieces = list(PredictJob(PredictOptions(), setup).decode({str(files[0])!r}))
        print(len(pieces), pieces[0]["frames"].shape, "torch" in sys.modules)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[0] == "1 (1, 125, 3, 224, 224) False"
