"""Downloads against a real HTTP server on 127.0.0.1 (never another address), and the HF cache offline."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.http_server import FileServer
from helpers.hub_cache import make_hub_cache

from sparsesync_cli.checkpoints.download import (
    DownloadOptions,
    cache_dir,
    ensure_files,
    hub_progress_class,
    mirrored_url,
    model_cache_dir,
    model_status,
)
from sparsesync_cli.checkpoints.registry import get_entry
from sparsesync_cli.errors import DownloadError

REPO = Path(__file__).resolve().parents[1]
CKPT_PATH = "/sync/sync_models/tiny-0/tiny_sparsesync.pt"
CFG_PATH = "/sync/sync_models/tiny-0/cfg-tiny_sparsesync.yaml"
FAST = DownloadOptions(timeout_s=2.0, retries=3, backoff_s=0.01, max_backoff_s=0.05)
HUB_REPO, HUB_FILE, HUB_REV = (
    "org-a/sync-weights",
    "ext_weights/synchformer_state_dict.pth",
    "c0ffee" * 6 + "beef",
)
ENV = ("AVSYNC_CACHE_DIR", "AVSYNC_OFFLINE", "AVSYNC_MIRROR", "AVSYNC_REGISTRY", "XDG_CACHE_HOME")
HF_ENV = ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME")


def sha256_md5(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


@pytest.fixture(scope="session")
def tiny(shared_dir):
    """The tiny SparseSync checkpoint and config, with their checksums computed here."""
    ckpt = shared_dir / "fixtures/sparsesync/tiny_sparsesync.pt"
    cfg = shared_dir / "fixtures/sparsesync/cfg-tiny_sparsesync.yaml"
    sha, md5 = sha256_md5(ckpt)
    return {"ckpt": ckpt, "cfg": cfg, "sha256": sha, "md5": md5, "size": ckpt.stat().st_size}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for name in ENV + HF_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def server(tiny):
    srv = FileServer()
    srv.files = {CKPT_PATH: tiny["ckpt"], CFG_PATH: tiny["cfg"]}
    yield srv
    srv.close()


def register(tmp_path, monkeypatch, base: str, checks: str, name: str = "tiny") -> None:
    """A registry entry made by the test, pointing at ``base`` + the fixture paths."""
    text = f"""schema = 1
[models.{name}]
id = "tiny-0"
family = "sparsesync"
classes = 21
max_offset_sec = 2.0

[models.{name}.checkpoint]
url = "{base}{CKPT_PATH}"
{checks}

[models.{name}.config]
url = "{base}{CFG_PATH}"
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("AVSYNC_REGISTRY", str(path))


@pytest.fixture
def entry(tmp_path, monkeypatch, server, tiny):
    register(tmp_path, monkeypatch, server.url, f'sha256 = "{tiny["sha256"]}"\nsize = {tiny["size"]}')
    return get_entry("tiny")


