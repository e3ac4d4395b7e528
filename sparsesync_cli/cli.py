"""The ``avsync`` command line: the only module that prints or imports typer and rich.

Results go to stdout, progress and messages to stderr. Exit codes: 0 every file was checked,
1 a file failed (or any other error), 2 bad usage.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from . import __version__
from .clock import SIGN
from .errors import AvsyncError, UnexpectedError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from .analysis.results import SyncResult
    from .sync_model import SyncModel

SIGN_HELP = "Sign: a positive offset means the audio is EARLY (heard before it is seen); negative: late."
CLOCK_HELP = "Times are file times (presentation timestamps), in seconds."


class _Group(typer.core.TyperGroup):
    """Accepts ``--debug`` after the subcommand too (``avsync predict --debug``), for every command."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[1:end]:
            args = ["--debug", *(a for i, a in enumerate(args) if a != "--debug" or i >= end)]
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="avsync",
    cls=_Group,
    help=(
        "Find and fix the offset between the sound and the picture of video files, with SparseSync "
        f"(BMVC 2022) or Synchformer (ICASSP 2024). {SIGN_HELP} {CLOCK_HELP}"
    ),
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

_state = {"debug": False}


def _err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _out_console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _fail(e: AvsyncError) -> typer.Exit:
    """Print one line for a known error; the traceback only with --debug."""
    if _state["debug"]:
        raise e
    _err_console().print(f"avsync: error: {_shown(str(e))}", markup=False, soft_wrap=True)
    return typer.Exit(2 if isinstance(e, UsageError) else 1)


def _shown(text: str) -> str:
    """``text`` on one printable line: control characters and undecodable name bytes escaped as
    JSON escapes them (a newline in a file name is ``\\n``, a byte 0xFF is ``\\udcff``)."""
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


def _on_error(path: str, e: AvsyncError) -> None:
    """With --debug, the traceback of an unexpected exception in one file of a batch."""
    if _state["debug"] and isinstance(e, UnexpectedError):
        import traceback

        tb = "".join(traceback.format_exception(e.original))
        _err_console().print(f"avsync: traceback for {_shown(path)}:\n{tb}", markup=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avsync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
) -> None:
    """Find and fix the offset between the sound and the picture of video files."""
    _state["debug"] = debug


# ---------------------------------------------------------------- shared options
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Registry model name (see `avsync models`); default: the registry's default."
    ),
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option("--checkpoint", help="A checkpoint file (.pt/.pth) instead of a registry model."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="The checkpoint's cfg-<id>.yaml, when the file lacks its config."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu, cuda or cuda:N.")]
PrecisionOpt = Annotated[
    str, typer.Option("--precision", help="auto (fp16 autocast on CUDA, fp32 on CPU), fp32, fp16 or bf16.")
]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", min=1, help="CPU threads for the model (default: all cores).")
]
AudioStreamOpt = Annotated[
    int | None,
    typer.Option(
        "--audio-stream", min=0, help="Which audio stream to use: 0 = the first audio stream (default)."
    ),
]

SampleOpt = Annotated[
    str,
    typer.Option(
        "--sample",
        help="all: read every window; auto: read windows coarse to fine over the file and stop when "
        "the verdict is decided (README: fast triage).",
    ),
]
MinWindowsOpt = Annotated[
    int, typer.Option("--min-windows", min=1, help="--sample auto: decide from at least this many windows.")
]
MaxWindowsOpt = Annotated[
    int | None,
    typer.Option("--max-windows", min=1, help="Read at most this many windows per file (then: undecided)."),
]


def _sampling(sample: str, min_windows: int, max_windows: int | None, min_confidence: float = 0.8):
    from .analysis.sampling import SamplingOptions

    return SamplingOptions(sample, min_windows, max_windows, min_confidence)


CalibrationOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibration",
        help="A temperature calibration from `avsync evaluate --fit-calibration` "
        "(default: $AVSYNC_CALIBRATION).",
    ),
]


def _calibrate(sync_model: SyncModel, calibration: Path | None) -> None:
    """Apply --calibration / AVSYNC_CALIBRATION; one line if it belongs to another model."""
    from .evaluation.calibration import apply_calibration, calibration_path, load_calibration

    path = calibration_path(calibration)
    if path is not None:
        apply_calibration(sync_model, load_calibration(path))


def _load_model(model, checkpoint, config, device, precision, threads, optimize=True) -> SyncModel:
    from .sync_model import load_model

    if threads:
        import torch

        torch.set_num_threads(threads)
    if config is not None and checkpoint is None:
        raise UsageError("--config goes with --checkpoint")
    with _DownloadBar() as bar:
        return load_model(
            model,
            checkpoint=checkpoint,
            config=config,
            device=device,
            precision=precision,
            progress=bar.update,
            optimize=optimize,
        )


