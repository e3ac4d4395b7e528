"""Fuzz `avsync predict` at scale: a seeded batch of corrupted files, watched for what a user fears.

    python bench/fuzz.py --files 500 --seed 1            # the issue-14 run (slow: ~5 s a file on 2 cores)
    python bench/fuzz.py --files 100 --seed 1 --timeout 120

The corrupted files are made here from small synthetic clips (byte flips in headers and
bodies, truncation, zeroed blocks, swapped chunks, hybrids; mp4/mov/mkv/webm/ts) and checked by
ONE real batch (`python -m sparsesync_cli predict ... --jsonl`) with the tiny random-weight
fixture model, as a user runs it. A watchdog samples the batch's memory (/proc VmRSS, charged to
the file being checked) and kills it when no file finishes for ``--timeout`` seconds (a hang,
charged to that file); the batch is then restarted on the files left. Reported, as JSON:

- files, rows (result rows in the JSONL: one per file is the promise), missing_rows
- tracebacks (batch output containing "Traceback"), crashes (the batch died by a signal or
  with an exit code other than 0/1), hangs (files killed by the watchdog)
- unexpected (failed rows whose error is "unexpected error ...": the per-file boundary caught
  something no check foresaw; each is a bug to fix at its root)
- inputs_modified (sha256 before and after), peak_rss_mb (the batch's highest RSS) and the
  files with the highest RSS (a header that makes memory blow up is a bug too).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# One small clip per container the fuzz covers: (extension, video codec, audio codec).
BASES = (("mp4", "libx264", "aac"), ("mov", "libx264", "aac"), ("mkv", "libx264", "aac"),
         ("webm", "libvpx-vp9", "libopus"), ("ts", "libx264", "aac"))  # fmt: skip
CLIP_SEC = 5.5  # one 5 s window: decoding and the model run once per file that decodes
SHARED = Path(os.environ.get("AVSYNC_SHARED", REPO.parent / "shared"))
POLL_S = 0.2


def make_clip(path: Path, vcodec: str, acodec: str, seconds: float = CLIP_SEC) -> None:
    """A small clip: a moving bar over a changing grey, and a tone with a click every second."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        vs = out.add_stream(vcodec, rate=25)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        aus = out.add_stream(acodec, rate=48000)
        aus.layout = "stereo"
        for i in range(int(seconds * 25)):
            img = np.full((120, 160, 3), (i * 7) % 256, np.uint8)
            img[:, (i * 3) % 160] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        t = np.arange(int(seconds * 48000)) / 48000
        wave = (0.2 * np.sin(2 * np.pi * 440 * t) + (t % 1.0 < 0.005)).astype(np.float32)
        for i in range(0, len(wave) - 1024, 1024):
            chunk = np.stack([wave[i : i + 1024]] * 2)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, i
            for packet in aus.encode(frame):
                out.mux(packet)
        for packet in aus.encode(None):
            out.mux(packet)


HEADER_BYTES = 4096  # "the header": where the container describes its streams


def _header_region(data: bytes) -> tuple[int, int]:
    """Where the stream descriptions are: MP4/MOV's moov box when found, else the first 4 KiB."""
    i = data.find(b"moov")
    if i >= 4:
        size = int.from_bytes(data[i - 4 : i], "big")
        if 8 <= size <= len(data) - i + 4:
            return i - 4, i - 4 + size
    return 0, min(len(data), HEADER_BYTES)