@pytest.fixture
def small(tmp_path, monkeypatch, server, tiny):
    """For tests of the protocol, not the payload: a 3 MiB file in place of the checkpoint."""
    blob = tmp_path / "small.pt"
    blob.write_bytes(os.urandom(3 * 1024 * 1024))
    server.files[CKPT_PATH] = blob
    sha, md5 = sha256_md5(blob)
    register(tmp_path, monkeypatch, server.url, f'sha256 = "{sha}"')
    return {"entry": get_entry("tiny"), "blob": blob, "sha256": sha, "md5": md5, "size": blob.stat().st_size}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.incomplete")) if folder.exists() else []


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("AVSYNC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "avsync"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "avsync"


def test_download_verifies_caches_and_then_needs_no_network(entry, server, tiny):
    calls = []
    files = ensure_files(entry, progress=lambda *a: calls.append(a), options=FAST)
    assert files.checkpoint == model_cache_dir(entry) / "tiny_sparsesync.pt"
    assert sha256_md5(files.checkpoint)[0] == tiny["sha256"]
    assert files.config is not None and files.config.read_bytes() == tiny["cfg"].read_bytes()
    # Progress: per file, from 0 up to the total, never backwards.
    ckpt_calls = [(d, t) for n, d, t in calls if n == "tiny_sparsesync.pt"]
    assert ckpt_calls[0] == (0, tiny["size"]) and ckpt_calls[-1] == (tiny["size"], tiny["size"])
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(ckpt_calls))
    assert any(n == "cfg-tiny_sparsesync.yaml" for n, _, _ in calls)
    # The full sha256 is recorded next to each file, the config's too (it has no published checksum).
    rec = json.loads((model_cache_dir(entry) / "tiny_sparsesync.pt.verified.json").read_text())
    assert rec["sha256"] == tiny["sha256"] and rec["md5"] == tiny["md5"]
    assert (model_cache_dir(entry) / "cfg-tiny_sparsesync.yaml.verified.json").is_file()
    assert leftovers(model_cache_dir(entry)) == []
    assert model_status(entry) == (True, tiny["size"] + tiny["cfg"].stat().st_size)

    server.close()  # from now on there is no server at all
    again = ensure_files(entry, options=FAST)
    assert again == files
    assert ensure_files(entry, options=FAST, verify=True) == files  # full re-hash, still no network


def test_model_status_before_download_gives_the_expected_size(entry, tiny):
    assert model_status(entry) == (False, tiny["size"])
    assert model_status(get_entry("sparsesync-audioset")) == (False, None)  # size not published


def test_http_404_is_one_line_with_url_and_status(tmp_path, monkeypatch, server, entry):
    server.switches.not_found.add(CKPT_PATH)
    with pytest.raises(DownloadError) as info:
        ensure_files(entry, options=FAST)
    msg = str(info.value)
    assert msg == f"{server.url}{CKPT_PATH}: HTTP 404 Not Found"
    assert not (model_cache_dir(entry) / "tiny_sparsesync.pt").exists()
    assert leftovers(model_cache_dir(entry)) == []
    assert len(server.requests_for(CKPT_PATH)) == 1  # a 404 is not retried


def test_interrupted_transfer_resumes_with_range(entry, server, tiny):
    cut = 10 * 1024 * 1024
    server.switches.cut_after[CKPT_PATH] = (cut, 1)
    files = ensure_files(entry, options=FAST)
    assert server.requests_for(CKPT_PATH) == [None, f"bytes={cut}-"]
    assert files.checkpoint.read_bytes() == tiny["ckpt"].read_bytes()
    assert leftovers(model_cache_dir(entry)) == []


def test_leftover_incomplete_of_an_earlier_run_is_resumed(entry, server, tiny):
    folder = model_cache_dir(entry)
    folder.mkdir(parents=True)
    head = 5 * 1024 * 1024
    with open(tiny["ckpt"], "rb") as f:
        (folder / "tiny_sparsesync.pt.incomplete").write_bytes(f.read(head))
    seen = []
    files = ensure_files(entry, progress=lambda n, d, t: seen.append(d) if n.endswith(".pt") else None)
    assert server.requests_for(CKPT_PATH) == [f"bytes={head}-"]
    assert seen[0] == head  # progress starts where the earlier run stopped
    assert files.checkpoint.read_bytes() == tiny["ckpt"].read_bytes()


def test_a_server_that_ignores_range_is_read_from_the_start(entry, server, tiny):
    folder = model_cache_dir(entry)
    folder.mkdir(parents=True)
    (folder / "tiny_sparsesync.pt.incomplete").write_bytes(tiny["ckpt"].read_bytes()[:1000])
    server.switches.ignore_range = True
    files = ensure_files(entry, options=FAST)
    assert files.checkpoint.read_bytes() == tiny["ckpt"].read_bytes()


