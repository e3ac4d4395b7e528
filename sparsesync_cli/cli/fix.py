"""``avsync fix``: write a copy whose audio is moved into sync, measuring the offset if needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..clock import SIGN
from ..errors import AvsyncError, UnexpectedError, UsageError
from .common import (
    STATE,
    AudioStreamOpt,
    CalibrationOpt,
    CheckpointOpt,
    ConfigOpt,
    DeviceOpt,
    MaxWindowsOpt,
    MinWindowsOpt,
    ModelOpt,
    PrecisionOpt,
    SampleOpt,
    ThreadsOpt,
    calibrate,
    check_outputs,
    err_console,
    load_model,
    model_spec,
    one_line_errors,
    out_console,
    sampling,
    shown,
)
from .output import summary_line

if TYPE_CHECKING:
    from rich.console import Console

    from ..analysis.fix_decision import FixDecision
    from ..analysis.results import SyncResult
    from ..analysis.sampling import SamplingOptions
    from ..media.remux import FixResult
    from ..sync_model import SyncModel

FIX_SKIPPED_EXIT = 3  # `fix` measured the offset but was not sure enough to apply it


def fix(
    src: Annotated[
        Path, typer.Argument(help="The video to correct (never modified).", show_default=False, metavar="SRC")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the corrected copy.")],
    offset: Annotated[
        float | None,
        typer.Option(
            "--offset",
            help="The offset to correct, in seconds: > 0 means the audio is EARLY and gets delayed by "
            "that much; < 0 means it is late and gets advanced. Without it, avsync measures the offset.",
        ),
    ] = None,
    min_confidence: Annotated[
        float,
        typer.Option(
            "--min-confidence", min=0.0, max=1.0, help="When measuring: apply the fix only this sure."
        ),
    ] = 0.8,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; write nothing.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
    audio_stream: AudioStreamOpt = None,
    sample: SampleOpt = "all",
    min_windows: MinWindowsOpt = 6,
    max_windows: MaxWindowsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as one JSON object.")] = False,
    model: ModelOpt = None,
    checkpoint: CheckpointOpt = None,
    config: ConfigOpt = None,
    calibration: CalibrationOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """Write a copy of SRC whose audio is moved into sync (stream copy: no re-encode).

    An offset > 0 (audio EARLY) delays the audio by that much; < 0 advances it (audio before
    the start is trimmed). Without --offset the offset is measured first, and the fix is
    skipped (exit code 3) when the measurement is not sure enough: confidence below
    --min-confidence, drift along the file, windows that disagree, or an offset at the edge
    of the model's range. Times are file times (presentation timestamps).
    """
    from ..analysis.fix_decision import decide_fix, plan_fix
    from ..checkpoints.registry import get_entry

    out = out_console()
    with one_line_errors(value_errors=True):
        measured = None
        if not src.exists():
            raise UsageError("no such file", src)
        if model is not None and checkpoint is None:
            get_entry(model)
        if not dry_run:
            check_outputs((output, "the corrected copy"))
        if offset is None:
            fix_sampling = sampling(sample, min_windows, max_windows, min_confidence)
            sync_model = load_model(model_spec(model, checkpoint, config, device, precision, threads))
            calibrate(sync_model, calibration)
            measured = _measure_one(src, sync_model, audio_stream, fix_sampling)
            decision = decide_fix(measured, min_confidence=min_confidence)
        else:
            decision = plan_fix(offset)
        if not decision.apply:
            _report_fix(out, as_json, src, output, decision, measured, None, dry_run)
            raise typer.Exit(FIX_SKIPPED_EXIT)
        done = None
        if not dry_run:
            from ..media.remux import fix_offset

            done = fix_offset(src, output, decision.offset_sec, audio_stream=audio_stream, force=force)
        _report_fix(out, as_json, src, output, decision, measured, done, dry_run)


def _measure_one(
    src: Path, sync_model: SyncModel, audio_stream: int | None, fix_sampling: SamplingOptions
) -> SyncResult:
    from ..analysis.predict import PredictOptions, predict_file

    err = err_console()
    err.print(f"avsync: measuring the offset of {shown(str(src))} ...", markup=False)
    try:
        return predict_file(src, sync_model, PredictOptions(audio_stream=audio_stream, sampling=fix_sampling))
    except Exception as e:  # the measure step's boundary: one line, the traceback with --debug
        if STATE["debug"] or isinstance(e, AvsyncError):
            raise
        raise UnexpectedError(e, src) from e


def _report_fix(
    out: Console,
    as_json: bool,
    src: Path,
    output: Path,
    decision: FixDecision,
    measured: SyncResult | None,
    done: FixResult | None,
    dry_run: bool,
) -> None:
    if as_json:
        d = {
            "input": str(src),
            "output": None if (dry_run or done is None) else str(output),
            "applied": done is not None,
            "dry_run": dry_run,
            "offset_sec": decision.offset_sec,
            "reason": decision.reason,
            "measured": measured.to_dict() if measured is not None else None,
            "trimmed_audio_sec": done.audio_trimmed_sec if done else None,
            "sign": SIGN,
        }
        out.out(json.dumps(d), highlight=False)
        return
    if measured is not None:
        out.print(summary_line(measured), markup=False, soft_wrap=True)
    if not decision.apply:
        out.print(f"not fixed: {decision.reason}", markup=False, soft_wrap=True)
    elif dry_run:
        out.print(f"dry run: would write {output} with {decision.action}", markup=False, soft_wrap=True)
    else:
        trimmed = (
            f" ({done.audio_trimmed_sec:.2f} s of audio before the start trimmed)"
            if done.audio_trimmed_sec
            else ""
        )
        out.print(f"wrote {output}: {decision.action}{trimmed}", markup=False, soft_wrap=True)
