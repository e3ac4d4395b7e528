"""What every ``avsync`` command shares: the option types, the consoles, the one error path,
loading the model from its options, and collecting the inputs.

Results go to stdout, progress and messages to stderr. Exit codes: 0 every file was checked,
1 a file failed (or any other error), 2 bad usage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..distributed.runner import check_ray_address
from ..errors import AvsyncError, UnexpectedError, UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from ..analysis.sampling import SamplingOptions
    from ..distributed.work import ModelSpec
    from ..sync_model import SyncModel

STATE = {"debug": False}  # set by the root callback: --debug


# ---------------------------------------------------------------- consoles and errors
def err_console() -> Console:
    """Messages and progress: stderr."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def out_console() -> Console:
    """Results: stdout."""
    from rich.console import Console

    return Console(highlight=False)


def shown(text: str) -> str:
    """``text`` on one printable line: control characters and undecodable name bytes escaped as
    JSON escapes them (a newline in a file name is ``\\n``, a byte 0xFF is ``\\udcff``)."""
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


@contextmanager
def one_line_errors(*, value_errors: bool = False) -> Iterator[None]:
    """The commands' one error path: an :class:`AvsyncError` raised inside becomes one line on
    stderr and exit code 2 (a usage error) or 1; with --debug, its traceback instead.

    ``value_errors``: a ``ValueError`` (an option's value refused by the library) is a usage error.
    """
    try:
        yield
    except AvsyncError as e:
        raise _exit_for(e) from None
    except ValueError as e:
        if not value_errors:
            raise
        raise _exit_for(UsageError(str(e))) from None


def _exit_for(e: AvsyncError) -> typer.Exit:
    if STATE["debug"]:
        raise e
    err_console().print(f"avsync: error: {shown(str(e))}", markup=False, soft_wrap=True)
    return typer.Exit(2 if isinstance(e, UsageError) else 1)


def on_error(path: str, e: AvsyncError) -> None:
    """With --debug, the traceback of an unexpected exception in one file of a batch."""
    if STATE["debug"] and isinstance(e, UnexpectedError):
        import traceback

        tb = "".join(traceback.format_exception(e.original))
        err_console().print(f"avsync: traceback for {shown(path)}:\n{tb}", markup=False, soft_wrap=True)


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
        "the verdict is decided (manual: Guides > Fast triage).",
    ),
]
MinWindowsOpt = Annotated[
    int, typer.Option("--min-windows", min=1, help="--sample auto: decide from at least this many windows.")
]
MaxWindowsOpt = Annotated[
    int | None,
    typer.Option("--max-windows", min=1, help="Read at most this many windows per file (then: undecided)."),
]

CalibrationOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibration",
        help="A temperature calibration from `avsync evaluate --fit-calibration` "
        "(default: $AVSYNC_CALIBRATION).",
    ),
]


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
DecodeWorkersOpt = Annotated[
    str | None,
    typer.Option(
        "--decode-workers",
        metavar="N|auto",
        help="Decode N files at once in worker processes feeding the model, windows batched across "
        "files (auto: the cores minus the model's: 1 on CUDA, --threads on CPU). Default: one file "
        "at a time, decoded in a thread.",
    ),
]
DecoderOpt = Annotated[
    str,
    typer.Option(
        "--decoder",
        help="auto, cpu or gpu. This version decodes on the CPU (auto = cpu); gpu (NVDEC) is refused.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Look into sub-folders too.")]


# ---------------------------------------------------------------- options into library values
def sampling(
    sample: str, min_windows: int, max_windows: int | None, min_confidence: float = 0.8
) -> SamplingOptions:
    """``--sample``/``--min-windows``/``--max-windows``; a ValueError for a bad combination."""
    from ..analysis.sampling import SamplingOptions

    return SamplingOptions(sample, min_windows, max_windows, min_confidence)


def no_auto_sample_on_ray(ray: str | None, sample: str) -> None:
    """``--sample auto`` decides per file as windows arrive: it runs in this process only."""
    if ray is not None and sample != "all":
        raise UsageError("--sample auto runs in this process only, not with --ray")