class _DownloadBar:
    """A rich progress bar on stderr for checkpoint downloads, shown only when one happens."""

    def __init__(self) -> None:
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> _DownloadBar:
        return self

    def update(self, name: str, done: int, total: int | None) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        if self._progress is None:
            self._progress = Progress(
                TextColumn("downloading {task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=_err_console(),
                transient=False,
            )
            self._progress.start()
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=total)
        self._progress.update(self._tasks[name], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


# ---------------------------------------------------------------- predict
@app.command()
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
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Look into sub-folders too.")] = False,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    no_optimize: Annotated[
        bool, typer.Option("--no-optimize", help="Run the plain modules (slower; for comparisons).")
    ] = False,
    calibration: CalibrationOpt = None,
    files_from: FilesFromOpt = None,
    parquet: ParquetOpt = None,
    ray: RayOpt = None,
    actors: ActorsOpt = "auto",
    num_gpus_per_actor: GpusPerActorOpt = None,
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
    from .analysis.predict import VIDEO_EXTENSIONS

    runner = None
    try:
        exts = [e.strip() for e in ext.split(",") if e.strip()] if ext else VIDEO_EXTENSIONS
        files = _inputs(paths, recursive, exts, model, checkpoint, files_from, ray)
        _outputs((jsonl, "the JSONL report"), (csv_path, "the CSV report"), (report, "the HTML report"))
        # validated before the (slow) model load; the batch size depends on the model's device
        options = _options(start, duration, shift, stride, batch_size or 1, audio_stream)
        options = replace(options, sampling=_sampling(sample, min_windows, max_windows, min_confidence))
        if ray is not None and sample != "all":
            raise UsageError("--sample auto runs in this process only, not with --ray")
        if start is not None:
            _check_start(files, start)
        model_args = (model, checkpoint, config, device, precision, threads, not no_optimize)
        if ray is not None:
            runner = _ray_runner(ray, actors, num_gpus_per_actor, model_args, batch_size)
        sync_model = _load_model(*model_args[:3], "cpu" if ray else device, *model_args[4:])
        _calibrate(sync_model, calibration)
        options = replace(options, batch_size=batch_size or _default_batch(sync_model))
    except AvsyncError as e:
        raise _fail(e) from None
    except ValueError as e:
        raise _fail(UsageError(str(e))) from None
    results = _run_batch(
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
    )
    if report is not None:
        try:
            _write_html(results, report, sync_model, options)
        except AvsyncError as e:
            raise _fail(e) from None
    if any(not r.get("ok") for r in results):
        raise typer.Exit(1)


def _outputs(*outputs: tuple[Path | None, str]) -> None:
    from .writable import check_writable

    for path, what in outputs:
        if path is not None:
            check_writable(path, what)


def _check_start(files: list[Path], start: float) -> None:
    """--start beyond the end of every input (by the headers) is a usage error, found at once."""
    from .media.probe import header_duration_sec

    ends = []
    for f in files:
        end = header_duration_sec(f)
        if end is None or start < end:
            return  # a file --start fits (or one only the real probe can judge)
        ends.append(end)
    if len(files) == 1:
        raise UsageError(f"--start {start:g} s is beyond the end of the file ({ends[0]:.2f} s)", files[0])
    raise UsageError(f"--start {start:g} s is beyond the end of every file (the longest: {max(ends):.2f} s)")


def _default_batch(sync_model: SyncModel) -> int:
    # CPU: batching gains ~4 % per window for ~0.4 GB per window (bench/model_speed.py); a GPU
    # wants several windows per call to be busy.
    return 8 if sync_model.info.device.startswith("cuda") else 1


def _options(start, duration, shift, stride, batch_size, audio_stream):
    from .analysis.predict import PredictOptions

    return PredictOptions(
        start_sec=start,
        duration_sec=duration,
        shift_sec=shift,
        stride_sec=stride,
        batch_size=batch_size,
        audio_stream=audio_stream,
    )


FilesFromOpt = Annotated[
    str | None,
    typer.Option(
        "--files-from", help="Also check the paths/URIs listed in this file, one a line (- = stdin)."
    ),
]
ParquetOpt = Annotated[
    Path | None,
    typer.Option("--parquet", help="Also write the results as Parquet files into this folder (resumable)."),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Run on Ray: alone, a local Ray runtime; `--ray auto` or `--ray ray://HOST:10001` joins a "
        "cluster. Needs pip install 'sparsesync-cli[ray]'.",
    ),
]
ActorsOpt = Annotated[
    str, typer.Option("--actors", help="With --ray: model actors, N or auto (as many as fit).")
]
GpusPerActorOpt = Annotated[
    float | None,
    typer.Option(
        "--num-gpus-per-actor",
        min=0,
        help="With --ray: GPUs per model actor (default 1 if the cluster has GPUs, else 0: CPU actors).",
    ),
]


