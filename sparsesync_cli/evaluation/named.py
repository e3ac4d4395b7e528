"""The authors' published test protocols, fetched on first use, verified, cached, offline-safe.

Each named protocol is built from files of github v-iashin/SparseSync pinned to one commit
(``SPARSESYNC_COMMIT``), each checked against its sha256 (``vggsound.csv``, the VGGSound
metadata that labels the clips, is not in the archive this was built from: its sha256 is
recorded at the first verified download and enforced afterwards). The files go to
``<cache>/protocols/<name>/`` and the built protocol CSV next to them; a second use needs no
network, and ``AVSYNC_OFFLINE=1`` never touches it. ``AVSYNC_MIRROR`` serves them from another
host like checkpoints.

How each protocol reproduces the authors' test set (``dataset/lrs.py``, ``dataset/vggsound.py``,
``dataset/dataset_utils.get_fixed_offsets``): the items are the clips of the test split, each
with the fixed ``offset_sec``/``vstart_sec`` of the CSV for the model's class count and the 5 s
crop; the offsets are looked up in the train, valid and test CSVs together, as
``get_fixed_offsets`` globs them (the 3-class LRS3 CSVs were made on an earlier split: most test
clips' offsets are in the train and valid CSVs). VGGSound-Sparse keeps the test clips whose
VGGSound label (``vggsound.csv``, by YouTube id) is one of the 12 classes marked ``y`` in
``picked_sparse_classes.csv`` (``VGGSoundSparse``/``VGGSoundSparsePicked``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DownloadError, UsageError
from .protocol import ProtocolItem, parse_protocol, protocol_text, write_text_atomic

if TYPE_CHECKING:
    from ..checkpoints.fetch import DownloadOptions

SPARSESYNC_COMMIT = "a5bee8a047c0ebeec66b18d4ddf4c5f0ef098a4f"
RAW_BASE = f"https://raw.githubusercontent.com/v-iashin/SparseSync/{SPARSESYNC_COMMIT}/"


@dataclass(frozen=True)
class RemoteFile:
    """One input file of a protocol: where it is and what it must hash to (None: trust on first use)."""

    url: str
    sha256: str | None
    size: int | None = None


@dataclass(frozen=True)
class NamedProtocol:
    """A protocol built from remote files by ``build(paths by role) -> items``."""

    name: str
    description: str
    files: dict[str, RemoteFile]
    build: Callable[[dict[str, Path]], list[ProtocolItem]]
    classes: int
    items: int | None  # the count the pinned files give (None: depends on vggsound.csv)
    published: dict[str, float] = field(default_factory=dict)  # model name -> published acc1 (%)
    dataset: str = ""


def _raw(path: str, sha256: str | None, size: int | None) -> RemoteFile:
    return RemoteFile(RAW_BASE + path, sha256, size)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def build_from_offsets(paths: dict[str, Path]) -> list[ProtocolItem]:
    """All rows of the ``offsets`` CSV."""
    return parse_protocol(_read_text(paths["offsets"]), source=os.fspath(paths["offsets"]))


def build_split_join(paths: dict[str, Path]) -> list[ProtocolItem]:
    """The clips of the ``split`` list, with offsets from every ``offsets*`` CSV (one table)."""
    table: dict[str, ProtocolItem] = {}
    for role in sorted(r for r in paths if r.startswith("offsets")):
        for it in parse_protocol(_read_text(paths[role]), source=os.fspath(paths[role])):
            table.setdefault(it.path, it)
    items = []
    for clip in sorted(_read_text(paths["split"]).split()):
        if clip not in table:
            raise DownloadError(f"clip {clip} of the test split has no fixed offset", paths["split"])
        items.append(table[clip])
    return items


def sparse_classes(text: str) -> set[str]:
    """Class names marked ``y`` in the tab-separated ``picked_sparse_classes.csv``."""
    return {row[0] for row in csv.reader(io.StringIO(text), delimiter="\t") if len(row) > 1 and row[1] == "y"}


def vggsound_labels(text: str) -> dict[str, str]:
    """YouTube id -> label from VGGSound's ``vggsound.csv`` (``id,start,label,split``)."""
    return {row[0]: row[2] for row in csv.reader(io.StringIO(text), quotechar='"') if len(row) >= 3}


def build_vggsound_sparse(paths: dict[str, Path]) -> list[ProtocolItem]:
    """Test items whose clip (``<id>_<start>_<end>``, id = first 11 characters) has a sparse label."""
    keep = sparse_classes(_read_text(paths["classes"]))
    labels = vggsound_labels(_read_text(paths["meta"]))
    items = build_from_offsets(paths)
    return [it for it in items if labels.get(it.path[:11]) in keep]


_LRS3_21 = "data/fixed_offsets_lrs3/test_size21_crop5_min-2.00_max2.00.csv"
_VGG_21 = "data/fixed_offsets_vggsound/test_size21_crop5_min-2.00_max2.00.csv"
_VGG_3 = "data/fixed_offsets_vggsound/test_size3_crop5_min-1.00_max1.00.csv"
_LRS3_SPLIT = _raw(
    "data/lrs3_test.txt", "1b55367312cabd90a2cecbe22779ecc98952fad157d328b803882a4884088df9", 161082
)
_CLASSES = _raw(
    "data/picked_sparse_classes.csv", "d03a7d73d88e309995ef13c135c896367e666873aaaf2e135f8ffe39424e103e", 6020
)
_META = _raw("data/vggsound.csv", None, None)

