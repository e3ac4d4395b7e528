"""What avsync reports per file: frozen dataclasses and their JSON form ``avsync.result/1.1``.

``SyncResult.to_dict()`` is the one JSON object per file that ``--json``/``--jsonl`` write and
the HTML report reads; ``from_dict`` reads it back. Keys and meanings (stable; a change of
meaning gets a new schema string):

- ``path``, ``ok``, ``error`` (the one-line cause when ``ok`` is false, else null);
- ``model``: ``name``, ``family`` ("sparsesync" or "synchformer"), ``checkpoint`` (file or null);
- ``offset_sec`` (> 0: audio early), ``offset_words``, ``offset_class`` (index into ``grid``),
  ``at_range_edge`` (the offset is the first or last class: read it as "at least");
- ``confidence`` (combined probability that the true offset is within 0.2 s of ``offset_sec``),
  ``agreement`` (share of windows that say so on their own), ``drift_sec_per_min`` (null unless
  drift was found);
- ``grid`` (class offsets, s), ``range_sec`` ([first, last] class), ``resolution_sec`` (class step);
  a failure recorded without the model's grid has ``[]``, null and null;
- ``posterior`` (1.1): the combined per-class posterior the offset and confidence come from
  (``[]`` for a failure), so views never recompute it;
- ``trend`` (1.1): the fitted trend of the per-window offsets against file time, null below 3
  windows or for a failure: ``kind`` ("constant", "drift" or "jump"), ``line`` (the robust line
  fit: ``slope_sec_per_min``, ``intercept_sec`` at file time 0, ``t_first_sec``/``t_last_sec``
  the window start times it spans, ``inliers``) and ``jump`` (null, or ``at_sec``,
  ``before_sec``, ``after_sec``, ``inliers``); times are where each window's used part starts;
- ``windows``: per window ``start_sec`` (file time where the part the model uses starts),
  ``shift_sec`` (audio read that much later, a simulated offset), ``logits``, ``probs``,
  ``offset_sec`` (its best class) and ``confidence`` (its mass within 0.2 s of that class);
- (1.1) ``sampling`` ("all": every window was read; "auto": the stopping rule of
  :mod:`sparsesync_cli.analysis.sampling`), ``windows_used`` (windows the verdict comes from),
  ``windows_total`` (windows a full read has), ``stopped`` (why reading stopped, in words),
  ``decided`` (false: ``--max-windows`` was reached first; the offset is then the best so far,
  not a verdict), ``partial`` (some windows could not be decoded), ``skipped`` (those windows:
  ``start_sec`` and ``error``). Absent in 1.0 objects: read as a full, complete read;
- ``duration_sec``, ``file_size`` (bytes), ``file_mtime`` (seconds since the epoch, exact:
  resuming compares it), ``elapsed_sec``; ``sign`` and ``clock``: the conventions, spelled out.

Readers accept ``avsync.result/1`` records too (no ``posterior`` and ``trend``; read as empty
and null). Numbers are rounded for reading, not for science: seconds and scores to 1e-6, probabilities to 6
significant digits, logits to 1e-6 (conformance checks need 1e-4). Non-finite numbers become null.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import clock
from ..errors import AvsyncError
from ..families import get_family
from .aggregate import Aggregate, describe, window_verdict
from .trend import Jump, Trend

if TYPE_CHECKING:
    from ..sync_model import ModelSetup

SCHEMA = "avsync.result/1.1"  # what this version writes
SCHEMA_MAJOR = "avsync.result/1"  # the family of records readers understand (named in errors)
READABLE_SCHEMAS = frozenset({SCHEMA_MAJOR, SCHEMA})


def _num(x: float | None, digits: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


def _sig(x: float) -> float | None:
    return float(f"{x:.6g}") if math.isfinite(x) else None


@dataclass(frozen=True)
class ModelRecord:
    """Which model produced a result: the ``model`` part of its record."""

    name: str
    family: str  # a name in sparsesync_cli.families
    checkpoint: str | None = None
    calibration: dict[str, Any] | None = None  # the temperature calibration applied, if any

    def __post_init__(self) -> None:
        get_family(self.family)  # ValueError naming the known families

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "family": self.family, "checkpoint": self.checkpoint}
        if self.calibration is not None:
            d["calibration"] = self.calibration
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelRecord:
        return cls(d["name"], d["family"], d.get("checkpoint"), d.get("calibration"))

    @classmethod
    def of(cls, setup: ModelSetup) -> ModelRecord:
        """The record of a loaded model (its :class:`~sparsesync_cli.sync_model.ModelSetup`)."""
        return cls(setup.name, setup.family, setup.checkpoint, setup.calibration)


ModelInfo = ModelRecord  # deprecated name (before 0.3): the result's model record is ModelRecord


@dataclass(frozen=True)
class WindowResult:
    """The model's answer for one window."""

    start_sec: float
    shift_sec: float
    logits: tuple[float, ...]
    probs: tuple[float, ...]
    offset_sec: float
    confidence: float

    @classmethod
    def from_logits(
        cls, start_sec: float, shift_sec: float, logits: Sequence[float], grid: Sequence[float]
    ) -> WindowResult:
        """Softmax (in float64), best class and its confidence from one window's logits."""
        z = np.asarray(logits, dtype=np.float64)
        if z.shape != (len(grid),) or not np.isfinite(z).all():
            raise ValueError(f"expected {len(grid)} finite logits, got {z.tolist()}")
        p = np.exp(z - z.max())
        p /= p.sum()
        k, conf = window_verdict(p, grid)
        return cls(
            float(start_sec), float(shift_sec), tuple(z.tolist()), tuple(p.tolist()), float(grid[k]), conf
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_sec": _num(self.start_sec),
            "shift_sec": _num(self.shift_sec),
            "logits": [_num(x) for x in self.logits],
            "probs": [_sig(x) for x in self.probs],
            "offset_sec": _num(self.offset_sec),
            "confidence": _num(self.confidence),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowResult:
        return cls(
            d["start_sec"],
            d["shift_sec"],
            tuple(d["logits"]),
            tuple(d["probs"]),
            d["offset_sec"],
            d["confidence"],
        )


@dataclass(frozen=True)
class Sampling:
    """What was read of a file: how many windows, of how many, why it stopped, what was skipped."""

    sampling: str = "all"
    windows_used: int | None = None
    windows_total: int | None = None
    stopped: str | None = None
    decided: bool = True
    skipped: tuple[tuple[float, str], ...] = ()  # (start_sec, why it could not be decoded)

    @property
    def partial(self) -> bool:
        return bool(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampling": self.sampling,
            "windows_used": self.windows_used,
            "windows_total": self.windows_total,
            "stopped": self.stopped,
            "decided": self.decided,
            "partial": self.partial,
            "skipped": [{"start_sec": _num(t), "error": e} for t, e in self.skipped],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sampling:
        return cls(
            sampling=d.get("sampling") or "all",
            windows_used=d.get("windows_used"),
            windows_total=d.get("windows_total"),
            stopped=d.get("stopped"),
            decided=d.get("decided", True),
            skipped=tuple((s["start_sec"], s["error"]) for s in d.get("skipped") or ()),
        )


def file_stat(path: str | os.PathLike) -> tuple[int | None, float | None]:
    """(size in bytes, mtime) of ``path``, or (None, None) when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return st.st_size, st.st_mtime


@dataclass(frozen=True)
class SyncResult:
    """One file's result, success or failure. Build with :meth:`from_aggregate` / :meth:`failed`."""

    path: str
    ok: bool
    error: str | None
    model: ModelRecord
    offset_sec: float | None
    offset_words: str | None
    offset_class: int | None
    at_range_edge: bool
    confidence: float | None
    agreement: float | None
    drift_sec_per_min: float | None
    grid: tuple[float, ...]
    windows: tuple[WindowResult, ...] = ()
    duration_sec: float | None = None
    file_size: int | None = None
    file_mtime: float | None = None
    elapsed_sec: float | None = None
    posterior: tuple[float, ...] = ()  # the combined per-class posterior (empty for a failure)
    trend: Trend | None = None  # the line fit of the window offsets (from 3 windows on)
    jump: Jump | None = None  # a single change of offset, when one was found
    sampling: Sampling = Sampling()  # what was read (1.1): windows used of total, why it stopped

    @property
    def trend_kind(self) -> str | None:
        """``"drift"``, ``"jump"`` or ``"constant"``; None when no trend was fitted."""
        if self.trend is None:
            return None
        return "jump" if self.jump is not None else "drift" if self.trend.significant else "constant"

    @property
    def partial(self) -> bool:
        """True when some windows could not be decoded: the verdict comes from the others."""
        return self.sampling.partial

    @property
    def range_sec(self) -> tuple[float, float] | None:
        return (self.grid[0], self.grid[-1]) if self.grid else None

    @property
    def resolution_sec(self) -> float | None:
        return self.grid[1] - self.grid[0] if len(self.grid) > 1 else None

    @property
    def n_windows(self) -> int:
        return len(self.windows)

    @classmethod
    def from_aggregate(
        cls,
        path: str | os.PathLike,
        *,
        model: ModelRecord,
        grid: Sequence[float],
        windows: Sequence[WindowResult],
        aggregate: Aggregate,
        duration_sec: float | None = None,
        elapsed_sec: float | None = None,
        sampling: Sampling | None = None,
    ) -> SyncResult:
        """A successful result; size and mtime are read from ``path`` now."""
        sampling = sampling or Sampling(windows_used=len(windows), windows_total=len(windows))
        words = describe(aggregate)
        if not sampling.decided:
            words = f"undecided ({sampling.stopped}); best so far: {words}"
        elif sampling.partial:
            words += f" (partial: {len(sampling.skipped)} window(s) could not be decoded)"
        size, mtime = file_stat(path)
        return cls(
            path=os.fspath(path),
            ok=True,
            error=None,
            model=model,
            offset_sec=aggregate.offset_sec,
            offset_words=words,
            offset_class=aggregate.offset_class,
            at_range_edge=aggregate.at_range_edge,
            confidence=aggregate.confidence,
            agreement=aggregate.agreement,
            drift_sec_per_min=aggregate.drift_sec_per_min,
            grid=tuple(float(x) for x in grid),
            windows=tuple(windows),
            duration_sec=duration_sec,
            file_size=size,
            file_mtime=mtime,
            elapsed_sec=elapsed_sec,
            sampling=sampling,
            posterior=tuple(aggregate.posterior),
            trend=aggregate.trend,
            jump=aggregate.jump,
        )

    @classmethod
    def failed(
        cls,
        path: str | os.PathLike,
        error: str | BaseException,
        *,
        model: ModelRecord,
        grid: Sequence[float] = (),
        elapsed_sec: float | None = None,
    ) -> SyncResult:
        """A failure with its one-line cause; size and mtime recorded when the file exists.

        An :class:`AvsyncError` contributes its cause without the path (the result has the path).
        Pass the model's ``grid`` when it is known; without it ``range_sec`` and
        ``resolution_sec`` are null.
        """
        if isinstance(error, AvsyncError):
            cause = error.cause
        elif isinstance(error, BaseException):
            cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            cause = error
        size, mtime = file_stat(path)
        return cls(
            path=os.fspath(path),
            ok=False,
            error=" ".join(str(cause).split()) or "unknown error",
            model=model,
            offset_sec=None,
            offset_words=None,
            offset_class=None,
            at_range_edge=False,
            confidence=None,
            agreement=None,
            drift_sec_per_min=None,
            grid=tuple(float(x) for x in grid),
            file_size=size,
            file_mtime=mtime,
            elapsed_sec=elapsed_sec,
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``avsync.result/1.1`` object (key order as documented)."""
        rng = self.range_sec
        return {
            "schema": SCHEMA,
            "path": self.path,
            "ok": self.ok,
            "error": self.error,
            "model": self.model.to_dict(),
            "offset_sec": _num(self.offset_sec),
            "offset_words": self.offset_words,
            "offset_class": self.offset_class,
            "at_range_edge": self.at_range_edge,
            "confidence": _num(self.confidence),
            "agreement": _num(self.agreement),
            "drift_sec_per_min": _num(self.drift_sec_per_min),
            "grid": [_num(x) for x in self.grid],
            "range_sec": [_num(rng[0]), _num(rng[1])] if rng else None,
            "resolution_sec": _num(self.resolution_sec),
            "posterior": [_sig(x) for x in self.posterior],
            "trend": self._trend_dict(),
            "windows": [w.to_dict() for w in self.windows],
            **self.sampling.to_dict(),
            "duration_sec": _num(self.duration_sec),
            "file_size": self.file_size,
            "file_mtime": self.file_mtime,
            "elapsed_sec": _num(self.elapsed_sec, 3),
            "sign": clock.SIGN,
            "clock": clock.CLOCK,
        }

    def _trend_dict(self) -> dict[str, Any] | None:
        t, j = self.trend, self.jump
        if t is None:
            return None
        return {
            "kind": self.trend_kind,
            "line": {
                "slope_sec_per_min": _num(t.slope_sec_per_min),
                "intercept_sec": _num(t.intercept_sec),
                "t_first_sec": _num(t.t_first_sec),
                "t_last_sec": _num(t.t_last_sec),
                "inliers": _num(t.inliers),
            },
            "jump": None
            if j is None
            else {
                "at_sec": _num(j.at_sec),
                "before_sec": _num(j.before_sec),
                "after_sec": _num(j.after_sec),
                "inliers": _num(j.inliers),
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyncResult:
        """Read an ``avsync.result/1.1`` or ``/1`` object back (``ValueError`` for another schema)."""
        if d.get("schema") not in READABLE_SCHEMAS:
            raise ValueError(f"not an {SCHEMA_MAJOR} object (schema {d.get('schema')!r})")
        trend: dict[str, Any] | None = d.get("trend") or None
        line, jump = (trend["line"], trend["jump"]) if trend is not None else (None, None)
        drift = trend is not None and trend["kind"] == "drift"
        return cls(
            path=d["path"],
            ok=d["ok"],
            error=d["error"],
            model=ModelRecord.from_dict(d["model"]),
            offset_sec=d["offset_sec"],
            offset_words=d["offset_words"],
            offset_class=d["offset_class"],
            at_range_edge=d["at_range_edge"],
            confidence=d["confidence"],
            agreement=d["agreement"],
            drift_sec_per_min=d["drift_sec_per_min"],
            grid=tuple(d["grid"]),
            windows=tuple(WindowResult.from_dict(w) for w in d["windows"]),
            duration_sec=d["duration_sec"],
            file_size=d["file_size"],
            file_mtime=d["file_mtime"],
            elapsed_sec=d["elapsed_sec"],
            sampling=Sampling.from_dict(d),
            posterior=tuple(d.get("posterior") or ()),
            trend=None if line is None else Trend(significant=drift, **line),
            jump=None if jump is None else Jump(**jump),
        )