def _inputs(paths, recursive, exts, model, checkpoint, files_from=None, ray=None) -> list[str]:
    """The files to check (paths, folders, URIs, the --files-from list); usage errors (a missing
    input, an unknown model, a bad --ray address) before any work."""
    from .checkpoints.registry import get_entry
    from .distributed.sources import collect_sources
    from .media.remote import is_uri

    paths = list(paths or [])
    _check_ray_address(ray)
    for p in paths:
        if not is_uri(p) and not os.path.lexists(p):
            raise UsageError("no such file or folder", p)
    if model is not None and checkpoint is None:
        get_entry(model)
    files = collect_sources(paths, recursive=recursive, extensions=exts, files_from=files_from)
    if not files:
        raise UsageError("no video files found in " + (", ".join(paths) or "the list"))
    return files


def _check_ray_address(ray: str | None) -> None:
    if ray is not None and not _is_ray_address(ray):
        raise UsageError(f"--ray {ray}: expected local, auto, ray://HOST:PORT or HOST:PORT")


def _is_ray_address(value: str) -> bool:
    import re

    return value in ("local", "auto") or "://" in value or bool(re.fullmatch(r"[\w.-]+:\d+", value))


def _ray_runner(ray, actors, num_gpus_per_actor, model_args, batch_size):
    """Runs files on Ray (see distributed.ray_pipeline): call it as _run_batch's runner, or .score,
    or .evaluate for protocol items."""
    from .distributed.ray_pipeline import evaluate_on_ray, predict_on_ray, require_ray, score_on_ray
    from .distributed.work import ModelSpec

    _check_ray_address(ray)
    require_ray()  # the one-line install hint before anything slow
    if actors != "auto" and not (actors.isdigit() and int(actors) > 0):
        raise UsageError(f"--actors {actors}: expected a positive number or auto")
    name, checkpoint, config, device, precision, threads, optimize = model_args
    spec = ModelSpec(name, _str(checkpoint), _str(config), device, precision, threads or 1, optimize)
    cluster = {
        "address": None if ray == "local" else ray,
        "actors": actors,
        "num_gpus_per_actor": num_gpus_per_actor,
        "cpus_per_actor": threads or 1,
    }

    def calibrated(sync_model):
        return replace(spec, calibration=sync_model.info.calibration)

    def run(todo, sync_model, options, on_window=None, on_error=None):
        return predict_on_ray(
            todo, calibrated(sync_model), options, sync_model.info, batch_size=batch_size, **cluster
        )

    def score(files, sync_model, **kwargs):
        return score_on_ray(
            files, calibrated(sync_model), sync_model.info, batch_size=batch_size, **kwargs, **cluster
        )

    def evaluate(sync_model, root, audio_stream):
        def items_on_ray(todo):
            return evaluate_on_ray(
                todo, spec, sync_model.info, root, batch_size=batch_size, audio_stream=audio_stream, **cluster
            )

        return items_on_ray

    run.score = score
    run.evaluate = evaluate
    return run


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p.resolve())


