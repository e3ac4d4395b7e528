"""``avsync score``: DeSync of generated videos, as av-benchmark computes it and over whole files."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

import typer

from ..errors import UsageError
from .common import (
    ActorsOpt,
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
    PrecisionOpt,
    RayOpt,
    RecursiveOpt,
    SampleOpt,
    ThreadsOpt,
    calibrate,
    collect_inputs,
    decoding,
    default_batch,
    load_model,
    model_spec,
    no_auto_sample_on_ray,
    on_error,
    one_line_errors,
    out_console,
    sampling,
    shown,
)

DESYNC_MODEL = "synchformer-audioset"  # the checkpoint av-benchmark's DeSync uses (24-01-04T16-39-21)


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
    recursive: RecursiveOpt = False,
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
    decode_workers: DecodeWorkersOpt = None,
    decoder: DecoderOpt = "auto",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """DeSync (mean absolute offset, seconds; lower is better) of generated videos, with Synchformer.

    desync_av_benchmark follows hkchengrex/av-benchmark: the first and the last 4.8 s of each
    clip, 21-class argmax, mean |offset|, averaged over files. desync_windows and
    desync_aggregated look at the whole file. Cite which one you report.
    """
    from ..analysis.desync import score_files, summarize
    from ..analysis.predict import VIDEO_EXTENSIONS
    from ..distributed.runner import RayRunner

    out = out_console()
    with one_line_errors():
        workers = decoding(decode_workers, decoder, device, ray, sample)
        files = collect_inputs(paths, recursive, VIDEO_EXTENSIONS, model, checkpoint, files_from, ray)
        try:
            score_sampling = sampling(sample, min_windows, max_windows)
        except ValueError as e:
            raise UsageError(str(e)) from None
        no_auto_sample_on_ray(ray, sample)
        if model is None and checkpoint is None:
            model = DESYNC_MODEL
        spec = model_spec(model, checkpoint, config, device, precision, threads)
        runner = (
            RayRunner(ray, spec, actors=actors, num_gpus_per_actor=num_gpus_per_actor, batch_size=batch_size)
            if ray
            else None
        )
        sync_model = load_model(replace(spec, device="cpu") if ray else spec)
        calibrate(sync_model, calibration)
        batch_size = batch_size or default_batch(sync_model)
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
                on_error=on_error,
                sampling=score_sampling,
                decode_workers=workers,
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
                    f"{shown(r.path)}: DeSync {r.desync_av_benchmark:.3f} s "
                    f"(first {r.first_offset_sec:+.1f}, "
                    f"last {r.last_offset_sec:+.1f}){whole}",
                    markup=False,
                    soft_wrap=True,
                )
            else:
                out.print(f"{shown(r.path)}: FAILED: {shown(r.error or '')}", markup=False, soft_wrap=True)
    summary = summarize(results)
    if sync_model.setup.calibration is not None:
        summary["calibration"] = sync_model.setup.calibration  # which temperature the windows had
    if as_json:
        out.out(json.dumps({"summary": summary}), highlight=False)
    else:

        def fmt(x: float | None) -> str:
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