def flip_header(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    lo, hi = _header_region(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(lo, hi)] = rng.randrange(256)
    return bytes(b)


def flip_body(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        b[rng.randrange(len(b) // 8, len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def zero_block(data: bytes, rng: random.Random) -> bytes:
    n = rng.choice((64, 512, 4096, 32768))
    at = rng.randrange(0, max(1, len(data) - n))
    return data[:at] + bytes(min(n, len(data) - at)) + data[at + n :]


def swap_chunks(data: bytes, rng: random.Random) -> bytes:
    n = rng.choice((188, 1024, 8192))
    if len(data) < 4 * n:
        return truncate(data, rng)
    a, b = sorted(rng.sample(range(0, len(data) - n, n), 2))
    return data[:a] + data[b : b + n] + data[a + n : b] + data[a : a + n] + data[b + n :]


def hybrid(data: bytes, rng: random.Random) -> bytes:
    for op in rng.sample(SIMPLE, rng.randint(2, 3)):
        data = op(data, rng)
    return data


SIMPLE: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    flip_header,
    flip_body,
    truncate,
    zero_block,
    swap_chunks,
)
DAMAGES = (*SIMPLE, hybrid)


def make_bases(folder: Path) -> list[Path]:
    """The clean clips, one per container, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, vcodec, acodec in BASES:
        p = folder / f"base.{ext}"
        if not p.exists():
            make_clip(p, vcodec, acodec)
        paths.append(p)
    return paths


def write_variants(bases: list[Path], folder: Path, n: int, seed: int) -> list[Path]:
    """``n`` corrupted variants, cycling through containers and damage classes (same seed, same bytes)."""
    rng = random.Random(seed)
    data = {p: p.read_bytes() for p in bases}
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        base = bases[i % len(bases)]
        damage = DAMAGES[(i // len(bases)) % len(DAMAGES)]
        p = folder / f"{i:04d}_{damage.__name__}{base.suffix}"
        p.write_bytes(damage(data[base], rng))
        out.append(p)
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (the decoder threads share it), in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _rows(jsonl: Path) -> list[dict]:
    if not jsonl.exists():
        return []
    rows = []
    for line in jsonl.read_bytes().splitlines():
        with contextlib.suppress(ValueError):  # a line cut by a kill
            rows.append(json.loads(line))
    return rows


def run_batch(files: list[Path], jsonl: Path, args: argparse.Namespace, stats: dict) -> list[Path]:
    """One batch over ``files``; returns the files left when the watchdog killed it (else [])."""
    fx = Path(args.fixtures)
    cmd = [
        sys.executable, "-m", "sparsesync_cli", "predict", *map(str, files), "--quiet",
        "--checkpoint", str(fx / "tiny_sparsesync.pt"), "--config", str(fx / "cfg-tiny_sparsesync.yaml"),
        "--jsonl", str(jsonl), "--device", "cpu", "--json",
    ]  # fmt: skip
    done_before = len(_rows(jsonl))
    log = jsonl.with_suffix(f".batch{stats['batches']}.log")
    stats["batches"] += 1
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        last_n, last_t = 0, time.monotonic()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            n = len(_rows(jsonl)) - done_before
            now = time.monotonic()
            if n != last_n:
                last_n, last_t = n, now
            if pid:  # the batch ended
                stats["peak_rss_mb"] = max(stats["peak_rss_mb"], usage.ru_maxrss / 1024)
                returncode = os.waitstatus_to_exitcode(status)
                break
            if n < len(files):
                current = files[n].name
                rss = _rss_mb(proc.pid)
                stats["rss_by_file"][current] = max(stats["rss_by_file"].get(current, 0.0), rss)
            if now - last_t > args.timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                stats["peak_rss_mb"] = max(stats["peak_rss_mb"], usage.ru_maxrss / 1024)
                stats["hangs"].append(files[n].name)
                print(f"fuzz: {files[n].name} hung for {args.timeout:g} s: killed", file=sys.stderr)
                return files[n + 1 :]
            time.sleep(POLL_S)
        proc.returncode = returncode
    text = log.read_text(errors="replace")
    if "Traceback" in text:
        stats["tracebacks"] += text.count("Traceback")
        stats["traceback_logs"].append(str(log))
    stats["exit_codes"].append(returncode)
    if returncode not in (0, 1):
        stats["crashes"].append({"returncode": returncode, "log": str(log), "after_rows": last_n})
        n = len(_rows(jsonl)) - done_before
        return files[n + 1 :]  # the file it died on gets no row; go on with the rest
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds without a finished file = a hang")
    ap.add_argument("--out", type=Path, default=None, help="keep files and logs here (default: temp)")
    ap.add_argument("--fixtures", default=str(SHARED / "fixtures/sparsesync"))
    args = ap.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="avsync-fuzz-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    bases = make_bases(root / "bases")
    files = write_variants(bases, root / "in", args.files, args.seed)
    before = {p: _sha(p) for p in files}
    jsonl = root / "fuzz.jsonl"
    jsonl.unlink(missing_ok=True)
    stats: dict = {
        "batches": 0, "peak_rss_mb": 0.0, "rss_by_file": {}, "hangs": [], "crashes": [],
        "tracebacks": 0, "traceback_logs": [], "exit_codes": [],
    }  # fmt: skip
    left = files
    while left:
        left = run_batch(left, jsonl, args, stats)
    rows = _rows(jsonl)
    names = {os.path.basename(r["path"]) for r in rows}
    unexpected = [
        {"file": os.path.basename(r["path"]), "error": r["error"]}
        for r in rows
        if not r["ok"] and (r["error"] or "").startswith("unexpected error")
    ]
    top = sorted(stats["rss_by_file"].items(), key=lambda kv: -kv[1])[:5]
    report = {
        "files": len(files),
        "seed": args.seed,
        "rows": len(rows),
        "missing_rows": sorted(p.name for p in files if p.name not in names),
        "ok": sum(1 for r in rows if r["ok"]),
        "failed": sum(1 for r in rows if not r["ok"]),
        "tracebacks": stats["tracebacks"],
        "traceback_logs": stats["traceback_logs"],
        "crashes": stats["crashes"],
        "hangs": stats["hangs"],
        "unexpected": unexpected,
        "inputs_modified": sorted(p.name for p in files if _sha(p) != before[p]),
        "peak_rss_mb": round(stats["peak_rss_mb"], 1),
        "highest_rss_files_mb": [[name, round(mb, 1)] for name, mb in top],
        "damages": sorted({p.stem.split("_", 1)[1] for p in files}),
        "batches": stats["batches"],
        "exit_codes": stats["exit_codes"],
        "wall_s": round(time.monotonic() - t0, 1),
        "out": str(root),
    }
    # Every file's sampled RSS, in batch order: a rise along the batch is a leak, a spike a bad file.
    (root / "rss_by_file.json").write_text(json.dumps(stats["rss_by_file"], indent=0))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