def _run_batch(
    files, sync_model, options, as_json, jsonl, csv_path, show_windows, quiet, runner=None, parquet=None
) -> list[dict]:
    """Check every file, writing reports as results arrive; returns every result as a dict.

    ``runner(todo, model, options, on_window=...)`` yields the results (default: one file after
    another here; ``--ray``: on a cluster).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .analysis.predict import iter_predictions
    from .analysis.results import SyncResult
    from .distributed.parquet import ParquetResults, read_parquet_results
    from .distributed.sources import split_done
    from .report.records import CsvReport, JsonlReport, read_jsonl

    out, err = _out_console(), _err_console()
    try:
        previous = read_jsonl(jsonl) if jsonl is not None and jsonl.exists() else []
        previous += read_parquet_results(parquet) if parquet is not None else []
        todo, skipped = split_done([str(f) for f in files], previous, model=sync_model.info.name)
        if skipped:
            err.print(f"avsync: {len(skipped)} file(s) already in the report, skipping them", markup=False)
        jsonl_report = JsonlReport(jsonl) if jsonl is not None else None
        parquet_report = ParquetResults(parquet) if parquet is not None else None
    except AvsyncError as e:
        raise _fail(e) from None
    csv_report = CsvReport(csv_path) if csv_path is not None else None
    for r in skipped:
        if csv_report:
            csv_report.add(r)
        if as_json:
            out.out(json.dumps(r), highlight=False)
        else:
            out.print(
                _summary_line(SyncResult.from_dict(r)) + " (from the report)", markup=False, soft_wrap=True
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
            for result in (runner or iter_predictions)(
                todo, sync_model, options, on_window=on_window, on_error=_on_error
            ):
                d = result.to_dict()
                results.append(d)
                if jsonl_report:
                    jsonl_report.append(d)
                if parquet_report:
                    parquet_report.add(d)
                if csv_report:
                    csv_report.add(d)
                progress.advance(files_task)
                if as_json:
                    out.out(json.dumps(d), highlight=False)
                else:
                    out.print(_summary_line(result), markup=False, soft_wrap=True)
                    if show_windows and result.ok:
                        out.print(_windows_table(result))
    finally:
        if jsonl_report:
            jsonl_report.close()
        if parquet_report:
            parquet_report.close()
        if csv_report:
            csv_report.close()
    if not as_json and len(files) > 1:
        out.print(_batch_table(results, out.width))
    elif as_json and len(files) > 1:
        n_fail = sum(1 for r in results if not r.get("ok"))
        err.print(f"avsync: {len(results) - n_fail} file(s) checked, {n_fail} failed", markup=False)
    if len(files) == 1 and not as_json and results and results[0].get("ok"):
        out.print(_detail(results[0]), markup=False, soft_wrap=True)
    return results


def _summary_line(result: SyncResult) -> str:
    name = _shown(result.path)
    if not result.ok:
        return f"{name}: FAILED: {_shown(result.error or '')}"
    conf = f"confidence {result.confidence:.2f}" if result.confidence is not None else ""
    drift = (
        f", drifting {result.drift_sec_per_min:+.2f} s/min" if result.drift_sec_per_min is not None else ""
    )
    sm = result.sampling
    read = f", {sm.windows_used} of {sm.windows_total} windows" if sm.sampling != "all" or sm.skipped else ""
    return f"{name}: {result.offset_words} ({result.offset_sec:+.2f} s), {conf}{drift}{read}"


def _detail(d: dict) -> str:
    """The extra lines for a single file: top-3 offsets of the combined verdict, range, sign.

    The top 3 are read from the stored combined posterior, not recomputed (a version 1.0 record,
    resumed from an old report, has none: the line is left out).
    """
    grid, post = d["grid"], d.get("posterior") or []
    best = sorted(range(len(post)), key=lambda i: post[i], reverse=True)[:3]
    top3 = ", ".join(f"{grid[i]:+.1f} s (p={post[i]:.3f})" for i in best)
    lo, hi = d["range_sec"]
    lines = [
        f"  model {d['model']['name']} ({d['model']['family']}), {len(d['windows'])} window(s), "
        f"agreement {d['agreement']:.2f}",
        f"  top-3 offsets: {top3}" if top3 else None,
        f"  range {lo:+.1f}..{hi:+.1f} s in {d['resolution_sec']:.1f} s steps; {SIGN}",
    ]
    return "\n".join(line for line in lines if line)


def _windows_table(result: SyncResult):
    from rich.table import Table

    t = Table(title=f"windows of {Path(result.path).name}", title_justify="left")
    for col in ("start (s)", "shift (s)", "offset (s)", "confidence"):
        t.add_column(col, justify="right")
    for w in result.windows:
        t.add_row(f"{w.start_sec:.2f}", f"{w.shift_sec:+.2f}", f"{w.offset_sec:+.2f}", f"{w.confidence:.2f}")
    return t


def _batch_table(results: list[dict], width: int):
    from rich.table import Table

    ok = sum(1 for r in results if r.get("ok"))
    title = f"{ok} of {len(results)} file(s) checked, {len(results) - ok} failed"
    longest = max((len(_shown(r["path"])) for r in results), default=0)
    if longest > width - 36:  # no room for whole names beside a verdict: the lines above say it all
        return title
    t = Table(title=title, title_justify="left")
    t.add_column("file", no_wrap=True, min_width=longest)  # names stay whole; verdicts wrap at words
    for col, just in (("offset (s)", "right"), ("verdict", "left"), ("confidence", "right")):
        t.add_column(col, justify=just)
    for r in results:
        if r.get("ok"):
            drift = r.get("drift_sec_per_min")
            words = r["offset_words"] + (f", drift {drift:+.2f} s/min" if drift is not None else "")
            t.add_row(_shown(r["path"]), f"{r['offset_sec']:+.2f}", words, f"{r['confidence']:.2f}")
        else:
            t.add_row(_shown(r["path"]), "", f"FAILED: {_shown(r['error'])}", "")
    return t


def _write_html(results: list[dict], path: Path, sync_model, options) -> None:
    from dataclasses import asdict

    from .report.html import write_html_report

    settings = {"model": sync_model.info.name, "device": sync_model.info.device, **asdict(options)}
    write_html_report(results, path, settings=settings)
    _err_console().print(f"avsync: wrote {path}", markup=False)


# ---------------------------------------------------------------- report
@app.command("report")
def report_cmd(
    jsonl: Annotated[Path, typer.Argument(help="A JSON Lines report written by `avsync predict --jsonl`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    title: Annotated[str, typer.Option("--title", help="The report's title.")] = "avsync report",
    maps: Annotated[
        Path | None, typer.Option("--maps", help="Also write one SVG sync map per file into this folder.")
    ] = None,
) -> None:
    """Turn a JSONL report into one self-contained HTML page with a sync map per file."""
    from .report.html import write_html_report
    from .report.records import latest_results, read_jsonl
    from .report.syncmap import has_sync_map, write_sync_map

    try:
        results = latest_results(read_jsonl(jsonl))
        write_html_report(results, output, title=title)
        if maps is not None:
            maps.mkdir(parents=True, exist_ok=True)
            for i, r in enumerate(results):
                if has_sync_map(r):
                    write_sync_map(r, maps / f"{i:04d}_{Path(r['path']).stem}.svg")
    except AvsyncError as e:
        raise _fail(e) from None
    except OSError as e:
        raise _fail(AvsyncError(f"cannot write: {e.strerror or e}", e.filename)) from None
    _err_console().print(f"avsync: wrote {output} ({len(results)} file(s))", markup=False)


# ---------------------------------------------------------------- fix
FIX_SKIPPED_EXIT = 3  # `fix` measured the offset but was not sure enough to apply it


@app.command()
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
    from .analysis.fix_decision import decide_fix, plan_fix
    from .checkpoints.registry import get_entry

    out = _out_console()
    try:
        measured = None
        if not src.exists():
            raise UsageError("no such file", src)
        if model is not None and checkpoint is None:
            get_entry(model)
        if not dry_run:
            _outputs((output, "the corrected copy"))
        if offset is None:
            sampling = _sampling(sample, min_windows, max_windows, min_confidence)
            sync_model = _load_model(model, checkpoint, config, device, precision, threads)
            _calibrate(sync_model, calibration)
            measured = _measure_one(src, sync_model, audio_stream, sampling)
            decision = decide_fix(measured, min_confidence=min_confidence)
        else:
            decision = plan_fix(offset)
        if not decision.apply:
            _report_fix(out, as_json, src, output, decision, measured, None, dry_run)
            raise typer.Exit(FIX_SKIPPED_EXIT)
        done = None
        if not dry_run:
            from .media.remux import fix_offset

            done = fix_offset(src, output, decision.offset_sec, audio_stream=audio_stream, force=force)
        _report_fix(out, as_json, src, output, decision, measured, done, dry_run)
    except AvsyncError as e:
        raise _fail(e) from None
    except ValueError as e:
        raise _fail(UsageError(str(e))) from None


def _measure_one(src: Path, sync_model, audio_stream, sampling):
    from .analysis.predict import PredictOptions, predict_file

    err = _err_console()
    err.print(f"avsync: measuring the offset of {_shown(str(src))} ...", markup=False)
    try:
        return predict_file(src, sync_model, PredictOptions(audio_stream=audio_stream, sampling=sampling))
    except Exception as e:  # the measure step's boundary: one line, the traceback with --debug
        if _state["debug"] or isinstance(e, AvsyncError):
            raise
        raise UnexpectedError(e, src) from e


def _report_fix(out, as_json, src, output, decision, measured, done, dry_run) -> None:
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
        out.print(_summary_line(measured), markup=False, soft_wrap=True)
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


# ---------------------------------------------------------------- score
DESYNC_MODEL = "synchformer-audioset"  # the checkpoint av-benchmark's DeSync uses (24-01-04T16-39-21)


@app.command()
def score(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Generated videos, folders and/or URIs.", show_default=False, metavar="PATHS..."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help=f"Registry model (default {DESYNC_MODEL}).")
    ] = None,
    checkpoint: CheckpointOpt = None,
    config: ConfigOpt = None,
    clip_sec: Annotated[
        float | None,
        typer.Option(
            "--clip-sec",
            help="av-benchmark's --audio_length: score the first/last 4.8 s of this many seconds from the "
            "start (e.g. 8); default: the whole overlap of audio and video.",
        ),
    ] = None,
    whole_file: Annotated[
        bool, typer.Option("--whole-file/--no-whole-file", help="Also score every 4.8 s window of each file.")
    ] = True,
    sample: SampleOpt = "all",
    min_windows: MinWindowsOpt = 6,
    max_windows: MaxWindowsOpt = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Look into sub-folders too.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines: one per file, then the summary.")
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Windows per model call (default: 1 on CPU, 8 on CUDA)."),
    ] = None,
    calibration: CalibrationOpt = None,
    files_from: FilesFromOpt = None,
    ray: RayOpt = None,
    actors: ActorsOpt = "auto",
    num_gpus_per_actor: GpusPerActorOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """DeSync (mean absolute offset, seconds; lower is better) of generated videos, with Synchformer.

    desync_av_benchmark follows hkchengrex/av-benchmark: the first and the last 4.8 s of each
    clip, 21-class argmax, mean |offset|, averaged over files. desync_windows and
    desync_aggregated look at the whole file. Cite which one you report.
    """
    from .analysis.desync import score_files, summarize
    from .analysis.predict import VIDEO_EXTENSIONS

    out = _out_console()
    try:
        files = _inputs(paths, recursive, VIDEO_EXTENSIONS, model, checkpoint, files_from, ray)
        try:
            sampling = _sampling(sample, min_windows, max_windows)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if ray and sample != "all":
            raise UsageError("--sample auto runs in this process only, not with --ray")
        if model is None and checkpoint is None:
            model = DESYNC_MODEL
        model_args = (model, checkpoint, config, device, precision, threads, True)
        runner = _ray_runner(ray, actors, num_gpus_per_actor, model_args, batch_size) if ray else None
        sync_model = _load_model(*model_args[:3], "cpu" if ray else device, *model_args[4:])
        _calibrate(sync_model, calibration)
        batch_size = batch_size or _default_batch(sync_model)
        results = []
        scoring = (
            runner.score(files, sync_model, clip_sec=clip_sec, whole_file=whole_file)
            if runner
            else score_files(
                files,
                sync_model,
                clip_sec=clip_sec,
                whole_file=whole_file,
                batch_size=batch_size,
                on_error=_on_error,
                sampling=sampling,
            )
        )
        for r in scoring:
            results.append(r)
            if as_json:
                out.out(json.dumps(r.to_dict()), highlight=False)
            elif r.ok:
                whole = (
                    f", whole file {r.desync_windows:.3f} (windows) / {r.desync_aggregated:.3f} (combined)"
                    + (f", {r.n_windows} of {r.windows_total} windows" if r.sampling == "auto" else "")
                    if r.desync_windows is not None
                    else ""
                )
                out.print(
                    f"{_shown(r.path)}: DeSync {r.desync_av_benchmark:.3f} s "
                    f"(first {r.first_offset_sec:+.1f}, "
                    f"last {r.last_offset_sec:+.1f}){whole}",
                    markup=False,
                    soft_wrap=True,
                )
            else:
                out.print(f"{_shown(r.path)}: FAILED: {_shown(r.error or '')}", markup=False, soft_wrap=True)
    except AvsyncError as e:
        raise _fail(e) from None
    summary = summarize(results)
    if sync_model.info.calibration is not None:
        summary["calibration"] = sync_model.info.calibration  # which temperature the windows had
    if as_json:
        out.out(json.dumps({"summary": summary}), highlight=False)
    else:

        def fmt(x):
            return "n/a" if x is None else f"{x:.4f}"

        out.print(
            f"DeSync over {summary['scored']} file(s) ({summary['failed']} failed): "
            f"av-benchmark {fmt(summary['desync_av_benchmark'])}, whole-file windows "
            f"{fmt(summary['desync_windows'])}, whole-file combined {fmt(summary['desync_aggregated'])}",
            markup=False,
            soft_wrap=True,
        )
    if summary["failed"]:
        raise typer.Exit(1)


# ---------------------------------------------------------------- models / download
@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """List the models avsync knows, whether they are cached, and their terms."""
    from rich.table import Table

    from .checkpoints.download import model_status
    from .checkpoints.registry import default_model_name, load_registry

    try:
        reg = load_registry()
        default = default_model_name()
        rows = []
        for entry in reg.values():
            st = model_status(entry)
            acc = entry.accuracy
            rows.append(
                {
                    "name": entry.name,
                    "default": entry.name == default,
                    "family": entry.family,
                    "id": entry.id,
                    "classes": entry.classes,
                    "range_sec": [-entry.max_offset_sec, entry.max_offset_sec],
                    "training_data": entry.training_data,
                    "accuracy_top1": acc.top1 if acc else None,
                    "accuracy_test_set": acc.test_set if acc else None,
                    "cached": st.cached,
                    "size_bytes": st.size_bytes,
                    "licence": entry.licence,
                    "licence_note": entry.licence_note,
                    "source": entry.checkpoint.location,
                }
            )
    except AvsyncError as e:
        raise _fail(e) from None
    out = _out_console()
    if as_json:
        out.out(json.dumps(rows, indent=1), highlight=False)
        return
    t = Table(
        title="avsync models (* = default; `avsync models --json` has the licence notes)",
        title_justify="left",
    )
    # Names stay whole; on a narrow terminal the long text columns go (they are in --json).
    wide = out.width >= 120
    cols = [
        "name",
        "classes",
        "trained on",
        "Acc@1 (test set)" if wide else "Acc@1",
        "cached",
        "size",
        "licence",
    ]
    for col in cols if wide else [c for c in cols if c not in ("trained on", "licence")]:
        t.add_column(col, no_wrap=col in ("name", "classes", "cached", "size"))
    if not wide:
        t.title = "avsync models (* = default; `avsync models --json`: training data, test sets, licences)"
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.0f} MB" if r["size_bytes"] else "?"
        acc = (
            f"{r['accuracy_top1']:g} % ({r['accuracy_test_set'].removesuffix(' test')})"
            if r["accuracy_top1"] and wide
            else (f"{r['accuracy_top1']:g} %" if r["accuracy_top1"] else "")
        )
        cells = [
            r["name"] + (" *" if r["default"] else ""),
            f"{r['classes']} (±{r['range_sec'][1]:.0f} s)",
            r["training_data"],
            acc,
            "yes" if r["cached"] else "no",
            size,
            r["licence"],
        ]
        t.add_row(*(cells if wide else [c for i, c in enumerate(cells) if i not in (2, 6)]))
    out.print(t)


@app.command()
def download(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to fetch (default: the default model).")
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Fetch every model in the registry.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash files already in the cache.")] = False,
) -> None:
    """Download and verify checkpoints into the cache, for offline use later."""
    from .checkpoints.download import ensure_files
    from .checkpoints.registry import default_model_name, get_entry, load_registry

    out = _out_console()
    try:
        wanted = list(load_registry()) if all_models else (names or [default_model_name()])
        entries = [get_entry(n) for n in wanted]
        with _DownloadBar() as bar:
            for entry in entries:
                files = ensure_files(entry, progress=bar.update, verify=verify)
                out.print(f"{entry.name}: {files.checkpoint}", markup=False, soft_wrap=True)
    except AvsyncError as e:
        raise _fail(e) from None


# ---------------------------------------------------------------- evaluate
class _DefaultRunGroup(TyperGroup):
    """`avsync evaluate PROTOCOL ...` runs `evaluate run`; `avsync evaluate make-protocol` is a command."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


