"""Temperature calibration of a model's window confidences, fitted on evaluated items.

A temperature ``T`` divides a window's logits before the softmax: ``T > 1`` softens an
over-confident model, and the arg-max (the offset) never changes. It is fitted by minimising the
negative log-likelihood of the items' true classes (Guo et al., 2017) on part of the items and
judged on the rest (held out): ECE, NLL and Brier before and after are stored with it, so a user
sees whether it helped. The held-out part is a share of the CLIPS (by ``path``), never of the
items: items of one clip (``make-protocol --per-clip``, or the passes of ``evaluate --passes``)
are alike, and one on each side would make the held-out gain look better than it is.

A calibration file names the model it was fitted for by the sha256 of its checkpoint's bytes
(plus family and class count): applying it to any other checkpoint, whatever the file is
called, is refused (:func:`check_model`). Files of schema ``avsync.calibration/1`` (avsync 0.2)
carry no sha256 and are refused with the advice to fit them again.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .metrics import brier_score, expected_calibration_error, nll, softmax

CALIBRATION_SCHEMA = "avsync.calibration/2"
OLD_SCHEMAS = ("avsync.calibration/1",)  # no checkpoint sha256: cannot be bound to the bytes
CALIBRATION_ENV = "AVSYNC_CALIBRATION"
HELDOUT_FRACTION = 0.3  # clips kept out of the fit to judge it
SPLIT_SEED = 0
T_RANGE = (0.02, 50.0)


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and the model it belongs to."""

    model_name: str
    model_family: str
    n_classes: int
    model_sha256: str | None  # of the checkpoint file's bytes (None: the model has no file to hash)
    temperature: float
    n_fit: int
    n_heldout: int
    heldout: dict[str, float | None]
    created: str = ""
    path: str | None = None  # where it was read from (not written)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        return {
            "schema": CALIBRATION_SCHEMA,
            "model": {
                "name": d.pop("model_name"),
                "family": d.pop("model_family"),
                "classes": d.pop("n_classes"),
                "sha256": d.pop("model_sha256"),
            },
            **d,
        }

    def summary(self) -> dict[str, Any]:
        """What a result records about the calibration it was made with."""
        return {"file": self.path, "temperature": self.temperature, "model": self.model_name}


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising the NLL of ``targets`` (golden-section search on log T)."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=int)

    def loss(log_t: float) -> float:
        return nll(softmax(logits, math.exp(log_t)), targets)

    a, b = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    inv_phi = (math.sqrt(5) - 1) / 2
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(80):  # the bracket shrinks by 0.618 each step: far below 1e-6 in log T
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = loss(d)
    return float(math.exp((a + b) / 2))


def split_heldout(
    paths: Sequence[str], fraction: float = HELDOUT_FRACTION, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Item indices ``(fit, heldout)``: the distinct clips (``paths``, one per item) in a seeded
    shuffle, ``fraction`` of them (at least one, and at least one left to fit on) held out with
    all their items. Needs items of two clips or more."""
    clips = sorted(set(paths))
    if len(clips) < 2:
        raise UsageError(
            f"a calibration needs items of 2 clips or more (one to fit on, one to judge it); got {len(clips)}"
        )
    order = np.random.default_rng(seed).permutation(len(clips))
    k = min(max(round(len(clips) * fraction), 1), len(clips) - 1)
    held = {clips[i] for i in order[:k]}
    is_held = np.array([p in held for p in paths], dtype=bool)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def _scores(logits: np.ndarray, targets: np.ndarray, t: float) -> dict[str, float]:
    p = softmax(logits, t)
    return {
        "ece": round(expected_calibration_error(p, targets), 6),
        "nll": round(nll(p, targets), 6),
        "brier": round(brier_score(p, targets), 6),
    }


def fit_calibration(records: Sequence[dict[str, Any]], model_info) -> Calibration:
    """Fit a temperature on the successful item records of one model; judge it on held-out items.

    ``model_info``: the model's :class:`~sparsesync_cli.sync_model.ModelSetup` (its name,
    family and class count go into the file, with the sha256 of its checkpoint file: see
    :func:`model_sha256`). Needs at least 10 items, of at least 2 clips; the held-out items are
    those of 30 % of the clips (:func:`split_heldout`).
    """
    ok = [r for r in records if r.get("ok")]
    if len(ok) < 10:
        raise UsageError(f"a calibration needs at least 10 evaluated items, got {len(ok)}")
    logits = np.array([r["logits"] for r in ok], dtype=np.float64)
    targets = np.array([r["target_class"] for r in ok], dtype=int)
    fit_idx, held_idx = split_heldout([r["path"] for r in ok])
    t = fit_temperature(logits[fit_idx], targets[fit_idx])
    before = _scores(logits[held_idx], targets[held_idx], 1.0)
    after = _scores(logits[held_idx], targets[held_idx], t)
    heldout: dict[str, float | None] = {f"{k}_before": v for k, v in before.items()}
    heldout |= {f"{k}_after": v for k, v in after.items()}
    return Calibration(
        model_name=model_info.name,
        model_family=model_info.family,
        n_classes=len(model_info.grid),
        model_sha256=model_sha256(model_info),
        temperature=round(t, 6),
        n_fit=len(fit_idx),
        n_heldout=len(held_idx),
        heldout=heldout,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def save_calibration(cal: Calibration, path: str | os.PathLike) -> None:
    """Write the calibration JSON atomically."""
    from .protocol import write_text_atomic

    write_text_atomic(Path(path), json.dumps(cal.to_dict(), indent=1) + "\n")


def load_calibration(path: str | os.PathLike) -> Calibration:
    """Read a calibration JSON; :class:`UsageError` (one line, naming the file) if it is not one."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read the calibration: {e.strerror or e}", path) from None
    except ValueError:
        raise UsageError("not a calibration file (not JSON)", path) from None
    if isinstance(d, dict) and d.get("schema") in OLD_SCHEMAS:
        raise UsageError(
            f"a calibration of an older avsync ({d['schema']}) that does not record its checkpoint's "
            "sha256; fit it again with `avsync evaluate --fit-calibration`",
            path,
        )
    if not isinstance(d, dict) or d.get("schema") != CALIBRATION_SCHEMA:
        raise UsageError(f"not a calibration file (schema is not {CALIBRATION_SCHEMA})", path)
    try:
        t = float(d["temperature"])
        if not (math.isfinite(t) and t > 0):
            raise ValueError
        return Calibration(
            model_name=str(d["model"]["name"]),
            model_family=str(d["model"]["family"]),
            n_classes=int(d["model"]["classes"]),
            model_sha256=_sha256_or_none(d["model"]["sha256"]),
            temperature=t,
            n_fit=int(d.get("n_fit", 0)),
            n_heldout=int(d.get("n_heldout", 0)),
            heldout=dict(d.get("heldout", {})),
            created=str(d.get("created", "")),
            path=os.fspath(path),
        )
    except (KeyError, TypeError, ValueError):
        raise UsageError(
            "not a valid calibration file (model or temperature missing or wrong)", path
        ) from None


