"""``avsync models`` (what is known, cached, and under which terms) and ``avsync download``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .common import DownloadBar, one_line_errors, out_console


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """List the models avsync knows, whether they are cached, and their terms."""
    from rich.table import Table

    from ..checkpoints.download import model_status
    from ..checkpoints.registry import default_model_name, load_registry

    with one_line_errors():
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
    out = out_console()
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


def download(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to fetch (default: the default model).")
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Fetch every model in the registry.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash files already in the cache.")] = False,
) -> None:
    """Download and verify checkpoints into the cache, for offline use later."""
    from ..checkpoints.download import ensure_files
    from ..checkpoints.registry import default_model_name, get_entry, load_registry

    out = out_console()
    with one_line_errors():
        wanted = list(load_registry()) if all_models else (names or [default_model_name()])
        entries = [get_entry(n) for n in wanted]
        with DownloadBar() as bar:
            for entry in entries:
                files = ensure_files(entry, progress=bar.update, verify=verify)
                out.print(f"{entry.name}: {files.checkpoint}", markup=False, soft_wrap=True)
