"""Decode speed and memory of a whole-file window scan through MediaReader.

Reads a long file window by window (125 frames + 80,000 samples, as the models use them) and
prints ONE JSON object: duration, decode seconds per minute of video, peak RSS, and the RSS
after each quarter of the file (flat = memory does not grow with duration).

    python bench/decode_memory.py                      # makes /tmp/avsync_bench_1080p_10min.mp4
    python bench/decode_memory.py --input film.mkv     # any file
    python bench/decode_memory.py --minutes 60 --hop-sec 2.5

The synthetic file is 1920x1080 30 fps H.264 (x264 ultrafast, 2 s GOP) with 48 kHz stereo AAC,
made by the ffmpeg binary avsync uses for remuxing; keep it out of the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from sparsesync_cli.clock import FRAMES_PER_WINDOW, SAMPLE_RATE, SAMPLES_PER_WINDOW, VIDEO_FPS
from sparsesync_cli.media.decode import MediaReader
from sparsesync_cli.media.ffmpeg import run_ffmpeg


def synthesize(path: Path, minutes: float) -> None:
    """A long 1080p H.264 + AAC file with moving content and sound."""
    seconds = f"{minutes * 60:g}"
    run_ffmpeg(
        [
            "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:beep_factor=4",
            "-t", seconds, "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
            "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(path),
        ],
        path,
    )  # fmt: skip


def rss_mib() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, help="file to read (default: synthesize one)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic file")
    ap.add_argument("--out", type=Path, default=None, help="where to write the synthetic file")
    ap.add_argument("--hop-sec", type=float, default=5.0, help="window start step (5 = no overlap)")
    args = ap.parse_args()

    path = args.input
    if path is None:
        path = args.out or Path(f"/tmp/avsync_bench_1080p_{args.minutes:g}min.mp4")
        if not path.exists():
            t = time.perf_counter()
            synthesize(path, args.minutes)
            print(f"synthesized {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    rss_start = rss_mib()
    hop_frames = round(args.hop_sec * VIDEO_FPS)
    t0 = time.perf_counter()
    quarters: list[float] = []
    windows = 0
    with MediaReader(path) as r:
        lo, hi = r.video_span
        starts = list(range(lo, hi - FRAMES_PER_WINDOW + 1, hop_frames))
        marks = {starts[min(len(starts) - 1, len(starts) * q // 4)] for q in (1, 2, 3)}
        video_sec = audio_sec = 0.0
        for start in starts:
            t = time.perf_counter()
            frames = r.read_frames(start, FRAMES_PER_WINDOW)
            video_sec += time.perf_counter() - t
            frame_size = [frames.shape[2], frames.shape[1]]  # width, height
            t = time.perf_counter()
            audio = r.read_audio(start * SAMPLE_RATE // VIDEO_FPS, SAMPLES_PER_WINDOW)
            audio_sec += time.perf_counter() - t
            windows += 1
            del frames, audio
            if start in marks:
                quarters.append(round(rss_mib(), 1))
        info = r.info
    total = time.perf_counter() - t0
    quarters.append(round(rss_mib(), 1))
    minutes = (hi - lo) / VIDEO_FPS / 60
    print(
        json.dumps(
            {
                "file": str(path),
                "duration_sec": round(info.duration_sec, 3),
                "video": f"{info.video.codec} {info.video.width}x{info.video.height} "
                f"{info.video.average_fps:g} fps",
                "audio": f"{info.audio.codec} {info.audio.sample_rate} Hz {info.audio.layout}",
                "frame_size": frame_size,
                "windows": windows,
                "hop_sec": args.hop_sec,
                "decode_sec": round(total, 1),
                "decode_sec_per_video_min": round(total / minutes, 2),
                "video_sec_per_video_min": round(video_sec / minutes, 2),
                "audio_sec_per_video_min": round(audio_sec / minutes, 2),
                "realtime_factor": round(minutes * 60 / total, 1),
                "rss_mib_before": round(rss_start, 1),
                "rss_mib_by_quarter": quarters,
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
