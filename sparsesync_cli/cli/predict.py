"""``avsync predict``: measure the offset of files, folders and URIs, with resumable reports."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UsageError
from .common import (
    ActorsOpt,
    AudioStreamOpt,
    CalibrationOpt,
    CheckpointOpt,
    ConfigOpt,
    DecoderOpt,
    DecodeWorkersOpt,
    DeviceOpt,
    FilesFromOpt,
    GpusPerActorOpt,
    MaxWindowsOpt,
    MinWindowsOpt,
    ModelOpt,
    ParquetOpt,
    PrecisionOpt,
    QuietOpt,
    RayOpt,
    RecursiveOpt,
    SampleOpt,
    ThreadsOpt,
    calibrate,
    check_outputs,
    collect_inputs,
    decoding,
    default_batch,
    err_console,
    load_model,
    model_spec,
    no_auto_sample_on_ray,
    on_error,
    one_line_errors,
    out_console,
    sampling,
)
from .output import batch_table, detail, summary_line, windows_table

if TYPE_CHECKING:
    from ..analysis.predict import PredictOptions
    from ..distributed.runner import RayRunner
    from ..sync_model import SyncModel


def predict(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Video files, folders and/or URIs (s3://bucket/key or prefix/) to check.",
            show_default=False,
            metavar="PATHS...",
        ),
    ] = None,
    model: ModelOpt = None,
    checkpoint: CheckpointOpt = None,
    config: ConfigOpt = None,
    start: Annotated[
        float | None,
        typer.Option("--start", help="Look from this file time on (seconds; default: the start)."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Look at this many seconds (default: to the end).")
    ] = None,
    shift: Annotated[
        float,
        typer.Option(
            "--shift",
            help="Simulate an offset: read the audio X s later (X > 0 makes it X s EARLY), like the "
            "paper's --offset_sec. Use it to check a model on a clip you know is in sync.",
        ),
    ] = 0.0,
    stride: Annotated[
        float | None, typer.Option("--stride", help="Seconds between window starts (default: 5, one window).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Windows per model call (default: 1 on CPU, 8 on CUDA)."),
    ] = None,
    audio_stream: AudioStreamOpt = None,
    sample: SampleOpt = "all",
    min_windows: MinWindowsOpt = 6,
    max_windows: MaxWindowsOpt = None,
    min_confidence: Annotated[
        float,
        typer.Option("--min-confidence", min=0.0, max=1.0, help="--sample auto: stop only when this sure."),
    ] = 0.8,
    recursive: RecursiveOpt = False,
    ext: Annotated[
        str | None,
        typer.Option(
            "--ext", help="Comma-separated extensions to pick from folders (default: common video)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per file on stdout (JSON Lines).")
    ] = False,
    jsonl: Annotated[
        Path | None,
        typer.Option(
            "--jsonl", help="Append results to this JSON Lines report; files already in it are skipped."
        ),
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write a CSV report (one row per file).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
    show_windows: Annotated[bool, typer.Option("--windows", help="Show every window's verdict.")] = False,
    quiet: QuietOpt = False,
    no_optimize: Annotated[
        bool, typer.Option("--no-optimize", help="Run the plain modules (slower; for comparisons).")
    ] = False,
    calibration: CalibrationOpt = None,
    files_from: FilesFromOpt = None,
    parquet: ParquetOpt = None,
    ray: RayOpt = None,
    actors: ActorsOpt = "auto",
    num_gpus_per_actor: GpusPerActorOpt = None,
    decode_workers: DecodeWorkersOpt = None,
    decoder: DecoderOpt = "auto",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """Measure the audio-visual offset of video files.

    Each file is read in 5 s windows from start to end; the windows' verdicts are combined
    into one offset with a confidence. Positive offset: the audio is EARLY; negative: late.
    Times are file times (presentation timestamps). Exit code 0 when every file was checked,
    1 when any failed, 2 for bad usage.
    """
    from ..analysis.predict import VIDEO_EXTENSIONS
    from ..distributed.runner import RayRunner

    runner = None
    with one_line_errors(value_errors=True):
        workers = decoding(decode_workers, decoder, device, ray, sample)  # before the inputs: at once
        exts = [e.strip() for e in ext.split(",") if e.strip()] if ext else VIDEO_EXTENSIONS
        files = collect_inputs(paths, recursive, exts, model, checkpoint, files_from, ray)
        check_outputs((jsonl, "the JSONL report"), (csv_path, "the CSV report"), (report, "the HTML report"))
        # validated before the (slow) model load; the batch size depends on the model's device
        options = _options(start, duration, shift, stride, batch_size or 1, audio_stream)
        options = replace(options, sampling=sampling(sample, min_windows, max_windows, min_confidence))
        no_auto_sample_on_ray(ray, sample)
        if start is not None:
            _check_start(files, start)
        spec = model_spec(model, checkpoint, config, device, precision, threads, not no_optimize)
        if ray is not None:
            runner = RayRunner(
                ray, spec, actors=actors, num_gpus_per_actor=num_gpus_per_actor, batch_size=batch_size
            )
        sync_model = load_model(replace(spec, device="cpu") if ray else spec)
        calibrate(sync_model, calibration)
        options = replace(options, batch_size=batch_size or default_batch(sync_model))
    results = run_batch(
        files,
        sync_model,
        options,
        as_json,
        jsonl,
        csv_path,
        show_windows,
        quiet,
        runner=runner,
        parquet=parquet,
        decode_workers=workers,
    )
    if report is not None:
        with one_line_errors():
            _write_html(results, report, sync_model, options)
    if any(not r.get("ok") for r in results):
        raise typer.Exit(1)


def _check_start(files: list[str], start: float) -> None:
    """--start beyond the end of every input (by the headers) is a usage error, found at once."""
    from ..media.probe import header_duration_sec

    ends = []
    for f in files:
        end = header_duration_sec(f)
        if end is None or start < end:
            return  # a file --start fits (or one only the real probe can judge)
        ends.append(end)
    if len(files) == 1:
        raise UsageError(f"--start {start:g} s is beyond the end of the file ({ends[0]:.2f} s)", files[0])
    raise UsageError(f"--start {start:g} s is beyond the end of every file (the longest: {max(ends):.2f} s)")


def _options(
    start: float | None,
    duration: float | None,
    shift: float,
    stride: float | None,
    batch_size: int,
    audio_stream: int | None,
) -> PredictOptions:
    from ..analysis.predict import PredictOptions

    return PredictOptions(
        start_sec=start,
        duration_sec=duration,
        shift_sec=shift,
        stride_sec=stride,
        batch_size=batch_size,
        audio_stream=audio_stream,
    )


def run_batch(
    files: list[str],
    sync_model: SyncModel,
    options: PredictOptions,
    as_json: bool,
    jsonl: Path | None,
    csv_path: Path | None,
    show_windows: bool,
    quiet: bool,
    runner: RayRunner | None = None,
    parquet: Path | None = None,
    decode_workers: int | str | None = None,
) -> list[dict[str, Any]]:
    """Check every file, writing reports as results arrive; returns every result as a dict.

    The files run one after another here (decoded in ``decode_workers`` processes when given),
    or on a cluster with a ``runner`` (``--ray``).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..analysis.predict import iter_predictions
    from ..analysis.results import SyncResult
    from ..distributed.parquet import ParquetResults, read_parquet_results
    from ..distributed.sources import split_done
    from ..output.records import CsvWriter, JsonlWriter, read_jsonl

    out, err = out_console(), err_console()
    with one_line_errors():
        previous = read_jsonl(jsonl) if jsonl is not None and jsonl.exists() else []
        previous += read_parquet_results(parquet) if parquet is not None else []
        todo, skipped = split_done([str(f) for f in files], previous, model=sync_model.setup.name)
        if skipped:
            err.print(f"avsync: {len(skipped)} file(s) already in the report, skipping them", markup=False)
        jsonl_writer = JsonlWriter(jsonl) if jsonl is not None else None
        parquet_report = ParquetResults(parquet) if parquet is not None else None
    csv_writer = CsvWriter(csv_path) if csv_path is not None else None
    for r in skipped:
        if csv_writer:
            csv_writer.add(r)
        if as_json:
            out.out(json.dumps(r), highlight=False)
        else:
            out.print(
                summary_line(SyncResult.from_dict(r)) + " (from the report)", markup=False, soft_wrap=True
            )

    results: list[dict] = list(skipped)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )
    files_task = progress.add_task("files", total=len(todo))
    win_task = progress.add_task("windows", total=None)

    def on_window(path: str, done: int, total: int) -> None:
        progress.update(win_task, description=f"  {Path(path).name}", completed=done, total=total)

    try:
        with progress:
            if runner:
                batch = runner.predict(todo, sync_model, options, on_window=on_window, on_error=on_error)
            else:
                batch = iter_predictions(
                    todo, sync_model, options, on_window=on_window, on_error=on_error,
                    decode_workers=decode_workers,
                )  # fmt: skip
            for result in batch:
                d = result.to_dict()
                results.append(d)
                if jsonl_writer:
                    jsonl_writer.append(d)
                if parquet_report:
                    parquet_report.add(d)
                if csv_writer:
                    csv_writer.add(d)
                progress.advance(files_task)
                if as_json:
                    out.out(json.dumps(d), highlight=False)
                else:
                    out.print(summary_line(result), markup=False, soft_wrap=True)
                    if show_windows and result.ok:
                        out.print(windows_table(result))
    finally:
        if jsonl_writer:
            jsonl_writer.close()
        if parquet_report:
            parquet_report.close()
        if csv_writer:
            csv_writer.close()
    if not as_json and len(files) > 1:
        out.print(batch_table(results, out.width))
    elif as_json and len(files) > 1:
        n_fail = sum(1 for r in results if not r.get("ok"))
        err.print(f"avsync: {len(results) - n_fail} file(s) checked, {n_fail} failed", markup=False)
    if len(files) == 1 and not as_json and results and results[0].get("ok"):
        out.print(detail(results[0]), markup=False, soft_wrap=True)
    return results


def _write_html(
    results: list[dict[str, Any]], path: Path, sync_model: SyncModel, options: PredictOptions
) -> None:
    from ..output.html import write_html_report

    settings = {"model": sync_model.setup.name, "device": sync_model.setup.device, **asdict(options)}
    write_html_report(results, path, settings=settings)
    err_console().print(f"avsync: wrote {path}", markup=False)
