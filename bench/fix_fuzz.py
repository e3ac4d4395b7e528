"""Fuzz `fix` on damaged files: it keeps every packet the input yields, or fails in one clean line.

    python bench/fix_fuzz.py --files 400 --seed 7     # issue 21's check (~1 min on 2 cores)

The damaged files are bench/fuzz.py's (byte flips, truncation, zeroed blocks, swapped chunks,
hybrids; mp4/mov/mkv/webm/ts, seeded). Each is fixed to its own container with offsets
alternating +0.4 / -0.4 s through the library (``fix_offset``). Reported, as JSON:

- fixed: the fix succeeded; silent_losses: of those, outputs holding fewer video packets than
  PyAV reads from the damaged input (a success that lost picture: the worst failure)
- refused: one-line AvsyncError naming the input; bad_messages: refusals that name a temporary
  file, show a raw FFmpeg error code, blame the ffmpeg version, span lines, or name another file
- written_on_failure / leftovers: an output or a temporary file left behind by a failed fix
- tracebacks: anything but an AvsyncError escaping (a bug)
- inputs_modified (sha256 before and after)
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import tempfile
from pathlib import Path

import fuzz

BAD_WORDS = ("incomplete", "error code", "newer ffmpeg", "AVSYNC_FFMPEG")


def _video_packets(path: Path) -> int:
    """Video packets PyAV reads from ``path`` up to its first demux error."""
    import av

    n = 0
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return 0
            for p in c.demux(c.streams.video[0]):
                n += 1 if p.size else 0
    except Exception:
        pass
    return n


def run(files: int, seed: int, root: Path) -> dict:
    from sparsesync_cli.errors import AvsyncError
    from sparsesync_cli.media.remux import fix_offset

    inputs = fuzz.write_variants(fuzz.make_bases(root / "base"), root / "in", files, seed)
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs}
    out_dir = root / "out"
    out_dir.mkdir(exist_ok=True)
    report: dict = collections.defaultdict(list)
    counts = collections.Counter()
    for i, src in enumerate(inputs):
        dst = out_dir / f"fixed{src.suffix}"
        dst.unlink(missing_ok=True)
        try:
            fix_offset(src, dst, 0.4 if i % 2 else -0.4)
        except AvsyncError as e:
            counts["refused"] += 1
            msg = str(e)
            if "\n" in msg or not msg.startswith(f"{src}: ") or any(w in msg for w in BAD_WORDS):
                report["bad_messages"].append(msg)
            if dst.exists():
                report["written_on_failure"].append(src.name)
        except Exception as e:
            report["tracebacks"].append(f"{src.name}: {type(e).__name__}: {e}")
        else:
            counts["fixed"] += 1
            have, want = _video_packets(dst), _video_packets(src)
            if have < want:
                report["silent_losses"].append(f"{src.name}: {have} of {want} video packets")
        left = [p.name for p in out_dir.iterdir() if p.name.startswith(".")]
        report["leftovers"] += left
        for p in out_dir.iterdir():
            if p.name.startswith("."):
                p.unlink()
    report["inputs_modified"] = [
        p.name for p in inputs if hashlib.sha256(p.read_bytes()).hexdigest() != sha[p]
    ]
    keys = (
        "silent_losses",
        "bad_messages",
        "written_on_failure",
        "leftovers",
        "tracebacks",
        "inputs_modified",
    )
    return {"files": files, "seed": seed, **counts, **{k: report.get(k, []) for k in keys}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a new temporary one)")
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="avsync-fix-fuzz-"))
    print(json.dumps(run(args.files, args.seed, root), indent=1))


if __name__ == "__main__":
    main()