def decoding(
    decode_workers: str | None, decoder: str, device: str, ray: str | None, sample: str = "all"
) -> int | str | None:
    """``--decode-workers`` and ``--decoder``, checked before any model loads: the workers for
    the library (``None``, a number or ``"auto"``); a UsageError (exit 2) for a bad combination."""
    from ..media.decoder_choice import resolve_decoder

    resolve_decoder(decoder, device)
    if decode_workers is None:
        return None
    if decode_workers != "auto" and not (decode_workers.isdigit() and int(decode_workers) > 0):
        raise UsageError(f"--decode-workers {decode_workers}: expected a positive number or auto")
    if ray is not None:
        raise UsageError("--decode-workers is for a batch on this machine; with --ray, Ray runs the decoders")
    if sample != "all":
        raise UsageError("--sample auto runs in this process only, not with --decode-workers")
    return decode_workers if decode_workers == "auto" else int(decode_workers)


def model_spec(
    model: str | None,
    checkpoint: Path | None,
    config: Path | None,
    device: str,
    precision: str,
    threads: int | None,
    optimize: bool = True,
) -> ModelSpec:
    """The model the options name (paths as the user typed them)."""
    from ..distributed.work import ModelSpec

    return ModelSpec(
        model,
        None if checkpoint is None else str(checkpoint),
        None if config is None else str(config),
        device,
        precision,
        threads,
        optimize,
    )


def load_model(spec: ModelSpec) -> SyncModel:
    """Load the model here, with a download bar when a checkpoint is fetched."""
    if spec.config is not None and spec.checkpoint is None:
        raise UsageError("--config goes with --checkpoint")
    with DownloadBar() as bar:
        return spec.load(progress=bar.update)


def calibrate(sync_model: SyncModel, calibration: Path | None) -> None:
    """Apply --calibration / AVSYNC_CALIBRATION; one line if it belongs to another model."""
    from ..evaluation.calibration import apply_calibration, calibration_path, load_calibration

    path = calibration_path(calibration)
    if path is not None:
        apply_calibration(sync_model, load_calibration(path))


def default_batch(sync_model: SyncModel) -> int:
    """Windows per model call when --batch-size is not given."""
    # CPU: batching gains ~4 % per window for ~0.4 GB per window (bench/model_speed.py); a GPU
    # wants several windows per call to be busy.
    return 8 if sync_model.setup.device.startswith("cuda") else 1


class DownloadBar:
    """A rich progress bar on stderr for checkpoint downloads, shown only when one happens."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> DownloadBar:
        return self

    def update(self, name: str, done: int, total: int | None) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        progress = self._progress
        if progress is None:
            progress = self._progress = Progress(
                TextColumn("downloading {task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=err_console(),
                transient=False,
            )
            progress.start()
        if name not in self._tasks:
            self._tasks[name] = progress.add_task(name, total=total)
        progress.update(self._tasks[name], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


# ---------------------------------------------------------------- inputs and outputs
def check_outputs(*outputs: tuple[Path | None, str]) -> None:
    """Each ``(path, what)`` given can be written: a usage error before any work otherwise."""
    from ..writable import check_writable

    for path, what in outputs:
        if path is not None:
            check_writable(path, what)


def collect_inputs(
    paths: list[str] | None,
    recursive: bool,
    exts: Sequence[str],
    model: str | None,
    checkpoint: Path | None,
    files_from: str | None = None,
    ray: str | None = None,
) -> list[str]:
    """The files to check (paths, folders, URIs, the --files-from list); usage errors (a missing
    input, an unknown model, a bad --ray address) before any work."""
    from ..checkpoints.registry import get_entry
    from ..distributed.sources import collect_sources
    from ..media.remote import is_uri

    paths = list(paths or [])
    check_ray_address(ray)
    for p in paths:
        if not is_uri(p) and not os.path.lexists(p):
            raise UsageError("no such file or folder", p)
    if model is not None and checkpoint is None:
        get_entry(model)
    files = collect_sources(paths, recursive=recursive, extensions=exts, files_from=files_from)
    if not files:
        raise UsageError("no video files found in " + (", ".join(paths) or "the list"))
    return files