def test_checksum_mismatch_deletes_the_download_and_says_so(entry, server):
    server.switches.corrupt.add(CKPT_PATH)
    with pytest.raises(
        DownloadError, match=r"checksum mismatch \(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\);"
    ):
        ensure_files(entry, options=FAST)
    folder = model_cache_dir(entry)
    assert not (folder / "tiny_sparsesync.pt").exists() and leftovers(folder) == []
    assert model_status(entry).cached is False


def test_a_resumed_download_that_fails_the_check_is_fetched_whole_once_more(entry, server, tiny):
    folder = model_cache_dir(entry)
    folder.mkdir(parents=True)
    (folder / "tiny_sparsesync.pt.incomplete").write_bytes(b"\0" * 4096)  # not a prefix of the file
    files = ensure_files(entry, options=FAST)
    assert server.requests_for(CKPT_PATH) == ["bytes=4096-", None]
    assert files.checkpoint.read_bytes() == tiny["ckpt"].read_bytes()


def test_md5_prefix_alone_is_trusted_and_the_sha256_recorded(tmp_path, monkeypatch, server, small):
    register(tmp_path, monkeypatch, server.url, f'md5 = "{small["md5"][:7]}"')
    entry = get_entry("tiny")
    files = ensure_files(entry, options=FAST)
    rec = json.loads((model_cache_dir(entry) / "tiny_sparsesync.pt.verified.json").read_text())
    assert rec["sha256"] == small["sha256"]
    # Later loads are held to that sha256: change one byte (same size) and it is caught.
    data = bytearray(files.checkpoint.read_bytes())
    data[100] ^= 1
    files.checkpoint.write_bytes(bytes(data))
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    with pytest.raises(DownloadError, match="the cached file does not match"):
        ensure_files(entry, options=FAST)
    assert not files.checkpoint.exists()


def test_the_config_is_pinned_to_its_first_download(small, monkeypatch):
    files = ensure_files(small["entry"], options=FAST)
    assert files.config is not None
    files.config.write_text(files.config.read_text() + "\n# edited\n")
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"was recorded at its first download.*unset AVSYNC_OFFLINE"):
        ensure_files(small["entry"], options=FAST)


def test_a_corrupted_cached_file_is_replaced_when_online(small, server):
    files = ensure_files(small["entry"], options=FAST)
    files.checkpoint.write_bytes(b"garbage")
    assert ensure_files(small["entry"], options=FAST).checkpoint.read_bytes() == small["blob"].read_bytes()
    assert len(server.requests_for(CKPT_PATH)) == 2


def test_busy_server_is_retried_with_backoff(small, server):
    server.switches.status[CKPT_PATH] = (503, 2)
    files = ensure_files(small["entry"], options=FAST)
    assert len(server.requests_for(CKPT_PATH)) == 3
    assert files.checkpoint.read_bytes() == small["blob"].read_bytes()


def test_a_stalled_server_times_out_and_the_error_says_so(small, server):
    server.switches.delay[CFG_PATH] = (1.0, -1)
    opts = DownloadOptions(timeout_s=0.1, retries=2, backoff_s=0.01)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"cfg-tiny_sparsesync\.yaml: .*gave up after 2 retries"):
        ensure_files(small["entry"], options=opts)
    assert time.monotonic() - t0 < 5
    assert len(server.requests_for(CFG_PATH)) == 3


def test_one_slow_answer_is_retried(small, server, tiny):
    server.switches.delay[CFG_PATH] = (1.0, 1)
    files = ensure_files(small["entry"], options=DownloadOptions(timeout_s=0.3, retries=2, backoff_s=0.01))
    assert files.config is not None and files.config.read_bytes() == tiny["cfg"].read_bytes()


def test_offline_without_cache_fails_clearly_and_touches_no_network(entry, server, monkeypatch):
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    with pytest.raises(DownloadError) as info:
        ensure_files(entry, options=FAST)
    msg = str(info.value)
    assert f"not in the cache {cache_dir()}" in msg
    assert "run `avsync download tiny` on a machine with internet, or unset AVSYNC_OFFLINE" in msg
    assert server.requests == []


