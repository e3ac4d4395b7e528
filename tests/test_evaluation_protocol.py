"""Protocols for `avsync evaluate`: the authors' CSV format, make-protocol, named-protocol fetch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers.http_server import FileServer

from sparsesync_cli import clock
from sparsesync_cli.analysis.windows import SPARSESYNC_GEOMETRY, check_window, window_at
from sparsesync_cli.checkpoints.download import ensure_files
from sparsesync_cli.checkpoints.registry import get_entry
from sparsesync_cli.checkpoints.verified import cache_dir, not_cached_error
from sparsesync_cli.errors import DownloadError, NoNetworkError, UsageError
from sparsesync_cli.evaluation import named
from sparsesync_cli.evaluation.named import NamedProtocol, RemoteFile, fetch_named_protocol
from sparsesync_cli.evaluation.protocol import (
    ProtocolItem,
    make_protocol,
    parse_offsets,
    read_protocol,
    resolve_clip,
    write_protocol,
)
from sparsesync_cli.media.decode import MediaReader
from sparsesync_cli.testmedia.synth import Clip, cached_clip

# ---------------------------------------------------------------- the CSV format


def test_reads_the_authors_format_and_writes_it_back(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(
        "path,offset_sec,vstart_sec\npretrain/-MTRxRO5SRA/00002,0.2,2.96\n---g-f_I2yQ_1000_11000,-1.4,0.8\n"
    )
    items = read_protocol(p)
    assert items == [
        ProtocolItem("pretrain/-MTRxRO5SRA/00002", 0.2, 2.96),
        ProtocolItem("---g-f_I2yQ_1000_11000", -1.4, 0.8),
    ]
    out = tmp_path / "out.csv"
    write_protocol(items, out)
    assert read_protocol(out) == items
    assert out.read_text().splitlines()[0] == "path,offset_sec,vstart_sec"


@pytest.mark.parametrize(
    "text, why",
    [
        ("path,offset\nx,1\n", "missing column"),
        ("path,offset_sec,vstart_sec\nx,one,2\n", "line 2"),
        ("path,offset_sec,vstart_sec\n", "no items"),
    ],
)
def test_a_bad_protocol_is_one_line_naming_the_file(tmp_path, text, why):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(UsageError, match=why) as e:
        read_protocol(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_paths_resolve_with_or_without_the_mp4_suffix(tmp_path):
    (tmp_path / "pretrain" / "vid").mkdir(parents=True)
    f = tmp_path / "pretrain" / "vid" / "00001.mp4"
    f.write_bytes(b"x")
    assert resolve_clip(tmp_path, "pretrain/vid/00001") == f
    assert resolve_clip(tmp_path, "pretrain/vid/00001.mp4") == f
    assert resolve_clip(tmp_path, "pretrain/vid/00002") is None


def test_offsets_spec():
    assert parse_offsets("-2:2:0.2") == [round(-2 + 0.2 * i, 6) for i in range(21)]
    assert parse_offsets("-1,0,1") == [-1.0, 0.0, 1.0]
    with pytest.raises(UsageError):
        parse_offsets("2:-2:0.2")


# ---------------------------------------------------------------- make-protocol


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    (root / "long").mkdir()
    (root / "short").mkdir()
    long = cached_clip(root / "long", Clip(duration=8.0)).path
    short = cached_clip(root / "short", Clip(duration=4.0)).path  # shorter than one window
    return long, short


def test_make_protocol_is_reproducible_and_never_leaves_the_file(clips, tmp_path):
    long, short = clips
    offsets = parse_offsets("-2:2:0.2")
    a = make_protocol([long, short], offsets, per_clip=30, seed=7)
    b = make_protocol([long, short], offsets, per_clip=30, seed=7)
    c = make_protocol([long, short], offsets, per_clip=30, seed=8)
    write_protocol(a.items, tmp_path / "a.csv")
    write_protocol(b.items, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert a.items != c.items
    assert len(a.items) == 30 and a.skipped == [(str(short), "too short for a 5 s window at these offsets")]
    with MediaReader(long) as r:
        vspan, aspan = r.video_span, r.audio_span
    for it in a.items:
        w = window_at(it.vstart_sec, it.offset_sec)
        check_window(w, SPARSESYNC_GEOMETRY, vspan, aspan)  # frames inside the video
        assert aspan[0] <= w.sample_start and w.sample_start + clock.SAMPLES_PER_WINDOW <= aspan[1]
        assert it.offset_sec in offsets
    assert len({it.offset_sec for it in a.items}) > 3  # offsets are drawn, not all the same


def test_make_protocol_cli_writes_relative_paths(cli, clips, tmp_path):

    long, _ = clips
    out = tmp_path / "p.csv"
    args = [
        "evaluate",
        "make-protocol",
        str(long),
        "-o",
        str(out),
        "--per-clip",
        "3",
        "--seed",
        "1",
        "--root",
        str(long.parent),
    ]
    r = cli(*args)
    assert r.exit_code == 0, r.output
    items = read_protocol(out)
    assert len(items) == 3 and all(it.path == long.name for it in items)
    r = cli(*args)
    assert r.exit_code == 2 and "--force" in r.output  # never overwrites silently


# ---------------------------------------------------------------- named protocols


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AVSYNC_OFFLINE", raising=False)
    srv = FileServer()
    yield srv
    srv.close()


def _serve(srv: FileServer, tmp_path: Path, name: str, data: bytes) -> RemoteFile:
    f = tmp_path / "served" / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(data)
    srv.files[f"/{name}"] = f
    return RemoteFile(f"{srv.url}/{name}", _sha(data), len(data))


OFFSETS = (
    b"path,offset_sec,vstart_sec\n"
    b"aaaaaaaaaaa_0_10000,0.4,3.44\nbbbbbbbbbbb_1000_11000,-1.2,0.8\nccccccccccc_0_10000,2.0,1.0\n"
)
CLASSES = b"class\tis_sparse\ndog barking\ty\nairplane\tn\nlions roaring\ty\n"
META = b'aaaaaaaaaaa,0,dog barking,test\nbbbbbbbbbbb,1,airplane,test\nccccccccccc,0,"lions roaring",test\n'


def test_vggsound_sparse_selection_joins_classes_and_metadata_at_fetch_time(server, tmp_path, monkeypatch):
    proto = NamedProtocol(
        "mini-sparse",
        "test",
        {
            "offsets": _serve(server, tmp_path, "offsets.csv", OFFSETS),
            "classes": _serve(server, tmp_path, "classes.csv", CLASSES),
            "meta": RemoteFile(_serve(server, tmp_path, "vggsound.csv", META).url, None),  # no published hash
        },
        named.build_vggsound_sparse,
        classes=21,
        items=2,
    )
    built = fetch_named_protocol(proto)
    assert [it.path for it in read_protocol(built)] == ["aaaaaaaaaaa_0_10000", "ccccccccccc_0_10000"]
    n_requests = len(server.requests)
    # Second use: from the cache, verified, no network; also with AVSYNC_OFFLINE and the server gone.
    server.close()
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    assert fetch_named_protocol(proto) == built
    assert len(server.requests) == n_requests


def test_a_file_without_published_hash_may_not_change_after_first_use(server, tmp_path):
    meta = _serve(server, tmp_path, "vggsound.csv", META)
    proto = NamedProtocol(
        "mini",
        "t",
        {
            "offsets": _serve(server, tmp_path, "offsets.csv", OFFSETS),
            "classes": _serve(server, tmp_path, "classes.csv", CLASSES),
            "meta": RemoteFile(meta.url, None),
        },
        named.build_vggsound_sparse,
        classes=21,
        items=2,
    )
    fetch_named_protocol(proto)
    cached = tmp_path / "cache" / "protocols" / "mini" / "vggsound.csv"
    cached.write_bytes(META.replace(b"airplane", b"dog barking"))  # changed behind our back
    (tmp_path / "served" / "vggsound.csv").write_bytes(META.replace(b"airplane", b"dog barking"))
    server._bytes.clear()
    with pytest.raises(DownloadError, match="recorded at its first download"):
        fetch_named_protocol(proto)


def test_split_join_takes_offsets_from_every_csv_like_get_fixed_offsets(server, tmp_path):
    proto = NamedProtocol(
        "mini-lrs3",
        "t",
        {
            "split": _serve(server, tmp_path, "lrs3_test.txt", b"pretrain/v1/00002\npretrain/v1/00001\n"),
            "offsets_test": _serve(
                server, tmp_path, "t.csv", b"path,offset_sec,vstart_sec\npretrain/v1/00001,1.0,2.3\n"
            ),
            "offsets_train": _serve(
                server,
                tmp_path,
                "tr.csv",
                b"path,offset_sec,vstart_sec\npretrain/v1/00002,-1.0,1.9\npretrain/x/1,0.0,1\n",
            ),
        },
        named.build_split_join,
        classes=3,
        items=2,
    )
    items = read_protocol(fetch_named_protocol(proto))
    assert items == [
        ProtocolItem("pretrain/v1/00001", 1.0, 2.3),
        ProtocolItem("pretrain/v1/00002", -1.0, 1.9),
    ]


def test_the_pinned_checksum_refuses_other_content(server, tmp_path, monkeypatch):
    # The real table entry, served from a mirror that has other bytes under the same path.
    url = named.NAMED_PROTOCOLS["lrs3"].files["offsets"].url
    path = "/" + url.split("raw.githubusercontent.com/", 1)[1]
    f = tmp_path / "fake.csv"
    f.write_bytes(OFFSETS + b"x" * (222349 - len(OFFSETS)))  # the right size, other bytes
    server.files[path] = f
    monkeypatch.setenv("AVSYNC_MIRROR", server.url)
    with pytest.raises(DownloadError) as e:
        fetch_named_protocol("lrs3")
    assert "sha256" in str(e.value) and "expected" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "cache" / "protocols" / "lrs3" / "lrs3.csv").exists()


def test_offline_without_cache_and_unknown_names_are_one_line(server, monkeypatch):
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    with pytest.raises(DownloadError, match="not in the cache"):
        fetch_named_protocol("vggsound-sparse")
    with pytest.raises(UsageError, match="lrs3-3cls"):
        fetch_named_protocol("lrs4")


def test_protocol_files_come_by_the_checkpoints_own_download_path(server, tmp_path, monkeypatch):
    """One download path: nothing but the files and their records is left (no .lock), and offline
    a protocol file fails with the same error, worded by the same function, as a checkpoint."""
    served = _serve(server, tmp_path, "offsets.csv", OFFSETS)
    proto = NamedProtocol("mini", "t", {"offsets": served}, named.build_from_offsets, classes=21, items=3)
    fetch_named_protocol(proto)
    folder = tmp_path / "cache" / "protocols" / "mini"
    assert sorted(p.name for p in folder.iterdir()) == [
        "mini.csv",
        "offsets.csv",
        "offsets.csv.verified.json",
    ]

    registry = tmp_path / "registry.toml"
    registry.write_text(
        'schema = 1\n[models.tiny]\nid = "tiny-0"\nfamily = "sparsesync"\nclasses = 21\n'
        f'max_offset_sec = 2.0\n[models.tiny.checkpoint]\nurl = "{server.url}/sync/tiny.pt"\n'
        f'sha256 = "{"0" * 64}"\n[models.tiny.config]\nurl = "{server.url}/sync/cfg-tiny.yaml"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("AVSYNC_REGISTRY", str(registry))
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    requests = len(server.requests)
    other = NamedProtocol("mini2", "t", {"offsets": served}, named.build_from_offsets, classes=21, items=3)
    with pytest.raises(NoNetworkError) as for_protocol:
        fetch_named_protocol(other)
    with pytest.raises(NoNetworkError) as for_checkpoint:
        ensure_files(get_entry("tiny"))
    where, reason = str(cache_dir()), "AVSYNC_OFFLINE"
    assert str(for_protocol.value) == str(
        not_cached_error("protocol mini2", "offsets.csv", where, "avsync evaluate mini2", reason)
    )
    checkpoint_line = not_cached_error("tiny", "cfg-tiny.yaml", where, "avsync download tiny", reason)
    assert str(checkpoint_line) in str(for_checkpoint.value)
    assert len(server.requests) == requests and not (tmp_path / "cache" / "protocols" / "mini2").exists()


def test_a_full_disk_while_fetching_a_protocol_is_the_checkpoints_one_line(server, tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    proto = NamedProtocol(
        "full",
        "t",
        {"offsets": _serve(server, tmp_path, "offsets.csv", OFFSETS)},
        named.build_from_offsets,
        21,
        3,
    )
    folder = tmp_path / "cache" / "protocols" / "full"
    folder.mkdir(parents=True)
    (folder / "offsets.csv.incomplete").symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(DownloadError) as info:
        fetch_named_protocol(proto)
    assert str(info.value) == (
        f"{folder / 'offsets.csv.incomplete'}: no space left on the device (or over quota)"
        " while writing the download"
    )
    assert not list(folder.glob("*.lock"))


def test_the_named_table_pins_one_commit_and_hashes():
    for p in named.NAMED_PROTOCOLS.values():
        for role, rf in p.files.items():
            assert rf.url.startswith(named.RAW_BASE)
            assert rf.sha256 is not None or role == "meta"  # only vggsound.csv is trusted on first use


def test_make_protocol_into_a_missing_folder_is_one_line_and_leaves_nothing(cli, clips, tmp_path):

    long, _ = clips
    out = tmp_path / "no" / "such" / "p.csv"
    r = cli("evaluate", "make-protocol", str(long), "-o", str(out))
    assert r.exit_code == 2 and "cannot write" in r.output and str(out) in r.output
    assert not (tmp_path / "no").exists()