NAMED_PROTOCOLS: dict[str, NamedProtocol] = {
    p.name: p
    for p in [
        NamedProtocol(
            "lrs3",
            "LRS3 ('No Face Crop') test, 21 classes (-2..+2 s), 5 s crop",
            {
                "offsets": _raw(
                    _LRS3_21, "f0c730466836f4dd5b9144ac45c25c09eaebe69bb204ededca30f4462fad415e", 222349
                )
            },
            build_from_offsets,
            classes=21,
            items=5966,
            published={"sparsesync-lrs3": 96.9},
            dataset="lrs3",
        ),
        NamedProtocol(
            "lrs3-3cls",
            "LRS3 ('No Face Crop') test, 3 classes (-1, 0, +1 s), 5 s crop",
            {
                "split": _LRS3_SPLIT,
                "offsets_test": _raw(
                    "data/fixed_offsets_lrs3/test_size3_crop5_min-1.00_max1.00.csv",
                    "53a90e86fba2a45a8df9c2bf6c264a7ba91bd2f3a91b787e99602b108a06ad1e",
                    204216,
                ),
                "offsets_train": _raw(
                    "data/fixed_offsets_lrs3/train_size3_crop5_min-1.00_max1.00.csv",
                    "516d5e8a0c4f5085692a383358a99a15ef7afbec1278ca1ab9850e09ceceaca0",
                    1674171,
                ),
                "offsets_valid": _raw(
                    "data/fixed_offsets_lrs3/valid_size3_crop5_min-1.00_max1.00.csv",
                    "e828531b54a9073e969429a44d103462cbef7c8ec51e331cebd75d422f046b24",
                    208961,
                ),
            },
            build_split_join,
            classes=3,
            items=5966,
            published={"sparsesync-lrs3-3cls": 95.5},
            dataset="lrs3",
        ),
        NamedProtocol(
            "vggsound-sparse",
            "VGGSound-Sparse test (12 sparse classes), 21 classes (-2..+2 s), 5 s crop",
            {
                "offsets": _raw(
                    _VGG_21, "697313eadc65b91c07d76b33a3402b950f027e5ffc782d38f188e56263cc81d4", 487285
                ),
                "classes": _CLASSES,
                "meta": _META,
            },
            build_vggsound_sparse,
            classes=21,
            items=None,
            published={
                "sparsesync-vggsound-sparse": 44.3,
                "sparsesync-vggsound": 51.2,
                "sparsesync-audioset": 56.7,
            },
            dataset="vggsound",
        ),
        NamedProtocol(
            "vggsound-sparse-3cls",
            "VGGSound-Sparse test (12 sparse classes), 3 classes (-1, 0, +1 s), 5 s crop",
            {
                "offsets": _raw(
                    _VGG_3, "4f0c3a9c03c5329f98e3e7404f5e82953befaa97f65759f4aa93bec9d40e569e", 474100
                ),
                "classes": _CLASSES,
                "meta": _META,
            },
            build_vggsound_sparse,
            classes=3,
            items=None,
            published={"sparsesync-vggsound-sparse-3cls": 60.3},
            dataset="vggsound",
        ),
        NamedProtocol(
            "vggsound",
            "VGGSound test (all classes), 21 classes (-2..+2 s), 5 s crop",
            {
                "offsets": _raw(
                    _VGG_21, "697313eadc65b91c07d76b33a3402b950f027e5ffc782d38f188e56263cc81d4", 487285
                )
            },
            build_from_offsets,
            classes=21,
            items=14022,
            published={},
            dataset="vggsound",
        ),
    ]
}


def is_named(spec: str) -> bool:
    """Whether ``spec`` names a known protocol (a file of that name takes precedence)."""
    return spec in NAMED_PROTOCOLS and not Path(spec).exists()


def protocols_dir() -> Path:
    from ..checkpoints.verified import cache_dir

    return cache_dir() / "protocols"


def fetch_named_protocol(
    proto: NamedProtocol | str,
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
    options: DownloadOptions | None = None,
) -> Path:
    """The built protocol CSV of ``proto``, fetching and verifying its files on first use.

    Raises :class:`UsageError` for an unknown name (listing the known ones) and
    :class:`DownloadError` (one line) when a file cannot be fetched or does not match.
    """
    if isinstance(proto, str):
        if proto not in NAMED_PROTOCOLS:
            raise UsageError(
                f"unknown protocol {proto!r}; known: {', '.join(NAMED_PROTOCOLS)} (or a CSV file)"
            )
        proto = NAMED_PROTOCOLS[proto]
    folder = protocols_dir() / proto.name
    built = folder / f"{proto.name}.csv"
    paths = {role: _ensure(folder, proto.name, rf, progress, options) for role, rf in proto.files.items()}
    if built.is_file() and all(built.stat().st_mtime_ns >= p.stat().st_mtime_ns for p in paths.values()):
        return built
    items = proto.build(paths)
    if not items:
        raise DownloadError(f"protocol {proto.name}: the selection is empty", folder)
    try:
        write_text_atomic(built, protocol_text(items))
    except UsageError as e:
        raise DownloadError(str(e)) from None
    return built


def _ensure(
    folder: Path,
    name: str,
    rf: RemoteFile,
    progress: Callable[[str, int, int | None], None] | None,
    options: DownloadOptions | None,
) -> Path:
    """A verified local copy of ``rf`` in ``folder``, by the checkpoints' own download path.

    Without a published sha256 the one recorded at the first download is kept: a later copy
    that differs is refused, never silently accepted.
    """
    from ..checkpoints.registry import Source
    from ..checkpoints.verified import ensure_verified_file

    return ensure_verified_file(
        Source(url=rf.url, sha256=rf.sha256, size=rf.size),
        folder,
        owner=f"protocol {name}",
        fetch_command=f"avsync evaluate {name}",
        progress=progress,
        options=options,
    )