evaluate_app = typer.Typer(
    cls=_DefaultRunGroup,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Measure a model's accuracy and calibration on a protocol of test items "
    "(`avsync evaluate PROTOCOL --root DIR`), or draw a protocol from your own in-sync clips "
    "(`avsync evaluate make-protocol`).",
)
app.add_typer(evaluate_app, name="evaluate")


@evaluate_app.command("run")
def evaluate_run(
    protocol: Annotated[
        str,
        typer.Argument(
            metavar="PROTOCOL",
            help="A protocol CSV (path,offset_sec,vstart_sec) or a named protocol: lrs3, lrs3-3cls, "
            "vggsound-sparse, vggsound-sparse-3cls, vggsound (fetched on first use).",
            show_default=False,
        ),
    ],
    root: Annotated[Path, typer.Option("--root", help="The folder the protocol's paths are under.")] = Path(
        "."
    ),
    model: ModelOpt = None,
    checkpoint: CheckpointOpt = None,
    config: ConfigOpt = None,
    jsonl: Annotated[
        Path | None,
        typer.Option("--jsonl", help="Append one record per item here; items already in it are skipped."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
    fit_calibration: Annotated[
        Path | None,
        typer.Option("--fit-calibration", help="Fit a temperature on the items and write it to this JSON."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="Judge the confidences with this calibration applied."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Items per model call (default: 1 on CPU, 8 on CUDA)."),
    ] = None,
    audio_stream: AudioStreamOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ray: RayOpt = None,
    actors: ActorsOpt = "auto",
    num_gpus_per_actor: GpusPerActorOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """Evaluate a model on PROTOCOL: Acc@1, Acc@1 within +-1 class, confusion, reliability, ECE, Brier.

    Each item is one 5 s window, exactly `avsync predict PATH --start vstart_sec --shift
    offset_sec --duration 5`. Missing or unreadable clips are counted and listed; exit code 1
    when any failed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .evaluation import calibration as cal_mod
    from .evaluation.metrics import compute_metrics
    from .evaluation.named import NAMED_PROTOCOLS, fetch_named_protocol, is_named
    from .evaluation.protocol import read_protocol
    from .evaluation.run import run_protocol

    err = _err_console()
    try:
        named = NAMED_PROTOCOLS[protocol] if is_named(protocol) else None
        with _DownloadBar() as bar:
            csv_path = fetch_named_protocol(named, progress=bar.update) if named else Path(protocol)
        items = read_protocol(csv_path)
        cal = cal_mod.load_calibration(calibration) if calibration is not None else None
        runner = None
        if ray is not None:  # items run on Ray; this process loads the model on its CPU for its facts
            model_args = (model, checkpoint, config, device, precision, threads, True)
            runner = _ray_runner(ray, actors, num_gpus_per_actor, model_args, batch_size).evaluate
        sync_model = _load_model(model, checkpoint, config, "cpu" if ray else device, precision, threads)
        if cal is not None:
            cal_mod.check_model(cal, sync_model.info)
        progress = Progress(
            TextColumn("items"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err, transient=True, disable=quiet or not err.is_terminal,
        )  # fmt: skip
        task = progress.add_task("items", total=len(items))
        batch = batch_size or _default_batch(sync_model)

        def on_item(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        with progress:
            records, resumed = run_protocol(
                items,
                sync_model,
                root,
                jsonl=jsonl,
                batch_size=batch,
                audio_stream=audio_stream,
                on_item=on_item,
                runner=runner(sync_model, root, audio_stream) if runner else None,
            )
        if resumed:
            err.print(f"avsync: {resumed} item(s) taken from {jsonl}", markup=False)
        metrics = compute_metrics(records, sync_model.grid, temperature=cal.temperature if cal else 1.0)
        # the published value of this model if there is one, else every one published for the protocol
        published = named.published if named else {}
        mine = {k: v for k, v in published.items() if k == sync_model.info.name}
        metrics = {
            **metrics,
            "protocol": protocol,
            "model": sync_model.info.result_model().to_dict(),
            "calibration": cal.summary() if cal else None,
            "published_acc1": mine or published,
        }
        if fit_calibration is not None:
            fitted = cal_mod.fit_calibration(records, sync_model.info)
            cal_mod.save_calibration(fitted, fit_calibration)
            metrics["fitted_calibration"] = {"file": str(fit_calibration), **fitted.to_dict()}
        if report is not None:
            from .evaluation.report import write_evaluation_html

            settings = {"model": sync_model.info.name, "root": str(root)}
            write_evaluation_html(
                report, metrics, records, title=f"avsync evaluation: {protocol}",
                published=metrics["published_acc1"], settings=settings,
            )  # fmt: skip
            err.print(f"avsync: wrote {report}", markup=False)
    except AvsyncError as e:
        raise _fail(e) from None
    _print_evaluation(metrics, as_json)
    if metrics["n_failed"]:
        raise typer.Exit(1)


def _print_evaluation(m: dict, as_json: bool) -> None:
    out = _out_console()
    if as_json:
        out.out(json.dumps(m), highlight=False)
        return

    def pct(x):
        return "n/a" if x is None else f"{x:.2f} %"

    lines = [
        f"{m['protocol']}: {m['n']} item(s) evaluated, {m['n_failed']} failed, model {m['model']['name']}",
        f"  Acc@1 {pct(m['acc1'])}, within +-1 class {pct(m['acc1_pm1'])}, "
        f"mean |offset error| {m['mean_abs_offset_error_sec'] if m['n'] else 'n/a'} s",
        f"  ECE {m['ece']}, Brier {m['brier']} (temperature {m['temperature']})",
    ]
    lines += [f"  published Acc@1 of {k}: {v} %" for k, v in m["published_acc1"].items()]
    if m.get("fitted_calibration"):
        f = m["fitted_calibration"]
        h = f["heldout"]
        lines.append(
            f"  calibration: temperature {f['temperature']:.4f}, held-out ECE {h['ece_before']:.4f} -> "
            f"{h['ece_after']:.4f} ({f['n_heldout']} items); wrote {f['file']}"
        )
    lines += [f"  FAILED {x['path']} @ {x['vstart_sec']} s: {x['error']}" for x in m["failed"]]
    out.print("\n".join(lines), markup=False, soft_wrap=True)


@evaluate_app.command("make-protocol")
def evaluate_make_protocol(
    clips: Annotated[
        list[Path], typer.Argument(help="Clips you know are in sync (files or folders).", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The protocol CSV to write.")],
    offsets: Annotated[
        str, typer.Option("--offsets", help="Offsets to draw from: first:last:step, or a list like -1,0,1.")
    ] = "-2:2:0.2",
    per_clip: Annotated[int, typer.Option("--per-clip", min=1, help="Items drawn per clip.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="The same seed gives the same protocol.")] = 0,
    root: Annotated[
        Path | None, typer.Option("--root", help="Write paths relative to this folder (evaluate --root).")
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Look into sub-folders too.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
) -> None:
    """Draw a reproducible protocol of (clip, start, offset) items from clips that are in sync.

    Items whose window (audio included) would leave the file are never drawn; clips too short
    for any offset are skipped and listed.
    """
    from .analysis.predict import collect_media_files
    from .evaluation.protocol import make_protocol, parse_offsets, write_protocol

    err = _err_console()
    try:
        if output.exists() and not force:
            raise UsageError(f"{output} exists (use --force to overwrite it)")
        files = collect_media_files(clips, recursive=recursive)
        drawn = make_protocol(files, parse_offsets(offsets), per_clip=per_clip, seed=seed, root=root)
        for name, why in drawn.skipped:
            err.print(f"avsync: skipped {name}: {why}", markup=False, soft_wrap=True)
        if not drawn.items:
            raise UsageError("no clip is long enough for a 5 s window at these offsets; nothing written")
        write_protocol(drawn.items, output)
    except AvsyncError as e:
        raise _fail(e) from None
    err.print(
        f"avsync: wrote {output} ({len(drawn.items)} item(s) from {len(files) - len(drawn.skipped)} clip(s))",
        markup=False,
    )


def ray_argv(argv: list[str]) -> list[str]:
    """``--ray`` alone means a local runtime: spelled ``--ray=local`` for the parser (which needs a value)."""
    return [
        "--ray=local" if a == "--ray" and (i + 1 == len(argv) or not _is_ray_address(argv[i + 1])) else a
        for i, a in enumerate(argv)
    ]


def main() -> None:
    """Console-script entry point."""
    try:
        app(args=ray_argv(sys.argv[1:]))
    except KeyboardInterrupt:
        print("avsync: interrupted", file=sys.stderr)
        sys.exit(130)