def test_mirror_replaces_the_origin_and_keeps_the_path_after_sync(tmp_path, monkeypatch, server, tiny):
    # The registry names the authors' server; the mirror (our 127.0.0.1 server) is all that is contacted.
    register(tmp_path, monkeypatch, "https://a3s.fi/swift/v1/AUTH_x", f'sha256 = "{tiny["sha256"]}"')
    server.files = {"/mirror/sync_models/tiny-0/tiny_sparsesync.pt": tiny["ckpt"]}
    server.files["/mirror/sync_models/tiny-0/cfg-tiny_sparsesync.yaml"] = tiny["cfg"]
    monkeypatch.setenv("AVSYNC_MIRROR", f"{server.url}/mirror/")
    files = ensure_files(get_entry("tiny"), options=FAST)
    assert sha256_md5(files.checkpoint)[0] == tiny["sha256"]
    assert [p for p, _ in server.requests] == [
        "/mirror/sync_models/tiny-0/cfg-tiny_sparsesync.yaml",
        "/mirror/sync_models/tiny-0/tiny_sparsesync.pt",
    ]


def test_a_mirror_cannot_substitute_other_weights_for_an_official_model(server, monkeypatch, small, tiny):
    entry = get_entry("sparsesync-audioset")
    base = "/sync_models/23-02-26T22-31-22/"
    server.files = {
        base + "23-02-26T22-31-22.pt": small["blob"],
        base + "cfg-23-02-26T22-31-22.yaml": tiny["cfg"],
    }
    monkeypatch.setenv("AVSYNC_MIRROR", server.url)
    with pytest.raises(
        DownloadError, match=r"checksum mismatch \(md5 [0-9a-f]{32}, expected d3c40b4\.\.\.\)"
    ):
        ensure_files(entry, options=FAST)
    assert model_status(entry).cached is False


def test_mirrored_url_mapping(monkeypatch):
    url = "https://a3s.fi/swift/v1/AUTH_a/sync/sync_models/23-02-26T22-31-22/23-02-26T22-31-22.pt"
    assert mirrored_url(url) == url
    monkeypatch.setenv("AVSYNC_MIRROR", "https://mirror.example.org/avsync/")
    assert (
        mirrored_url(url)
        == "https://mirror.example.org/avsync/sync_models/23-02-26T22-31-22/23-02-26T22-31-22.pt"
    )
    assert (
        mirrored_url("https://models.example.com/team/x.pt") == "https://mirror.example.org/avsync/team/x.pt"
    )
    monkeypatch.setenv("AVSYNC_MIRROR", "/not/a/url")
    with pytest.raises(DownloadError, match="AVSYNC_MIRROR must be an http"):
        mirrored_url(url)


def test_redirects_stay_on_https_or_this_machine(small, server):
    entry = small["entry"]
    server.files["/moved.pt"] = small["blob"]
    server.switches.redirect[CKPT_PATH] = f"{server.url}/moved.pt"  # same server: followed
    assert ensure_files(entry, options=FAST).checkpoint.read_bytes() == small["blob"].read_bytes()

    shutil.rmtree(model_cache_dir(entry))
    # To another plain-http server: refused before any connection (.invalid never resolves).
    server.switches.redirect[CKPT_PATH] = "http://avsync-test.invalid/x.pt"
    with pytest.raises(
        DownloadError, match=r"refusing to follow a redirect to http://avsync-test\.invalid/x\.pt"
    ):
        ensure_files(entry, options=FAST)


def test_disk_full_is_one_clear_line(entry, server):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    folder = model_cache_dir(entry)
    folder.mkdir(parents=True)
    # Every write to /dev/full fails with ENOSPC, as on a full disk.
    (folder / "cfg-tiny_sparsesync.yaml.incomplete").symlink_to("/dev/full")
    with pytest.raises(DownloadError) as info:
        ensure_files(entry, options=FAST)
    assert str(info.value) == (
        f"{folder / 'cfg-tiny_sparsesync.yaml.incomplete'}: no space left on the device (or over quota)"
        " while writing the download"
    )


