"""Safe checkpoint loading: official layout, bare state dicts, fp16/fp32, and malicious pickles."""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsesync_cli.checkpoints.config import load_config
from sparsesync_cli.checkpoints.loading import Checkpoint, _SafeUnpickler, load_checkpoint
from sparsesync_cli.errors import CheckpointError

TINY = "fixtures/sparsesync/tiny_sparsesync.pt"
TINY_CFG = "fixtures/sparsesync/cfg-tiny_sparsesync.yaml"


@pytest.fixture(scope="module")
def tiny(shared_dir: Path) -> Checkpoint:
    return load_checkpoint(shared_dir / TINY)


def _write_zip(path: Path, pkl: bytes, blobs: dict[str, bytes] | None = None) -> Path:
    """A zip in torch's layout (``<name>/data.pkl``, ``<name>/data/<key>``) with a hand-made pickle."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for key, blob in (blobs or {}).items():
            z.writestr(f"archive/data/{key}", blob)
    return path


def test_official_checkpoint_loads_with_config_from_args(tiny: Checkpoint, shared_dir: Path) -> None:
    assert tiny.path.endswith("tiny_sparsesync.pt")
    assert len(tiny.state_dict) == 742
    w = tiny.state_dict["transformer.off_head.weight"]
    assert w.shape == (21, 512) and w.dtype == torch.float16
    assert tiny.state_dict["afeat_extractor.bn1.num_batches_tracked"].dtype == torch.int64
    # the pickled OmegaConf tree, rebuilt into plain data with ${...} resolved, equals the yaml
    assert tiny.config == load_config(shared_dir / TINY_CFG)
    params = tiny.config["model"]["params"]["transformer"]["params"]
    assert params["n_layer"] == 2
    assert params["a_selector_cfg"]["params"]["n_layer"] == 2  # was "${...n_layer}"
    assert params["vis_pos_emb_module"]["params"]["block_shape"] == [16, 7, 7]


def test_config_path_overrides_args(shared_dir: Path, tmp_path: Path) -> None:
    cfg = (shared_dir / TINY_CFG).read_text().replace("max_off_sec: 2", "max_off_sec: 1")
    (tmp_path / "cfg.yaml").write_text(cfg)
    ckpt = load_checkpoint(shared_dir / TINY, config_path=tmp_path / "cfg.yaml")
    assert ckpt.config["data"]["max_off_sec"] == 1


def test_fp32_resave_loads_and_equals_fp16(tiny: Checkpoint, shared_dir: Path, tmp_path: Path) -> None:
    # The official files are fp32: rewrite the fixture's zip with float32 storages (same pickle,
    # storage type renamed), which is byte for byte what torch.save of fp32 tensors writes.
    src = zipfile.ZipFile(shared_dir / TINY)
    out = tmp_path / "fp32.pt"
    with src, zipfile.ZipFile(out, "w") as dst:
        pkl_name = next(n for n in src.namelist() if n.endswith("/data.pkl"))
        pkl = src.read(pkl_name)
        half_keys: set[str] = set()

        def record(key: str, dtype_name: str, numel: int) -> torch.Tensor:
            if dtype_name == "float16":
                half_keys.add(key)
            return torch.zeros(numel, dtype=getattr(torch, dtype_name))

        _SafeUnpickler(io.BytesIO(pkl), record).load()
        assert half_keys
        dst.writestr(pkl_name, pkl.replace(b"ctorch\nHalfStorage\n", b"ctorch\nFloatStorage\n"))
        prefix = pkl_name[: -len("data.pkl")]
        for name in src.namelist():
            if name == pkl_name:
                continue
            blob = src.read(name)
            key = name[len(prefix) + len("data/") :] if name.startswith(prefix + "data/") else None
            if key in half_keys:
                blob = np.frombuffer(blob, dtype=np.float16).astype(np.float32).tobytes()
            dst.writestr(name, blob)
    ckpt = load_checkpoint(out)
    assert ckpt.config == tiny.config
    assert ckpt.state_dict.keys() == tiny.state_dict.keys()
    for k, v in ckpt.state_dict.items():
        ref = tiny.state_dict[k]
        assert v.dtype == (torch.float32 if ref.dtype == torch.float16 else ref.dtype)
        assert torch.equal(v, ref.to(v.dtype)), k


def test_bare_state_dict_loads_without_config(shared_dir: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(shared_dir / "fixtures/synchformer/tiny_synchformer_state_dict.pt")
    assert ckpt.config is None and len(ckpt.state_dict) > 50
    assert all(isinstance(v, torch.Tensor) for v in ckpt.state_dict.values())
    # views of one storage (as torch.save writes shared tensors) stay correct
    base = torch.arange(12, dtype=torch.float32)
    torch.save({"a": base, "b": base[4:8], "c": base.view(3, 4).t()}, tmp_path / "views.pt")
    sd = load_checkpoint(tmp_path / "views.pt").state_dict
    assert torch.equal(sd["a"], base) and torch.equal(sd["b"], base[4:8])
    assert torch.equal(sd["c"], base.view(3, 4).t())


def test_plain_dict_args_are_a_config(tmp_path: Path) -> None:
    cfg = {"a": {"n": 3}, "b": "${a.n}"}
    torch.save({"model": {"w": torch.ones(2)}, "args": cfg, "epoch": 3}, tmp_path / "p.pt")
    assert load_checkpoint(tmp_path / "p.pt").config == {"a": {"n": 3}, "b": 3}


def test_numpy_metrics_and_optimizer_state_load_inert(tmp_path: Path) -> None:
    # Official files carry numpy scalars in 'metrics' and tensors in the optimizer state.
    w = torch.randn(4, 3)
    ckpt = {
        "model": {"w": w},
        "metrics": {"accuracy_1": np.float64(0.75), "per_class": np.arange(3), "dt": np.dtype("f4")},
        "optimizer": {
            "state": {0: {"step": 10, "exp_avg": torch.zeros(4, 3)}},
            "param_groups": [{"lr": 1e-5}],
        },
        "epoch": 7,
    }
    torch.save(ckpt, tmp_path / "np.pt")
    loaded = load_checkpoint(tmp_path / "np.pt")
    assert torch.equal(loaded.state_dict["w"], w) and loaded.config is None


def test_unresolvable_bookkeeping_in_args_does_not_block_the_model(tmp_path: Path) -> None:
    args = {
        "model": {"n": 3, "m": "${model.n}"},
        "data": {"x": "${model.m}"},
        "logging": {"logdir": "./logs/${now:%Y}", "other": "${start_time}"},
    }
    torch.save({"model": {"w": torch.ones(1)}, "args": args}, tmp_path / "a.pt")
    assert load_checkpoint(tmp_path / "a.pt").config == {"model": {"n": 3, "m": 3}, "data": {"x": 3}}
    args["model"]["m"] = "${model.missing}"
    torch.save({"model": {"w": torch.ones(1)}, "args": args}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"b\.pt: its config in 'args' is invalid .*model\.missing"):
        load_checkpoint(tmp_path / "b.pt")


class _RunsCommand:
    def __init__(self, func: object, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple:
        return (self.func, (self.arg,))


@pytest.mark.parametrize(
    ("func", "make_arg", "forbidden"),
    [
        (os.system, lambda m: f"touch {m}", f"{os.system.__module__}.system"),
        (eval, lambda m: f"open({str(m)!r}, 'w').close()", "builtins.eval"),
        (exec, lambda m: f"open({str(m)!r}, 'w').close()", "builtins.exec"),
    ],
)
def test_code_in_the_pickle_is_refused_and_never_runs(
    tmp_path: Path, func: object, make_arg: object, forbidden: str
) -> None:
    proof, marker = tmp_path / "unsafe_ran", tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    # The payload hides in 'metrics' behind genuine weights, as a tampered official file would.
    ckpt = {"model": {"w": torch.ones(3)}, "metrics": _RunsCommand(func, make_arg(marker))}
    torch.save(ckpt, path)
    # The payload is real: an unsafe torch.load runs it.
    torch.save({"metrics": _RunsCommand(func, make_arg(proof))}, tmp_path / "proof.pt")
    torch.load(tmp_path / "proof.pt", weights_only=False)
    assert proof.exists()

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: refused") and forbidden in msg and "\n" not in msg
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_line",
    [b"csubprocess\ncheck_call\n", b"cposix\nsystem\n", b"cbuiltins\ngetattr\n", b"ctorch.hub\nload\n"],
)
def test_forbidden_globals_in_hand_made_pickles(tmp_path: Path, global_line: bytes) -> None:
    module = global_line[1:].split(b"\n")[0].decode()
    pkl = b"\x80\x02" + global_line + b"X\x04\x00\x00\x00echo\x85R."
    with pytest.raises(CheckpointError, match=f"forbidden global {module}"):
        load_checkpoint(_write_zip(tmp_path / "x.pt", pkl))


def test_unknown_globals_become_inert_and_are_never_imported(tmp_path: Path) -> None:
    # A checkpoint whose 'metrics' is nonexistent_pkg_avsync.Thing('x'): torch.save a
    # placeholder string, then swap it for the global and its call in the pickle.
    path = tmp_path / "unknown.pt"
    torch.save({"model": {"w": torch.full((2,), 7.0)}, "metrics": "PLACEHOLDER"}, path)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        blobs = {n: z.read(n) for n in names}
    pkl_name = next(n for n in names if n.endswith("data.pkl"))
    evil = b"cnonexistent_pkg_avsync\nThing\nX\x01\x00\x00\x00x\x85R"
    blobs[pkl_name] = blobs[pkl_name].replace(b"X\x0b\x00\x00\x00PLACEHOLDER", evil)
    assert evil in blobs[pkl_name]
    with zipfile.ZipFile(path, "w") as z:
        for n, b in blobs.items():
            z.writestr(n, b)
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt.state_dict["w"], torch.full((2,), 7.0))
    assert "nonexistent_pkg_avsync" not in sys.modules


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_bytes(b"hello, not a checkpoint"), p)[1], "not a torch checkpoint"),
        (lambda p: (p.write_bytes(b""), p)[1], "not a torch checkpoint"),
    ],
)
def test_unreadable_files_give_one_line_errors(tmp_path: Path, make: object, cause: str) -> None:
    path = make(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(str(path)) and cause in str(err.value)
    assert "\n" not in str(err.value)


def test_truncated_checkpoint_is_refused(shared_dir: Path, tmp_path: Path) -> None:
    data = (shared_dir / TINY).read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"not a torch checkpoint|corrupt") as err:
            load_checkpoint(path)
        assert "\n" not in str(err.value)


def test_truncated_storage_is_refused(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(100)}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as z:
        blobs = {n: z.read(n) for n in z.namelist()}
    key = next(n for n in blobs if "/data/" in n)
    blobs[key] = blobs[key][:40]
    with zipfile.ZipFile(tmp_path / "short.pt", "w") as z:
        for n, b in blobs.items():
            z.writestr(n, b)
    with pytest.raises(CheckpointError, match=r"corrupt checkpoint .*truncated"):
        load_checkpoint(tmp_path / "short.pt")


def test_a_pickle_without_weights_is_refused(tmp_path: Path) -> None:
    torch.save({"epoch": 3}, tmp_path / "noweights.pt")
    with pytest.raises(CheckpointError, match="holds no model weights"):
        load_checkpoint(tmp_path / "noweights.pt")
