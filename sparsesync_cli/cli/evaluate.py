"""``avsync evaluate``: a model's accuracy and calibration on a protocol (``evaluate run``, the
default), and drawing a protocol from the user's own in-sync clips (``evaluate make-protocol``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import UsageError
from .common import (
    INTERRUPTED_EXIT,
    ActorsOpt,
    AudioStreamOpt,
    CheckpointOpt,
    ConfigOpt,
    DecoderOpt,
    DecodeWorkersOpt,
    DeviceOpt,
    DownloadBar,
    GpusPerActorOpt,
    ModelOpt,
    PrecisionOpt,
    QuietOpt,
    RayOpt,
    RecursiveOpt,
    ThreadsOpt,
    decoding,
    default_batch,
    err_console,
    load_model,
    model_spec,
    one_line_errors,
    out_console,
    say_interrupted,
)

if TYPE_CHECKING:
    from ..distributed.work import ModelSpec
    from ..evaluation.named import NamedProtocol


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
        typer.Option(
            "--calibration",
            help="Judge the confidences with this calibration applied (default: $AVSYNC_CALIBRATION).",
        ),
    ] = None,
    passes: Annotated[
        int | None,
        typer.Option(
            "--passes",
            min=1,
            help="Randomised passes, as the authors evaluated VGGSound-Sparse (iter_times): each pass "
            "draws every row's offset from the model's classes and its start at random. Default: one "
            "pass over the protocol's own offsets.",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="The draws of --passes come from this seed (default 0).")
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
    decode_workers: DecodeWorkersOpt = None,
    decoder: DecoderOpt = "auto",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """Evaluate a model on PROTOCOL: Acc@1 and @5 (also within +-1 class), mAP, ROC-AUC, d-prime,
    confusion, reliability, ECE, Brier.

    Each item is one 5 s window, exactly `avsync predict PATH --start vstart_sec --shift
    offset_sec --duration 5`. Missing or unreadable clips are counted and listed; exit code 1
    when any failed. A named protocol refuses a model of another class count (exit 2).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..analysis.results import ModelRecord
    from ..distributed.runner import RayRunner
    from ..evaluation import calibration as cal_mod
    from ..evaluation.metrics import compute_metrics
    from ..evaluation.named import NAMED_PROTOCOLS, fetch_named_protocol, is_named
    from ..evaluation.passes import pass_items
    from ..evaluation.protocol import read_protocol
    from ..evaluation.run import run_protocol

    err = err_console()
    with one_line_errors():
        workers = decoding(decode_workers, decoder, device, ray)
        if seed is not None and passes is None:
            raise UsageError("--seed goes with --passes (the protocol's own offsets need no seed)")
        spec = model_spec(model, checkpoint, config, device, precision, threads)
        named = NAMED_PROTOCOLS[protocol] if is_named(protocol) else None
        if named is not None:  # before anything slow: a model of another class count is refused
            _check_named_model(named, spec)
        with DownloadBar() as bar:
            csv_path = fetch_named_protocol(named, progress=bar.update) if named else Path(protocol)
        items = read_protocol(csv_path)
        if passes is not None:
            items = pass_items(items, passes, seed or 0)
        cal_path = cal_mod.calibration_path(calibration)
        cal = cal_mod.load_calibration(cal_path) if cal_path is not None else None
        runner = None
        if ray is not None:  # items run on Ray; this process loads the model on its CPU for its facts
            runner = RayRunner(
                ray, spec, actors=actors, num_gpus_per_actor=num_gpus_per_actor, batch_size=batch_size
            )
        sync_model = load_model(replace(spec, device="cpu") if ray else spec)
        if cal is not None:
            cal_mod.check_model(cal, sync_model.setup)
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
                decode_workers=workers,
            )
        if resumed:
            err.print(f"avsync: {resumed} item(s) taken from {jsonl}", markup=False)
        metrics = compute_metrics(records, sync_model.grid, temperature=cal.temperature if cal else 1.0)
        # the published value of this model if there is one, else every one published for the protocol
        published = named.published if named else {}
        mine = {k: v for k, v in published.items() if k == sync_model.setup.name}
        metrics = {
            **metrics,
            "protocol": protocol,
            "model": ModelRecord.of(sync_model.setup).to_dict(),
            "calibration": cal.summary() if cal else None,
            "published_acc1": mine or published,
        }
        if fit_calibration is not None:
            fitted = cal_mod.fit_calibration(records, sync_model.setup)
            cal_mod.save_calibration(fitted, fit_calibration)
            metrics["fitted_calibration"] = {"file": str(fit_calibration), **fitted.to_dict()}
        if report is not None:
            from ..evaluation.page import write_evaluation_html

            settings = {"model": sync_model.setup.name, "root": str(root)}
            write_evaluation_html(
                report, metrics, records, title=f"avsync evaluation: {protocol}",
                published=metrics["published_acc1"], settings=settings,
            )  # fmt: skip
            err.print(f"avsync: wrote {report}", markup=False)
    _print_evaluation(metrics, as_json)
    if metrics["n_failed"]:
        raise typer.Exit(1)


def _check_named_model(named: NamedProtocol, spec: ModelSpec) -> None:
    """Refuse a model whose class count is not the named protocol's, without loading it."""
    from ..checkpoints.registry import default_model_name
    from ..evaluation.guard import check_protocol_model, model_classes

    label = spec.checkpoint if spec.checkpoint is not None else (spec.name or default_model_name())
    check_protocol_model(named, model_classes(spec.name, spec.checkpoint, spec.config), label)


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
    for w in m.get("warnings") or []:
        err_console().print(f"avsync: warning: {w}", markup=False, soft_wrap=True)
    if as_json:
        out.out(json.dumps(m), highlight=False)
        return

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f} %"

    lines = [
        f"{m['protocol']}: {m['n']} item(s) evaluated, {m['n_failed']} failed, model {m['model']['name']}",
        f"  Acc@1 {pct(m['acc1'])}, within +-1 class {pct(m['acc1_pm1'])}, "
        f"mean |offset error| {m['mean_abs_offset_error_sec'] if m['n'] else 'n/a'} s",
        f"  Acc@5 {pct(m['acc5'])}, within +-1 class {pct(m['acc5_pm1'])}; "
        f"mAP {m['map']}, ROC-AUC {m['roc_auc']}, d' {m['dprime']}",
        f"  ECE {m['ece']}, Brier {m['brier']} (temperature {m['temperature']})",
    ]
    if m.get("passes"):
        per = ", ".join(pct(x) for x in m["acc1_per_pass"])
        lines.append(
            f"  {m['passes']} randomised pass(es), seed {m['seed']}: Acc@1 per pass {per} "
            f"(std {m['acc1_per_pass_std']})"
        )
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