def test_unwritable_cache_is_one_clear_line(tmp_path, monkeypatch, entry):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    target = ro / "cache"
    try:
        target.mkdir()
    except PermissionError:
        pass  # an ordinary user: the read-only folder is enough
    else:
        target.rmdir()
        # root ignores file modes; /sys refuses new folders even to root.
        target = Path("/sys/avsync-test-cache")
        if target.exists() or not _mkdir_fails(target):
            pytest.skip("no unwritable folder available")
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(target))
    with pytest.raises(DownloadError, match=r"cannot write to the cache \(permission denied or read-only\)"):
        ensure_files(entry, options=FAST)


def _mkdir_fails(path: Path) -> bool:
    """Whether creating ``path`` is refused for lack of permission (never leaves it behind)."""
    try:
        path.mkdir()
    except OSError as e:
        return e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    path.rmdir()
    return False


CONCURRENT = """
import sys
from sparsesync_cli.checkpoints.download import DownloadOptions, ensure_files
from sparsesync_cli.checkpoints.registry import get_entry
files = ensure_files(get_entry("tiny"), options=DownloadOptions(timeout_s=10, backoff_s=0.01))
print(files.checkpoint)
"""


def test_two_processes_downloading_at_once_end_with_one_good_file(entry, server, tiny):
    # The first answer is held back, so the second process surely arrives mid-download.
    server.switches.delay[CKPT_PATH] = (0.5, 1)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT],
            cwd=REPO,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    dest = model_cache_dir(entry) / "tiny_sparsesync.pt"
    assert outs == [str(dest), str(dest)]
    assert dest.read_bytes() == tiny["ckpt"].read_bytes()
    assert leftovers(dest.parent) == []
    assert server.requests_for(CKPT_PATH) == [None]  # downloaded once; the other waited for it


# --- Hugging Face Hub entries, offline, through huggingface_hub's own cache layout -------------