def check_model(cal: Calibration, model_info) -> None:
    """Refuse (one line) a calibration fitted for another model than ``model_info``: another
    family or class count, or other checkpoint bytes (sha256), whatever the file is called."""
    if (cal.model_family, cal.n_classes) != (model_info.family, len(model_info.grid)):
        raise UsageError(
            f"this calibration is for model {cal.model_name} ({cal.model_family}, {cal.n_classes} classes), "
            f"not {model_info.name} ({model_info.family}, {len(model_info.grid)} classes)",
            cal.path,
        )
    sha = model_sha256(model_info)
    if sha != cal.model_sha256 or (sha is None and cal.model_name != model_info.name):
        raise UsageError(
            f"this calibration is for model {cal.model_name} (checkpoint sha256 {_short(cal.model_sha256)}), "
            f"not {model_info.checkpoint or model_info.name} (sha256 {_short(sha)}); fit one for this "
            "checkpoint with `avsync evaluate --fit-calibration`",
            cal.path,
        )


def model_sha256(model_info) -> str | None:
    """The sha256 of a loaded model's checkpoint bytes: the file it was loaded from, or for a
    registry model the sha256 its download was verified against. None when there is no file
    (a model made in memory)."""
    source = model_info.checkpoint
    if source and os.path.isfile(source):
        return _file_sha256(os.path.realpath(source))
    from ..checkpoints.registry import load_registry

    entry = load_registry().get(model_info.name)
    if entry is None or entry.checkpoint.location != source:
        return None
    from ..checkpoints.cache import _verified_sha256
    from ..checkpoints.download import model_cache_dir

    return _verified_sha256(entry, model_cache_dir(entry))


def _file_sha256(path: str) -> str:
    """Hashed at every check, never cached: a file rewritten in place holds other bytes."""
    import hashlib

    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
    except OSError as e:
        raise UsageError(
            f"cannot read the checkpoint to check the calibration: {e.strerror or e}", path
        ) from None
    return sha.hexdigest()


def _sha256_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("not a sha256")
    return text


def _short(sha: str | None) -> str:
    return "unknown" if sha is None else sha[:12]


def calibration_path(explicit: str | os.PathLike | None) -> str | None:
    """``--calibration`` if given, else ``AVSYNC_CALIBRATION`` if set, else None."""
    if explicit is not None:
        return os.fspath(explicit)
    return os.environ.get(CALIBRATION_ENV, "").strip() or None


def apply_calibration(model, cal: Calibration) -> None:
    """Make ``model`` divide its window logits by the temperature and record it in results.

    Checked first: a calibration of another model raises :class:`UsageError`.
    """
    check_model(cal, model.info)
    model.info = replace(model.info, calibration=cal.summary())
