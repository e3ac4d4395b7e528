"""``avsync evaluate``: a model's accuracy and calibration on a protocol (``evaluate run``, the
default), and drawing a protocol from the user's own in-sync clips (``evaluate make-protocol``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import UsageError
from .common import (
    INTERRUPTED_EXIT,
    ActorsOpt,
    AudioStreamOpt,
    CheckpointOpt,
    ConfigOpt,
    DeviceOpt,
    DownloadBar,
    GpusPerActorOpt,
    ModelOpt,
    PrecisionOpt,
    QuietOpt,
    RayOpt,
    RecursiveOpt,
    ThreadsOpt,
    default_batch,
    err_console,
    load_model,
    model_spec,
    one_line_errors,
    out_console,
    say_interrupted,
)


class _DefaultRunGroup(TyperGroup):
    """`avsync evaluate PROTOCOL ...` runs `evaluate run`; `avsync evaluate make-protocol` is a command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
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
    quiet: QuietOpt = False,
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

    from ..distributed.runner import RayRunner
    from ..evaluation import calibration as cal_mod
    from ..evaluation.metrics import compute_metrics
    from ..evaluation.named import NAMED_PROTOCOLS, fetch_named_protocol, is_named
    from ..evaluation.protocol import read_protocol
    from ..evaluation.run import run_protocol

    err = err_console()
    with one_line_errors():
        named = NAMED_PROTOCOLS[protocol] if is_named(protocol) else None
        with DownloadBar() as bar:
            csv_path = fetch_named_protocol(named, progress=bar.update) if named else Path(protocol)
        items = read_protocol(csv_path)
        cal = cal_mod.load_calibration(calibration) if calibration is not None else None
        spec = model_spec(model, checkpoint, config, device, precision, threads)
        runner = None
        if ray is not None:  # items run on Ray; this process loads the model on its CPU for its facts
            runner = RayRunner(
                ray, spec, actors=actors, num_gpus_per_actor=num_gpus_per_actor, batch_size=batch_size
            )
        sync_model = load_model(replace(spec, device="cpu") if ray else spec)
        if cal is not None:
            cal_mod.check_model(cal, sync_model.info)
        progress = Progress(
            TextColumn("items"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err, transient=True, disable=quiet or not err.is_terminal,
        )  # fmt: skip
        task = progress.add_task("items", total=len(items))
        batch = batch_size or default_batch(sync_model)

        counts = [0, len(items)]  # items of this run done, to do (resumed ones are not run)

        def on_item(done: int, total: int) -> None:
            counts[:] = [done, total]
            progress.update(task, completed=done, total=total)

        with _interrupt_says(counts, jsonl), progress:
            records, resumed = run_protocol(
                items,
                sync_model,
                root,
                jsonl=jsonl,
                batch_size=batch,
                audio_stream=audio_stream,
                on_item=on_item,
                runner=runner.evaluate(sync_model, root, audio_stream) if runner else None,
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
            from ..evaluation.report import write_evaluation_html

            settings = {"model": sync_model.info.name, "root": str(root)}
            write_evaluation_html(
                report, metrics, records, title=f"avsync evaluation: {protocol}",
                published=metrics["published_acc1"], settings=settings,
            )  # fmt: skip
            err.print(f"avsync: wrote {report}", markup=False)
    _print_evaluation(metrics, as_json)
    if metrics["n_failed"]:
        raise typer.Exit(1)


@contextmanager
def _interrupt_says(counts: list[int], jsonl: Path | None) -> Iterator[None]:
    """Ctrl-C: one line (the items' records are in the JSONL as they finished), exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        say_interrupted(
            f"{counts[0]} of {counts[1]} item(s) evaluated",
            [jsonl] if jsonl is not None else [],
            f"the same command resumes from {jsonl}"
            if jsonl is not None
            else "a re-run starts over (--jsonl FILE makes an evaluation resumable)",
        )
        raise typer.Exit(INTERRUPTED_EXIT) from None


def _print_evaluation(m: dict[str, Any], as_json: bool) -> None:
    out = out_console()
    if as_json:
        out.out(json.dumps(m), highlight=False)
        return

    def pct(x: float | None) -> str:
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
    recursive: RecursiveOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
) -> None:
    """Draw a reproducible protocol of (clip, start, offset) items from clips that are in sync.

    Items whose window (audio included) would leave the file are never drawn; clips too short
    for any offset are skipped and listed.
    """
    from ..analysis.predict import collect_media_files
    from ..evaluation.protocol import make_protocol, parse_offsets, write_protocol

    err = err_console()
    with one_line_errors():
        if output.exists() and not force:
            raise UsageError(f"{output} exists (use --force to overwrite it)")
        files = collect_media_files(clips, recursive=recursive)
        drawn = make_protocol(files, parse_offsets(offsets), per_clip=per_clip, seed=seed, root=root)
        for name, why in drawn.skipped:
            err.print(f"avsync: skipped {name}: {why}", markup=False, soft_wrap=True)
        if not drawn.items:
            raise UsageError("no clip is long enough for a 5 s window at these offsets; nothing written")
        write_protocol(drawn.items, output)
    err.print(
        f"avsync: wrote {output} ({len(drawn.items)} item(s) from {len(files) - len(drawn.skipped)} clip(s))",
        markup=False,
    )