@pytest.fixture(scope="session")
def tiny_sf(shared_dir):
    src = shared_dir / "fixtures/synchformer/tiny_synchformer_state_dict.pt"
    return src, *sha256_md5(src)


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny_sf):
    """An HF cache holding the tiny Synchformer state dict at a pinned revision, and its entry."""
    src, sha, md5 = tiny_sf
    cache = tmp_path / "hf-hub"
    link = make_hub_cache(cache, src, HUB_REPO, HUB_FILE, HUB_REV, sha)
    repo = cache / ("models--" + HUB_REPO.replace("/", "--"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def make_entry(sha256: str = sha, revision: str = HUB_REV):
        text = f"""schema = 1
[models.tiny-hub]
id = "tiny-sf"
family = "synchformer"
classes = 21
max_offset_sec = 2.0
checkpoint_format = "state_dict"
[models.tiny-hub.checkpoint]
hf_repo = "{HUB_REPO}"
hf_filename = "{HUB_FILE}"
hf_revision = "{revision}"
sha256 = "{sha256}"
md5 = "{md5}"
"""
        (tmp_path / "hub.toml").write_text(text)
        monkeypatch.setenv("AVSYNC_REGISTRY", str(tmp_path / "hub.toml"))
        return get_entry("tiny-hub")

    return {"make_entry": make_entry, "sha256": sha, "link": link, "blob": repo / "blobs" / sha, "src": src}


def test_hub_file_is_found_offline_and_its_sha256_checked(hub):
    entry = hub["make_entry"]()
    files = ensure_files(entry)
    assert files.config is None
    assert files.checkpoint == hub["link"]
    assert files.checkpoint.read_bytes() == hub["src"].read_bytes()
    rec = json.loads((model_cache_dir(entry) / "synchformer_state_dict.pth.verified.json").read_text())
    assert rec["sha256"] == hub["sha256"]
    assert model_status(entry) == (True, hub["src"].stat().st_size)


def test_hub_file_with_a_wrong_sha256_is_deleted_from_the_hf_cache(hub):
    entry = hub["make_entry"](sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"checksum mismatch .*deleted it from the Hugging Face cache"):
        ensure_files(entry)
    assert not hub["blob"].exists() and not hub["link"].is_symlink()
    assert hub["src"].is_file()  # the shared fixture itself is untouched


def test_hub_file_not_in_cache_offline_says_what_to_do(hub):
    entry = hub["make_entry"](revision="1234567890" * 4)
    with pytest.raises(DownloadError) as info:
        ensure_files(entry)
    msg = str(info.value)
    assert "synchformer_state_dict.pth is not in the cache" in msg and "(Hugging Face)" in msg
    assert (
        "or unset HF_HUB_OFFLINE" in msg
        and "use a checkpoint file you have (--checkpoint" in msg
        and "\n" not in msg
    )
    assert model_status(entry) == (False, None)


def test_avsync_offline_also_keeps_hub_entries_offline(hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    entry = hub["make_entry"](revision="1234567890" * 4)
    with pytest.raises(
        DownloadError,
        match=r"use a checkpoint file you have \(--checkpoint FILE.pt --config cfg-ID.yaml\)"
        r".*or unset AVSYNC_OFFLINE",
    ):
        ensure_files(entry)


def test_hub_progress_adapter_reports_bytes():
    seen = []
    bar = hub_progress_class("w.pth", lambda *a: seen.append(a))(
        total=10, initial=2, unit="B", unit_scale=True, desc="w"
    )
    with bar:
        bar.update(3)
        bar.update(5)
    assert seen == [("w.pth", 2, 10), ("w.pth", 5, 10), ("w.pth", 10, 10)]


def test_a_complete_leftover_is_checked_without_downloading_again(small, server):
    """A run killed between the last byte and the rename: the server says 416, the file is kept."""
    folder = model_cache_dir(small["entry"])
    folder.mkdir(parents=True)
    (folder / "tiny_sparsesync.pt.incomplete").write_bytes(small["blob"].read_bytes())
    files = ensure_files(small["entry"], options=FAST)
    assert server.requests_for(CKPT_PATH) == [f"bytes={small['size']}-"]
    assert files.checkpoint.read_bytes() == small["blob"].read_bytes()


def test_loads_trust_an_unchanged_record_and_verify_rehashes(small, monkeypatch):
    files = ensure_files(small["entry"], options=FAST)
    st = files.checkpoint.stat()
    data = bytearray(files.checkpoint.read_bytes())
    data[-1] ^= 1
    files.checkpoint.write_bytes(bytes(data))
    # Same size and mtime as recorded: only a full re-hash can see the change.
    os.utime(files.checkpoint, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    assert ensure_files(small["entry"], options=FAST) == files
    with pytest.raises(DownloadError, match=r"does not match \(sha256 "):
        ensure_files(small["entry"], options=FAST, verify=True)


def test_a_failed_download_leaves_no_lock_file(entry, server):
    server.switches.status[CKPT_PATH] = (404, -1)
    with pytest.raises(DownloadError, match="HTTP 404"):
        ensure_files(entry, options=FAST)
    folder = model_cache_dir(entry)
    assert folder.is_dir() and not list(folder.glob("*.lock")), sorted(p.name for p in folder.iterdir())
    server.switches.status.clear()
    ensure_files(entry, options=FAST)  # and a later run still downloads and leaves none either
    assert not list(folder.glob("*.lock"))


def test_a_hub_model_without_network_fails_at_once_and_says_what_to_do(hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")  # not offline by choice: the network is missing
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.avsync-test.invalid")
    entry = hub["make_entry"](revision="1234567890" * 4)  # a revision that is not cached
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as info:
        ensure_files(entry)
    assert time.monotonic() - t0 < 3  # huggingface_hub's own retries took ~32 s
    msg = str(info.value)
    assert "the Hub cannot be reached (no network?)" in msg and "--checkpoint FILE.pt --config" in msg
    assert "`avsync download tiny-hub` on a machine with internet and copy its cache" in msg
