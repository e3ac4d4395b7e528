"""`avsync evaluate` end to end: a synthetic dataset laid out like LRS3 and VGGSound, a fake model
whose logits are a known function of each item's true offset, resume, failures, calibration,
report; and the random-weight fixture model against `predict --start --shift --duration 5`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from sparsesync_cli import sync_model
from sparsesync_cli.analysis.predict import PredictOptions, predict_file
from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY
from sparsesync_cli.evaluation.metrics import target_class
from sparsesync_cli.evaluation.protocol import ProtocolItem, read_protocol, write_protocol
from sparsesync_cli.evaluation.run import evaluate_items, read_item_jsonl
from sparsesync_cli.sync_model import ModelSetup
from sparsesync_cli.testmedia.synth import Clip, cached_clip

GRID = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
EVENT_SEC = 3.0  # the synthetic clips flash and click together here: they are in sync


class OffsetReadingModel:
    """Reads each window's true offset from the synthetic flash and click, and answers with
    probability 0.7 on ``rule(true class)`` and 0.015 on each other class."""

    def __init__(self, rule=lambda k: k, name: str = "fake") -> None:
        self.setup = ModelSetup(name, "sparsesync", None, GRID, SPARSESYNC_GEOMETRY, "cpu", "fp32")
        self.rule = rule
        self.calls = 0

    @property
    def grid(self):
        return self.setup.grid

    @property
    def geometry(self):
        return self.setup.geometry

    def logits(self, frames, audio) -> torch.Tensor:
        frames, audio = np.asarray(frames), np.asarray(audio)
        out = []
        for f, a in zip(frames, audio, strict=True):
            self.calls += 1
            flash_t = int(f.reshape(len(f), -1).mean(axis=1).argmax()) / 25
            click_t = int(np.abs(a).argmax()) / 16000
            k = self.rule(target_class(flash_t - click_t, GRID))
            p = np.full(len(GRID), 0.3 / (len(GRID) - 1))
            p[k] = 0.7
            out.append(np.log(p))
        return torch.tensor(np.array(out), dtype=torch.float32)


def late_at_one_second(k: int) -> int:
    return 16 if k == 15 else k  # true +1.0 s is answered +1.2 s: one class off


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, shared_dir):
    """LRS3 (`pretrain/<video id>/<clip>.mp4`) and VGGSound (`<11-char id>_<start ms>_<end ms>.mp4`)
    layouts from synthetic in-sync clips and the real clips of ../shared/media."""
    root = tmp_path_factory.mktemp("data")
    synth = cached_clip(
        tmp_path_factory.mktemp("synth"), Clip(duration=8.0, flash_sec=EVENT_SEC, click_sec=EVENT_SEC)
    )
    lrs3 = root / "lrs3" / "pretrain"
    (lrs3 / "SyntheticAA").mkdir(parents=True)
    (lrs3 / "C8zY0oAdQrs").mkdir(parents=True)
    shutil.copy(synth.path, lrs3 / "SyntheticAA" / "00001.mp4")
    os.symlink(
        shared_dir / "media/lrs3_C8zY0oAdQrs_00018_25fps_256side_16k.mp4", lrs3 / "C8zY0oAdQrs" / "00018.mp4"
    )
    vgg = root / "vggsound"
    vgg.mkdir()
    shutil.copy(synth.path, vgg / "SyntheticVG_0_10000.mp4")
    os.symlink(
        shared_dir / "media/vggsound_3qesirWAGt4_25fps_256side_16k.mp4", vgg / "3qesirWAGt4_20000_30000.mp4"
    )
    (vgg / "brokenclip1_0_10000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return root


def _write(tmp_path, rows, name="protocol.csv"):
    p = tmp_path / name
    write_protocol([ProtocolItem(*r) for r in rows], p)
    return p


HAND_ROWS = [  # (path, offset_sec, vstart_sec), the authors' column order
    ("pretrain/SyntheticAA/00001", -2.0, 0.5),
    ("pretrain/SyntheticAA/00001", 0.0, 0.5),
    ("pretrain/SyntheticAA/00001", 0.4, 0.5),
    ("pretrain/SyntheticAA/00001", 1.0, 0.5),
]


@pytest.fixture
def fake(monkeypatch):
    model = OffsetReadingModel(late_at_one_second)

    def load(*args, checkpoint=None, **kwargs):  # a fresh model each time, from the file given
        model.setup = replace(
            model.setup, checkpoint=None if checkpoint is None else str(checkpoint), calibration=None
        )
        model.loads += 1
        return model

    model.loads = 0
    monkeypatch.setattr(sync_model, "load_model", load)
    return model


def _evaluate(cli, *args):
    r = cli("evaluate", *args)
    return r, (json.loads(r.stdout) if "--json" in args else None)


def test_lrs3_layout_metrics_equal_hand_computed_values(cli, dataset, tmp_path, fake):
    rows = [*HAND_ROWS, ("pretrain/NoSuchVideo/00001", 0.0, 1.0)]
    r, m = _evaluate(cli, _write(tmp_path, rows), "--root", dataset / "lrs3", "--json")
    assert r.exit_code == 1, r.output  # an item failed
    assert m["schema"] == "avsync.evaluation/1" and (m["n"], m["n_failed"]) == (4, 1)
    assert (
        m["failed"][0]["path"] == "pretrain/NoSuchVideo/00001" and "no such clip" in m["failed"][0]["error"]
    )
    # same numbers as test_evaluation_metrics: 3 hits + 1 one class late, all at p = 0.7
    assert m["acc1"] == 75.0 and m["acc1_pm1"] == 100.0
    assert m["ece"] == pytest.approx(0.05, abs=1e-6)
    assert m["brier"] == pytest.approx((3 * 0.0945 + 1.4645) / 4, abs=1e-5)
    assert m["mean_abs_offset_error_sec"] == pytest.approx(0.05)
    cm = np.array(m["confusion"])
    assert cm[0, 0] == cm[10, 10] == cm[12, 12] == cm[15, 16] == 1 and cm.sum() == 4
    assert fake.calls == 4


def test_vggsound_layout_counts_broken_and_missing_clips_and_goes_on(cli, dataset, tmp_path, fake):
    rows = [
        ("SyntheticVG_0_10000", 0.2, 0.5),
        ("brokenclip1_0_10000", 0.0, 1.0),
        ("missingclip_0_10000", 0.0, 1.0),
        ("SyntheticVG_0_10000", -1.0, 0.5),
        ("SyntheticVG_0_10000", 0.0, 3.5),  # the window would read past the end of the 8 s clip
    ]
    r, m = _evaluate(cli, _write(tmp_path, rows), "--root", dataset / "vggsound", "--json")
    assert r.exit_code == 1
    assert (m["n"], m["n_failed"]) == (2, 3) and m["acc1"] == 100.0
    errors = {f["path"] + f"@{f['vstart_sec']}": f["error"] for f in m["failed"]}
    assert "brokenclip1_0_10000.mp4" in errors["brokenclip1_0_10000@1.0"]
    assert "no such clip" in errors["missingclip_0_10000@1.0"]
    assert "past the end" in errors["SyntheticVG_0_10000@3.5"]
    assert all("\n" not in e for e in errors.values())


def test_resume_from_the_jsonl_runs_only_what_is_missing(cli, dataset, tmp_path, fake):
    proto = _write(tmp_path, [*HAND_ROWS, ("pretrain/NoSuchVideo/00001", 0.0, 1.0)])
    jsonl = tmp_path / "items.jsonl"
    r, full = _evaluate(cli, proto, "--root", dataset / "lrs3", "--json", "--jsonl", jsonl)
    records = read_item_jsonl(jsonl)
    assert len(records) == 5 and fake.calls == 4
    assert set(records[0]) >= {
        "path",
        "vstart_sec",
        "offset_sec",
        "target_class",
        "logits",
        "pred_class",
        "ok",
        "error",
    }
    # a crash after two items, in the middle of writing the third line
    lines = jsonl.read_bytes().splitlines(keepends=True)
    jsonl.write_bytes(b"".join(lines[:2]) + lines[2][:20])
    fake.calls = 0
    r, resumed = _evaluate(cli, proto, "--root", dataset / "lrs3", "--json", "--jsonl", jsonl)
    assert fake.calls == 2  # items 3 and 4; the missing clip is retried (and fails again)
    assert "2 item(s) taken from" in r.stderr
    for k in ("n", "n_failed", "acc1", "acc1_pm1", "ece", "brier", "confusion"):
        assert resumed[k] == full[k]
    assert len(read_item_jsonl(jsonl)) == 5
    fake.calls = 0
    _evaluate(cli, proto, "--root", dataset / "lrs3", "--json", "--jsonl", jsonl)
    assert fake.calls == 0  # everything that worked is in the JSONL


def test_fit_calibration_then_predict_uses_it_and_refuses_another_model(
    cli, dataset, tmp_path, fake, monkeypatch
):
    # 12 items of 2 clips (the held-out share is a share of clips), all right at p = 0.7: the
    # model is under-confident, a temperature < 1 sharpens it
    rows = [
        (clip, o, 0.5)
        for clip in ("vggsound/SyntheticVG_0_10000", "lrs3/pretrain/SyntheticAA/00001")
        for o in (-2.0, -1.2, -0.4, 0.2, 1.0, 1.8)
    ]
    fake.rule = lambda k: k
    cal = tmp_path / "cal.json"
    report = tmp_path / "eval.html"
    r, m = _evaluate(
        cli, _write(tmp_path, rows), "--root", dataset, "--json", "--fit-calibration", cal, "--report", report
    )
    assert r.exit_code == 0, r.output
    d = json.loads(cal.read_text())
    assert d["model"]["name"] == "fake" and d["temperature"] < 1.0
    assert m["fitted_calibration"]["heldout"]["ece_after"] < m["fitted_calibration"]["heldout"]["ece_before"]
    page = report.read_text()
    assert (
        "Confusion matrix" in page and "Reliability diagram" in page and "<svg" in page and "src=" not in page
    )

    clip = dataset / "vggsound" / "SyntheticVG_0_10000.mp4"
    r = cli("predict", str(clip), "--json", "--calibration", str(cal))
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.splitlines()[0])
    assert res["model"]["calibration"] == {"file": str(cal), "temperature": d["temperature"], "model": "fake"}
    fake.setup = replace(fake.setup, calibration=None)  # load_model gives a fresh model each time
    plain = json.loads(cli("predict", str(clip), "--json").stdout.splitlines()[0])
    assert "calibration" not in plain["model"]
    assert res["windows"][0]["confidence"] > plain["windows"][0]["confidence"]  # sharpened
    assert res["windows"][0]["logits"] == pytest.approx(
        [x / d["temperature"] for x in plain["windows"][0]["logits"]]
    )

    monkeypatch.setenv("AVSYNC_CALIBRATION", str(cal))
    env = json.loads(cli("predict", str(clip), "--json").stdout.splitlines()[0])
    assert env["model"]["calibration"]["file"] == str(cal)

    other = OffsetReadingModel(name="sparsesync-lrs3")
    monkeypatch.setattr(sync_model, "load_model", lambda *a, **k: other)
    r = cli("predict", str(clip), "--calibration", str(cal))
    assert r.exit_code == 2 and "this calibration is for model fake" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and other.calls == 0


def test_evaluate_make_protocol_and_default_command_dispatch(cli, dataset, tmp_path, fake):
    out = tmp_path / "mine.csv"
    clip = dataset / "vggsound" / "SyntheticVG_0_10000.mp4"
    r = cli("evaluate", "make-protocol", clip, "-o", out, "--per-clip", "6", "--root", dataset)
    assert r.exit_code == 0, r.output
    assert len(read_protocol(out)) == 6
    r, m = _evaluate(cli, out, "--root", dataset, "--json")
    assert r.exit_code == 0 and m["n"] == 6 and m["protocol"] == str(out)


def test_a_named_protocol_is_fetched_then_evaluated(cli, dataset, tmp_path, fake, monkeypatch):
    from helpers.http_server import FileServer

    from sparsesync_cli.evaluation import named

    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(tmp_path / "cache"))
    csv = _write(tmp_path, HAND_ROWS, "served.csv")
    srv = FileServer()
    srv.files["/offsets.csv"] = csv
    data = csv.read_bytes()
    rf = named.RemoteFile(f"{srv.url}/offsets.csv", hashlib.sha256(data).hexdigest(), len(data))
    proto = named.NamedProtocol(
        "mini-lrs3", "t", {"offsets": rf}, named.build_from_offsets, 21, 4, {"fake": 75.0}
    )
    monkeypatch.setitem(named.NAMED_PROTOCOLS, "mini-lrs3", proto)
    try:
        r, m = _evaluate(cli, "mini-lrs3", "--root", dataset / "lrs3", "--json")
    finally:
        srv.close()
    assert r.exit_code == 0, r.output
    assert m["protocol"] == "mini-lrs3" and m["n"] == 4 and m["published_acc1"] == {"fake": 75.0}
    assert m["acc1"] == 75.0
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")  # the server is gone: the cache answers
    r, m = _evaluate(cli, "mini-lrs3", "--root", dataset / "lrs3", "--json")
    assert r.exit_code == 0 and m["n"] == 4


# ---------------------------------------------------------------- the fixture model


@pytest.mark.slow
def test_item_logits_equal_predict_and_the_golden_references(dataset, shared_dir):
    fx = shared_dir / "fixtures/sparsesync"
    model = sync_model.load_model(
        checkpoint=fx / "tiny_sparsesync.pt", config=fx / "cfg-tiny_sparsesync.yaml", device="cpu"
    )
    cases = json.loads((fx / "golden_logits.json").read_text())
    assert all(c["path"] == "media/vggsound_3qesirWAGt4_25fps_256side_16k.mp4" for c in cases)
    items = [ProtocolItem("3qesirWAGt4_20000_30000", c["offset_sec"], c["v_start_i_sec"]) for c in cases]
    records = list(evaluate_items(items, model, dataset / "vggsound", batch_size=2))
    for rec, case in zip(records, cases, strict=True):
        assert rec["ok"], rec["error"]
        assert np.abs(np.array(rec["logits"]) - case["logits"]).max() <= 1e-2
        assert rec["pred_class"] == case["argmax"]
    # the same numbers as `avsync predict CLIP --start 0 --shift 1.6 --duration 5`
    opts = PredictOptions(
        start_sec=cases[1]["v_start_i_sec"], shift_sec=cases[1]["offset_sec"], duration_sec=5.0
    )
    window = predict_file(dataset / "vggsound" / "3qesirWAGt4_20000_30000.mp4", model, opts).windows[0]
    assert np.abs(np.array(window.logits) - records[1]["logits"]).max() <= 1e-4


# ---------------------------------------------------------------- randomised passes, guards


def test_passes_draw_reproducible_items_and_resume_per_item_and_pass(cli, dataset, tmp_path, fake):
    proto = _write(tmp_path, [("vggsound/SyntheticVG_0_10000", 0.0, 1.0), ("vggsound/missing_0_1", 0.0, 1.0)])
    jsonl = tmp_path / "items.jsonl"
    args = (proto, "--root", dataset, "--passes", "3", "--seed", "0", "--json")
    r, m = _evaluate(cli, *args, "--jsonl", jsonl)
    assert r.exit_code == 1, r.output  # the missing clip fails in each pass
    assert (m["passes"], m["seed"], m["n"], m["n_failed"]) == (3, 0, 3, 3) and fake.calls == 3
    assert len(m["acc1_per_pass"]) == 3 and {"acc5", "acc5_pm1", "map", "roc_auc", "dprime"} <= set(m)
    records = read_item_jsonl(jsonl)
    assert len(records) == 6 and sorted((r["row"], r["pass"]) for r in records) == [
        (row, p) for row in (0, 1) for p in range(3)
    ]
    drawn = [(r["offset_sec"], r["vstart_sec"]) for r in records if r["ok"]]
    assert len(set(drawn)) == 3  # each pass drew another window of the clip
    # the same seed draws the same items; another seed others
    _, again = _evaluate(cli, *args, "--jsonl", tmp_path / "again.jsonl")
    assert [
        (r["offset_sec"], r["vstart_sec"]) for r in read_item_jsonl(tmp_path / "again.jsonl") if r["ok"]
    ] == drawn
    assert again["acc1_per_pass"] == m["acc1_per_pass"]  # (other seeds: test_evaluation_passes)
    # resume: one pass's record lost; only that (item, pass) runs again
    lines = jsonl.read_bytes().splitlines(keepends=True)
    jsonl.write_bytes(b"".join(line for line in lines if b'"pass":1' not in line or b"missing" in line))
    fake.calls = 0
    r, resumed = _evaluate(cli, *args, "--jsonl", jsonl)
    assert fake.calls == 1 and "2 item(s) taken from" in r.stderr
    assert resumed["acc1_per_pass"] == m["acc1_per_pass"] and resumed["n"] == 3
    # a plain run on the same JSONL is other items: its records are not taken for drawn ones
    fake.calls = 0
    r, plain = _evaluate(cli, proto, "--root", dataset, "--json", "--jsonl", jsonl)
    assert fake.calls == 1 and plain["passes"] is None and plain["n"] == 1
    r, _ = _evaluate(cli, proto, "--root", dataset, "--seed", "3")
    assert r.exit_code == 2 and "--seed goes with --passes" in r.stderr


def test_a_named_protocol_refuses_a_model_of_another_class_count_before_loading_it(
    cli, dataset, tmp_path, fake, monkeypatch
):
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")  # it must not even fetch the protocol
    r, _ = _evaluate(cli, "lrs3-3cls", "--root", dataset)  # the default model has 21 classes
    assert r.exit_code == 2 and fake.loads == 0
    line = r.stderr.strip()
    assert "\n" not in line and "lrs3-3cls is for 3-class models (sparsesync-lrs3-3cls)" in line
    assert "sparsesync-audioset has 21 classes" in line
    r, _ = _evaluate(cli, "lrs3", "--root", dataset, "--model", "sparsesync-vggsound-sparse-3cls")
    assert r.exit_code == 2 and "21-class" in r.stderr and fake.loads == 0
    r, _ = _evaluate(cli, "lrs3", "--root", dataset)  # the right class count: on to the (offline) fetch
    assert r.exit_code == 1 and "not in the cache" in r.stderr


def test_evaluate_reads_avsync_calibration_and_binds_it_to_the_checkpoint_bytes(
    cli, dataset, tmp_path, fake, monkeypatch
):
    a, b = tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt"
    for p, last in ((a, b"\x00"), (b, b"\x01")):  # the same file name, one byte apart
        p.parent.mkdir()
        p.write_bytes(b"weights" * 100 + last)
    rows = [
        (clip, o, 0.5)
        for clip in ("vggsound/SyntheticVG_0_10000", "lrs3/pretrain/SyntheticAA/00001")
        for o in (-2.0, -1.0, 0.2, 1.0, 1.8)
    ]  # 10 items of 2 clips: the least a calibration takes
    fake.rule = lambda k: k
    proto, cal = _write(tmp_path, rows), tmp_path / "cal.json"
    r, m = _evaluate(cli, proto, "--root", dataset, "--json", "--checkpoint", a, "--fit-calibration", cal)
    assert r.exit_code == 0, r.output
    assert json.loads(cal.read_text())["model"]["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
    assert (m["fitted_calibration"]["n_fit"], m["fitted_calibration"]["n_heldout"]) == (5, 5)  # by clip

    clip = dataset / "vggsound" / "SyntheticVG_0_10000.mp4"
    r = cli("predict", clip, "--json", "--checkpoint", a, "--calibration", cal)
    assert r.exit_code == 0, r.output
    r = cli("predict", clip, "--json", "--checkpoint", b, "--calibration", cal)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "sha256" in r.stderr

    monkeypatch.setenv("AVSYNC_CALIBRATION", str(cal))
    r, m = _evaluate(cli, proto, "--root", dataset, "--json", "--checkpoint", a)
    assert r.exit_code == 0 and m["calibration"]["file"] == str(cal)
    assert m["temperature"] == json.loads(cal.read_text())["temperature"]
    r, _ = _evaluate(cli, proto, "--root", dataset, "--checkpoint", b)
    assert r.exit_code == 2 and str(cal) in r.stderr and "sha256" in r.stderr


@pytest.mark.slow
def test_a_drawn_item_is_the_window_predict_computes_at_its_offset_and_start(dataset, shared_dir):
    from sparsesync_cli.evaluation.passes import pass_items

    fx = shared_dir / "fixtures/sparsesync"
    model = sync_model.load_model(
        checkpoint=fx / "tiny_sparsesync.pt", config=fx / "cfg-tiny_sparsesync.yaml", device="cpu"
    )
    items = pass_items([ProtocolItem("3qesirWAGt4_20000_30000", 0.0, 0.0)], 2, seed=0)
    records = list(evaluate_items(items, model, dataset / "vggsound"))
    assert [r["pass"] for r in records] == [0, 1] and all(r["ok"] for r in records)
    assert records[0]["offset_sec"] != records[1]["offset_sec"]
    clip = dataset / "vggsound" / "3qesirWAGt4_20000_30000.mp4"
    for r in records:
        opts = PredictOptions(start_sec=r["vstart_sec"], shift_sec=r["offset_sec"], duration_sec=5.0)
        window = predict_file(clip, model, opts).windows[0]
        assert np.abs(np.array(window.logits) - r["logits"]).max() <= 1e-4
        assert r["target_class"] == target_class(r["offset_sec"], model.grid)
