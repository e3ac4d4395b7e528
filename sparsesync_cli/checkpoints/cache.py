"""Fast, pickle-free reloads of registry models: safetensors next to the downloaded checkpoint.

The first load of a registry model reads the verified official checkpoint with the safe
unpickler (:mod:`sparsesync_cli.checkpoints.loading`), then keeps its weights as ``model.safetensors``
and its config as ``model.json`` in the model's cache folder. Later loads read those two
files: no pickle at all, and no optimizer state to skip (official ``.pt`` files carry one).
The JSON records the sha256 of the checkpoint the weights came from; when the registry pins, or
the download's checksum record holds, another checksum, the safetensors copy is rebuilt rather
than trusted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_path, write_text
from ..errors import CheckpointError

if TYPE_CHECKING:
    from .loading import Checkpoint
    from .registry import ModelEntry

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
META_SCHEMA = "avsync.model-cache/1"


def _verified_sha256(entry: ModelEntry, folder: Path) -> str | None:
    """The checkpoint's sha256: pinned in the registry, else recorded by its first verified download."""
    from .checksum import read_record, record_path

    if entry.checkpoint.sha256:
        return entry.checkpoint.sha256
    record = read_record(record_path(folder, entry.checkpoint.filename))
    return record["sha256"] if record else None


def read_cached(entry: ModelEntry, folder: Path) -> Checkpoint | None:
    """The cached weights and config of ``entry``, or None when absent, stale or unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .loading import Checkpoint

    weights, meta_path = folder / WEIGHTS_FILE, folder / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("schema") != META_SCHEMA or meta.get("id") != entry.id:
        return None
    # Made from other weights than the ones now verified (re-downloaded, re-pinned): rebuild.
    expected = _verified_sha256(entry, folder)
    if expected and meta.get("source_sha256") != expected:
        return None
    try:
        state_dict = load_file(weights)
    except (OSError, SafetensorError):
        return None
    return Checkpoint(state_dict=state_dict, config=meta.get("config"), path=os.fspath(weights))


def write_cached(checkpoint: Checkpoint, entry: ModelEntry, folder: Path, source: Path) -> None:
    """Save weights and config for pickle-free reloads (atomically: temp files, then rename)."""
    from safetensors.torch import save_file

    meta: dict[str, Any] = {
        "schema": META_SCHEMA,
        "id": entry.id,
        "name": entry.name,
        "family": entry.family,
        "source": os.fspath(source),
        "source_sha256": _verified_sha256(entry, folder),
        "config": checkpoint.config,
    }
    folder.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share memory; official state dicts have none, but copy
    # to be safe (a one-off cost on the first load).
    tensors = {k: v.detach().contiguous().clone() for k, v in checkpoint.state_dict.items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, os.fspath(tmp))
    write_text(folder / META_FILE, json.dumps(meta, indent=1))


def load_registered_checkpoint(
    name: str | None,
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> tuple[Checkpoint, ModelEntry]:
    """The checkpoint of a registry model: from the safetensors cache, else downloaded/verified.

    ``name`` None means the registry's default model.
    """
    from .download import ensure_files, model_cache_dir
    from .loading import load_checkpoint
    from .registry import default_model_name, get_entry

    entry = get_entry(name or default_model_name())
    folder = model_cache_dir(entry)
    cached = read_cached(entry, folder)
    if cached is not None:
        return cached, entry
    files = ensure_files(entry, progress=progress)
    ckpt = load_checkpoint(files.checkpoint, files.config)
    try:
        write_cached(ckpt, entry, folder, Path(files.checkpoint))
    except OSError:
        pass  # a read-only cache still works, only without the fast path
    except ValueError as e:  # safetensors cannot hold something in the state dict
        raise CheckpointError(f"cannot cache the weights as safetensors ({e})", files.checkpoint) from None
    return ckpt, entry
