"""Cost and exactness of reading audio windows in random order (what a sampling mode does).

Reads every 5 s audio window of a file once in order and once in a random order, each random read
by the same reader (so most reads jump), and prints ONE JSON object: seconds per window both ways,
the largest difference between a random-order window and the same window read in order (must be
float rounding: < 1e-6), and the peak RSS.

    python bench/random_access.py                       # makes /tmp/avsync_bench_noise_10min.mp4
    python bench/random_access.py --input film.mkv      # any file
    python bench/random_access.py --minutes 60 --windows 40

The synthetic file is 320x240 25 fps H.264 with 44.1 kHz mono AAC of pink noise (which FFmpeg's
AAC encoder codes with noise substitution: the case where a decoder started by a seek used to
give other samples). AAC is decoded from the first packet up to each backward jump, so the cost of
a random read grows with the position in the file; made by the ffmpeg binary avsync uses.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from sparsesync_cli.clock import SAMPLES_PER_WINDOW
from sparsesync_cli.media.decode import MediaReader
from sparsesync_cli.media.ffmpeg import run_ffmpeg


def synthesize(path: Path, minutes: float) -> None:
    seconds = f"{minutes * 60:g}"
    run_ffmpeg(
        [
            "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", "anoisesrc=color=pink:sample_rate=44100:amplitude=0.3",
            "-t", seconds, "-ac", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(path),
        ],
        path,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, help="file to read (default: synthesize one)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic file")
    ap.add_argument("--windows", type=int, default=20, help="windows read in random order")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = args.input
    if path is None:
        path = Path(f"/tmp/avsync_bench_noise_{args.minutes:g}min.mp4")
        if not path.exists():
            synthesize(path, args.minutes)

    with MediaReader(path) as r:
        end = r.audio_span[1]
        codec = r.info.audio.codec
    starts = np.arange(0, end - SAMPLES_PER_WINDOW, SAMPLES_PER_WINDOW)
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(starts, size=min(args.windows, len(starts)), replace=False)

    t = time.perf_counter()
    in_order = {}
    with MediaReader(path) as r:
        for s in starts:
            window = r.read_audio(int(s), SAMPLES_PER_WINDOW)
            if s in chosen:
                in_order[int(s)] = window
    sequential = (time.perf_counter() - t) / len(starts)

    t = time.perf_counter()
    worst = 0.0
    with MediaReader(path) as r:
        for s in chosen:
            window = r.read_audio(int(s), SAMPLES_PER_WINDOW)
            worst = max(worst, float(np.abs(window - in_order[int(s)]).max()))
    random_order = (time.perf_counter() - t) / len(chosen)

    print(
        json.dumps(
            {
                "file": str(path),
                "audio_codec": codec,
                "duration_sec": round(end / 16000, 1),
                "windows_in_order": len(starts),
                "windows_random_order": len(chosen),
                "sec_per_window_in_order": round(sequential, 4),
                "sec_per_window_random_order": round(random_order, 4),
                "max_abs_difference": worst,
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
