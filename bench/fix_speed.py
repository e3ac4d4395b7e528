"""How long `avsync fix` takes on a large ProRes master, against a plain copy of the same file.

A fix is a copy with the audio moved (issue 21, item 7: aim for at most 2x a plain file copy, in
any container). Builds a ~2 GB ProRes 422 1080p25 master with 4 mono 24-bit PCM tracks and a
timecode (a 2 s segment made with the bundled ffmpeg, repeated by stream copy) as MOV and as MXF
OP1a, or takes yours with --input. For each file and offset: a plain copy (``shutil.copyfile``,
kernel copy) and the library fix (:func:`sparsesync_cli.media.remux.fix_offset`) alternate
``--runs`` times into the input's folder (so on the same disk, with the same page cache), then the
CLI (``python -m sparsesync_cli fix``, its start-up included) runs ``--cli-runs`` times. Prints
ONE JSON object: seconds per run, medians, the ratio fix / copy, and whether the fixed file kept
every video packet (count and bytes; --no-verify skips reading it back). A fix that fails is
reported with its error line, not raised.

    python bench/fix_speed.py                          # ~2 GB, MOV and MXF, offsets +0.4 and -0.4
    python bench/fix_speed.py --size-gb 0.5 --runs 3
    python bench/fix_speed.py --input master.mxf --offsets 0.4

The page cache is not dropped (that needs root and slows every other process on the machine):
both sides read a warm file, so the ratio compares the writing and remuxing work, which is what
the fix adds. Each run's CPU seconds (this process's threads and its ffmpeg) are reported beside
its wall time: on a shared machine the wall time follows the other processes' load, the CPU time
much less. Files go to --dir (default: a folder in /tmp) and are removed unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sparsesync_cli.errors import AvsyncError
from sparsesync_cli.media.remux import fix_offset
from sparsesync_cli.testmedia import verify
from sparsesync_cli.testmedia.masters import MasterSpec, concat_copies, make_master

SEGMENT = MasterSpec("prores_mov", "25", frames=50, pcm_tracks=4, size=(1920, 1080))


def build_masters(folder: Path, size_gb: float, containers: list[str]) -> list[Path]:
    """~size_gb ProRes masters, one per container, from one 2 s segment repeated."""
    segment = make_master(folder, SEGMENT, "segment").path
    copies = max(1, round(size_gb * 1e9 / segment.stat().st_size))
    out = []
    for ext in containers:
        t = time.perf_counter()
        path = concat_copies(segment, folder / f"master_{size_gb:g}gb.{ext}", copies, SEGMENT.start_timecode)
        print(
            f"built {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )
        out.append(path)
    segment.unlink()
    return out


def _cpu() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children (ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn) -> tuple[float, float, str | None]:
    """(wall seconds, CPU seconds, error line) of ``fn()``."""
    t, c = time.perf_counter(), _cpu()
    try:
        fn()
    except AvsyncError as e:
        return time.perf_counter() - t, _cpu() - c, str(e)
    return time.perf_counter() - t, _cpu() - c, None


def _cli(src: Path, dst: Path, offset: float) -> None:
    cmd = [sys.executable, "-m", "sparsesync_cli", "fix", str(src), "-o", str(dst), "--offset", f"{offset}"]
    proc = subprocess.run([*cmd, "--force"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AvsyncError((proc.stdout + proc.stderr).strip().splitlines()[-1])


def _sync(path: Path) -> None:
    """fsync the written file: a copy and a fix both count until their data is on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_one(src: Path, offset: float, runs: int, cli_runs: int, check: bool) -> dict:
    # next to the input: the same disk; names no user file has (refused if one does)
    copy_dst = src.with_name(f"{src.stem}.bench-copy{src.suffix}")
    fix_dst = src.with_name(f"{src.stem}.bench-fixed{src.suffix}")
    for path in (copy_dst, fix_dst):
        if path.exists():
            raise SystemExit(f"{path} exists; move it away first")
    copies, fixes, clis, error = [], [], [], None
    copy_cpu, fix_cpu = [], []
    for _ in range(runs):
        dt, cpu, _err = _timed(lambda: (shutil.copyfile(src, copy_dst), _sync(copy_dst)))
        copies.append(dt)
        copy_cpu.append(cpu)
        copy_dst.unlink()
        dt, cpu, err = _timed(lambda: (fix_offset(src, fix_dst, offset, force=True), _sync(fix_dst)))
        if err:
            error = err
            break
        fixes.append(dt)
        fix_cpu.append(cpu)
    for _ in range(cli_runs if error is None else 0):
        dt, _cpu_sec, err = _timed(lambda: _cli(src, fix_dst, offset))
        if err:
            error = err
            break
        clis.append(dt)
    row = {
        "input": str(src),
        "bytes": src.stat().st_size,
        "offset_sec": offset,
        "copy_sec": [round(x, 3) for x in copies],
        "fix_sec": [round(x, 3) for x in fixes],
        "cli_sec": [round(x, 3) for x in clis],
        "copy_cpu_sec": [round(x, 3) for x in copy_cpu],
        "fix_cpu_sec": [round(x, 3) for x in fix_cpu],
        "error": error,
    }
    if copies:
        row["copy_median_sec"] = round(statistics.median(copies), 3)
        row["copy_gb_per_sec"] = round(src.stat().st_size / 1e9 / statistics.median(copies), 3)
    if fixes:
        row["fix_median_sec"] = round(statistics.median(fixes), 3)
        row["ratio_fix_to_copy"] = round(statistics.median(fixes) / statistics.median(copies), 2)
        row["fix_cpu_median_sec"] = round(statistics.median(fix_cpu), 3)
        row["copy_cpu_median_sec"] = round(statistics.median(copy_cpu), 3)
    if clis:
        row["cli_median_sec"] = round(statistics.median(clis), 3)
        row["ratio_cli_to_copy"] = round(statistics.median(clis) / statistics.median(copies), 2)
    if check and error is None and fix_dst.exists():
        problems = verify.unmoved_stream_problems(src, fix_dst)
        row["video_packets_identical"] = not problems
        row["video_problems"] = problems[:3]
    if fix_dst.exists():
        fix_dst.unlink()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, action="append", help="master(s) to fix (default: build them)")
    ap.add_argument("--size-gb", type=float, default=2.0, help="size of the built masters")
    ap.add_argument("--containers", default="mov,mxf", help="containers to build: mov, mxf or both")
    ap.add_argument("--offsets", default="0.4,-0.4", help="offsets to fix by, comma-separated")
    ap.add_argument("--runs", type=int, default=3, help="copy and library-fix runs per case")
    ap.add_argument("--cli-runs", type=int, default=1, help="`avsync fix` command runs per case")
    ap.add_argument("--dir", type=Path, help="work folder (default: a new one in /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the built masters")
    ap.add_argument("--no-verify", action="store_true", help="do not read the fixed file back")
    args = ap.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="avsync_fix_speed_"))
    folder.mkdir(parents=True, exist_ok=True)
    built = []
    try:
        if args.input:
            inputs = args.input
        else:
            built = build_masters(folder, args.size_gb, args.containers.split(","))
            inputs = built
        rows = []
        for src in inputs:
            for offset in (float(x) for x in args.offsets.split(",")):
                rows.append(bench_one(src, offset, args.runs, args.cli_runs, not args.no_verify))
                print(json.dumps(rows[-1]), file=sys.stderr)
        print(json.dumps({"bench": "fix_speed", "aim": "fix <= 2x copy", "rows": rows}, indent=1))
    finally:
        if not args.keep:
            for path in built:
                path.unlink(missing_ok=True)
            if args.dir is None:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
