"""Registry models end to end: download on first use, then pickle-free reloads from safetensors."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from helpers.http_server import FileServer
from helpers.hub_cache import make_hub_cache

from sparsesync_cli.checkpoints import loading as checkpoint_mod
from sparsesync_cli.checkpoints.cache import META_FILE, WEIGHTS_FILE
from sparsesync_cli.checkpoints.download import model_cache_dir
from sparsesync_cli.checkpoints.registry import get_entry
from sparsesync_cli.sync_model import load_model
from sparsesync_cli.testmedia.synth import Clip, make_clip

CKPT_PATH = "/sync/sync_models/tiny-0/tiny_sparsesync.pt"
CFG_PATH = "/sync/sync_models/tiny-0/cfg-tiny_sparsesync.yaml"
ENV = ("AVSYNC_OFFLINE", "AVSYNC_MIRROR", "AVSYNC_REGISTRY", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def served(shared_dir, tmp_path, monkeypatch):
    """The tiny SparseSync checkpoint behind a registry entry `tiny`, on a server on 127.0.0.1."""
    fx = shared_dir / "fixtures/sparsesync"
    srv = FileServer()
    srv.files = {CKPT_PATH: fx / "tiny_sparsesync.pt", CFG_PATH: fx / "cfg-tiny_sparsesync.yaml"}

    def register(checks: str) -> None:
        (tmp_path / "team.toml").write_text(
            f"""schema = 1
[models.tiny]
id = "tiny-0"
family = "sparsesync"
classes = 21
max_offset_sec = 2.0
[models.tiny.checkpoint]
url = "{srv.url}{CKPT_PATH}"
{checks}
[models.tiny.config]
url = "{srv.url}{CFG_PATH}"
"""
        )
        monkeypatch.setenv("AVSYNC_REGISTRY", str(tmp_path / "team.toml"))

    register(f'sha256 = "{sha256(fx / "tiny_sparsesync.pt")}"')
    yield srv, register
    srv.close()


def _no_pickle(*args, **kwargs):
    raise AssertionError("the checkpoint was unpickled")


def test_first_use_downloads_then_later_loads_read_safetensors(served, monkeypatch):
    srv, _ = served
    calls = []
    first = load_model(
        "tiny", device="cpu", progress=lambda name, done, total: calls.append((name, done, total))
    )
    assert calls and calls[-1][1] == calls[-1][2]  # progress reached the total
    folder = model_cache_dir(get_entry("tiny"))
    assert (folder / WEIGHTS_FILE).exists()
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["config"]["model"]["params"]["transformer"]["params"]["n_layer"] == 2

    srv.close()  # no network from now on
    monkeypatch.setattr(checkpoint_mod, "load_checkpoint", _no_pickle)
    second = load_model("tiny", device="cpu")
    assert second.setup.name == "tiny" and second.grid == first.grid
    for (k, a), (_, b) in zip(first.net.state_dict().items(), second.net.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("pinned", [True, False])
def test_a_cache_for_other_weights_is_rebuilt_not_trusted(served, monkeypatch, shared_dir, pinned):
    if not pinned:  # only an md5 published: the first verified download's sha256 is the pin
        md5 = hashlib.md5((shared_dir / "fixtures/sparsesync/tiny_sparsesync.pt").read_bytes()).hexdigest()
        served[1](f'md5 = "{md5}"')
    load_model("tiny", device="cpu")
    folder = model_cache_dir(get_entry("tiny"))
    meta = json.loads((folder / META_FILE).read_text())
    meta["source_sha256"] = "0" * 64  # as if made from another file
    (folder / META_FILE).write_text(json.dumps(meta))
    loads = []
    real = checkpoint_mod.load_checkpoint
    monkeypatch.setattr(checkpoint_mod, "load_checkpoint", lambda *a, **k: loads.append(a) or real(*a, **k))
    load_model("tiny", device="cpu")
    assert len(loads) == 1  # read from the verified checkpoint again
    assert json.loads((folder / META_FILE).read_text())["source_sha256"] == sha256(
        shared_dir / "fixtures/sparsesync/tiny_sparsesync.pt"
    )


def test_download_then_models_shows_it_cached_and_offline_works(cli, served, monkeypatch):
    res = cli("download", "tiny")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(cli("models", "--json").stdout)}
    assert rows["tiny"]["cached"] and not rows["sparsesync-audioset"]["cached"]
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    served[0].close()
    assert load_model("tiny", device="cpu").setup.family == "sparsesync"


@pytest.fixture
def tiny_hub(shared_dir, tmp_path, monkeypatch):
    """Registry entry `tiny-sf`: the tiny Synchformer state dict in huggingface_hub's cache, offline."""
    src = shared_dir / "fixtures/synchformer/tiny_synchformer_state_dict.pt"
    digest, rev, repo_id = sha256(src), "a" * 40, "org/sync"
    make_hub_cache(tmp_path / "hf", src, repo_id, "ext/sf.pth", rev, digest)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "hub.toml").write_text(
        f"""schema = 1
[models.tiny-sf]
id = "tiny-sf"
family = "synchformer"
classes = 21
max_offset_sec = 2.0
checkpoint_format = "state_dict"
[models.tiny-sf.checkpoint]
hf_repo = "{repo_id}"
hf_filename = "ext/sf.pth"
hf_revision = "{rev}"
sha256 = "{digest}"
"""
    )
    monkeypatch.setenv("AVSYNC_REGISTRY", str(tmp_path / "hub.toml"))


def test_a_hub_state_dict_loads_offline_through_the_hf_cache(tiny_hub, monkeypatch):
    model = load_model("tiny-sf", device="cpu")
    assert model.setup.family == "synchformer" and model.geometry.used_frames == (2, 122)
    monkeypatch.setattr(checkpoint_mod, "load_checkpoint", _no_pickle)
    assert load_model("tiny-sf", device="cpu").setup.family == "synchformer"  # from safetensors now


def test_predict_batch_and_fix_with_a_synchformer_registry_model(cli, tiny_hub, tmp_path):
    """--model NAME for the other family: a bare Hub state dict, through predict (a batch) and fix."""
    folder = tmp_path / "videos"
    folder.mkdir()
    make_clip(Clip(duration=5.0), folder / "clip.mp4")
    (folder / "broken.mp4").write_bytes(b"\x00" * 1000)
    res = cli("predict", str(folder), "--model", "tiny-sf", "--jsonl", str(tmp_path / "r.jsonl"))
    assert res.exit_code == 1, res.output  # the broken file fails, the batch goes on
    records = {json.loads(x)["path"].rsplit("/", 1)[-1]: json.loads(x) for x in (tmp_path / "r.jsonl").open()}
    good = records["clip.mp4"]
    assert good["ok"] and good["model"] == {
        "name": "tiny-sf",
        "family": "synchformer",
        "checkpoint": good["model"]["checkpoint"],
    }
    # one window: the 4.8 s Synchformer uses start at the file's start (its 5 s read starts at -0.08 s)
    assert len(good["windows"]) == 1 and good["windows"][0]["start_sec"] == 0.0
    assert not records["broken.mp4"]["ok"]
    out = tmp_path / "f.mp4"
    args = ["--model", "tiny-sf", "--dry-run", "--min-confidence", "0", "--json"]
    res = cli("fix", str(folder / "clip.mp4"), "-o", str(out), *args)
    assert res.exit_code in (0, 3), res.output
    d = json.loads(res.stdout.splitlines()[-1])
    assert d["measured"]["model"]["family"] == "synchformer" and not out.exists()
