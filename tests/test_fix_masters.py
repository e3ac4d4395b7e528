"""`fix` on post-production masters (issue 21): no packet lost, PCM rewritten sample-exactly,
MXF both ways, --conform, drift retiming, damaged inputs refused in one line.

Every check reads the written file back with PyAV, independently of the library's own checks:
video packets byte- and time-identical, each audio track equal sample for sample to the input
moved by the offset, the start timecode unchanged.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sparsesync_cli.errors import MediaError, UsageError
from sparsesync_cli.media.ffmpeg import describe_code, last_meaningful_line
from sparsesync_cli.media.remux import fix_offset
from sparsesync_cli.testmedia import verify
from sparsesync_cli.testmedia.masters import SAMPLE_RATE, MasterSpec, make_master


def video_packets(path: Path) -> list[verify.PacketRecord]:
    """The picture's packets: times (exact, file clock), sizes and byte digests."""
    index = verify.streams_by_type(path)["video"][0]
    return verify.stream_packets(path, [index])[index]


def same_picture(src: Path, dst: Path) -> list[str]:
    """What differs between the pictures of two files: count, bytes, timestamps."""
    return verify.compare_packets(video_packets(src), video_packets(dst), "video")


def audio_tracks(path: Path) -> list[tuple[float, np.ndarray]]:
    """(start time, samples) of every audio track, decoded."""
    out = []
    with av.open(str(path)) as c:
        for s in c.streams.audio:
            frames = list(c.decode(s))
            c.seek(0)
            first = float(frames[0].pts * frames[0].time_base)
            out.append((first, np.concatenate([f.to_ndarray().reshape(-1) for f in frames])))
    return out


def video_end(path: Path) -> float:
    return float(verify.picture_span(path)[1])


def assert_fixed_exactly(src: Path, dst: Path, offset: float, conform: bool) -> None:
    """The picture untouched; every audio track the input's samples moved by ``offset``."""
    assert same_picture(src, dst) == []
    assert verify.start_timecode(dst) == verify.start_timecode(src) is not None
    n = round(offset * SAMPLE_RATE)
    end = round(video_end(src) * SAMPLE_RATE)
    tracks_in, tracks_out = audio_tracks(src), audio_tracks(dst)
    assert len(tracks_out) == len(tracks_in)
    for (s0, a), (s1, b) in zip(tracks_in, tracks_out, strict=True):
        assert s0 == s1 == 0.0  # every track starts with the picture
        expected = np.concatenate([np.zeros(max(n, 0), a.dtype), a[max(-n, 0) :]])
        if conform:
            expected = np.concatenate([expected, np.zeros(max(0, end - len(expected)), a.dtype)])[:end]
        assert len(b) == len(expected)
        assert np.array_equal(b, expected)  # out(t) == in(t - offset), bit for bit


@pytest.mark.parametrize("offset", [-0.4, 0.4])
def test_mxf_moves_pcm_both_ways_and_keeps_every_picture(tmp_path: Path, offset: float) -> None:
    """Regression: MXF --offset -0.4 dropped 0.4 s of picture and said it succeeded; +0.4 was refused."""
    m = make_master(tmp_path, MasterSpec(kind="xdcam_mxf", rate="50i", frames=25, pcm_tracks=2))
    out = tmp_path / "out.mxf"
    done = fix_offset(m.path, out, offset)
    assert_fixed_exactly(m.path, out, offset, conform=True)  # MXF: tracks always span the picture
    actions = {f.stream: f for f in done.stream_fixes}
    assert actions[0].action == "kept"
    assert [actions[i].moved_samples for i in (1, 2)] == [round(offset * SAMPLE_RATE)] * 2
    assert all(actions[i].action == "rewritten" for i in (1, 2))


def test_an_mxf_master_fixed_into_mov_keeps_its_timecode_as_a_track(tmp_path: Path) -> None:
    """Regression: MXF -> .mov failed "it has 4 streams instead of 3": the MOV muxer writes the
    MXF's file-level timecode as a timecode track of its own, which is the timecode kept."""
    m = make_master(tmp_path, MasterSpec(kind="xdcam_mxf", rate="50i", frames=25, pcm_tracks=2))
    out = tmp_path / "out.mov"
    fix_offset(m.path, out, 0.4)
    assert_fixed_exactly(m.path, out, 0.4, conform=False)
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "audio", "data"]


def test_mov_pcm_shift_and_conform(tmp_path: Path) -> None:
    m = make_master(tmp_path, MasterSpec(kind="prores_mov", rate="23.976", frames=48, pcm_tracks=2))
    out = tmp_path / "out.mov"
    fix_offset(m.path, out, 0.4)
    assert_fixed_exactly(m.path, out, 0.4, conform=False)  # the delayed track ends 0.4 s late
    conformed = tmp_path / "conformed.mov"
    done = fix_offset(m.path, conformed, 0.4, conform=True)
    assert_fixed_exactly(m.path, conformed, 0.4, conform=True)
    end = video_end(m.path)
    for start, samples in audio_tracks(conformed):
        assert start == 0.0 and abs(start + len(samples) / SAMPLE_RATE - end) <= 0.001
    assert all(f.trimmed_samples == round(0.4 * SAMPLE_RATE) for f in done.stream_fixes if f.kind == "audio")
    assert done.to_dict()["stream_fixes"][1]["action"] == "rewritten"


def lag_ms(samples: np.ndarray, reference, at: float) -> float:
    """How late ``samples`` play the reference signal around time ``at`` (ms; > 0: late)."""
    i0, n = round(at * SAMPLE_RATE), 4800
    seg = samples[i0 : i0 + n].astype(np.float64) / 2**23
    t = (i0 + np.arange(n)) / SAMPLE_RATE
    best = (-np.inf, 0.0)
    for step, span in ((1e-4, 8e-3), (2e-6, 1.2e-4)):
        centre = best[1]
        for tau in centre + np.arange(-span, span + step / 2, step):
            score = float(seg @ reference(t - tau))
            best = max(best, (score, float(tau)))
    return best[1] * 1000


@pytest.mark.parametrize(
    ("seconds", "probes"),
    [(8, (1.0, 4.0, 7.0)), pytest.param(60, (2.0, 30.0, 57.0), marks=pytest.mark.slow)],  # issue 21's take
)
def test_drift_is_retimed_to_a_millisecond(tmp_path: Path, seconds: int, probes: tuple[float, ...]) -> None:
    """Audio that runs 0.5 % fast (+0.3 s/min) plays in sync again after --drift 0.3."""
    spec = MasterSpec(kind="prores_mov", rate="25", frames=25 * seconds, pcm_tracks=1, audio_speed=1.005)
    m = make_master(tmp_path, spec)
    out = tmp_path / "out.mov"
    done = fix_offset(m.path, out, 0.0, drift_sec_per_min=0.3)
    assert same_picture(m.path, out) == []
    ((start, samples),) = audio_tracks(out)
    assert start == 0.0

    def reference(t: np.ndarray) -> np.ndarray:
        return m.reference(0, t)

    assert lag_ms(m.samples(0), reference, 1.0) < -4.0  # the input is early (5 ms at 1 s)
    lags = [lag_ms(samples, reference, t) for t in probes]
    assert all(abs(lag) <= 1.0 for lag in lags), lags
    (audio,) = [f for f in done.stream_fixes if f.kind == "audio"]
    assert audio.action == "rewritten" and audio.retime_factor == pytest.approx(1.005)


def test_an_offset_and_a_drift_together_restore_the_take(tmp_path: Path) -> None:
    """Sign check of OFFSET + D*t/60: audio early by 0.3015 s at 0 and drifting +0.3 s/min.

    Made from the 0.5 %-fast take by advancing its audio 0.3 s: it then holds the reference at
    1.005 * (t + 0.3), early by 0.3015 + 0.005 t. --offset 0.3015 --drift 0.3 must restore it.
    """
    spec = MasterSpec(kind="prores_mov", rate="25", frames=200, pcm_tracks=1, audio_speed=1.005)
    m = make_master(tmp_path, spec)
    early = tmp_path / "early.mov"
    fix_offset(m.path, early, -0.3)
    out = tmp_path / "out.mov"
    fix_offset(early, out, 0.3015, drift_sec_per_min=0.3)
    ((start, samples),) = audio_tracks(out)
    lags = [lag_ms(samples, lambda t: m.reference(0, t), at) for at in (1.0, 4.0, 7.0)]
    assert start == 0.0 and all(abs(lag) <= 1.0 for lag in lags), lags


def test_compressed_audio_is_conformed_only_with_a_reencode(tmp_path: Path) -> None:
    """Padding AAC to the picture cannot be done by a copy: refused, unless --reencode-audio."""
    m = make_master(tmp_path, MasterSpec(kind="h264_mov", rate="25", frames=50, aac=True))
    with pytest.raises(UsageError, match=r"compressed \(aac\).*--reencode-audio") as err:
        fix_offset(m.path, tmp_path / "out.mov", 0.4, conform=True)
    assert str(err.value).startswith(f"{m.path}: ") and "\n" not in str(err.value)
    done = fix_offset(m.path, tmp_path / "out.mov", 0.4, conform=True, reencode_audio=True)
    (audio,) = [f for f in done.stream_fixes if f.kind == "audio"]
    assert audio.action == "re-encoded"
    with av.open(str(tmp_path / "out.mov")) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac" and a.rate == SAMPLE_RATE and a.codec_context.channels == 2
    assert same_picture(m.path, tmp_path / "out.mov") == []
    assert list(tmp_path.glob(".*incomplete*")) == []


def damage_sample_sizes(src: Path, dst: Path, entry: int, size: int) -> None:
    """Copy ``src`` with one entry of its first track's sample size table set to ``size``."""
    data = bytearray(src.read_bytes())
    at = data.find(b"stsz")
    struct.pack_into(">I", data, at + 16 + 4 * entry, size)
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("size", [0x3FFFFFFF, 0x00A00000])
def test_a_damaged_sample_table_is_never_a_silent_success(tmp_path: Path, size: int) -> None:
    """Regression: one huge stsz entry made a copy keep 1.67 s of 5.87 s and say it succeeded."""
    m = make_master(tmp_path, MasterSpec(kind="h264_mov", rate="25", frames=100, aac=True))
    bad = tmp_path / "bad.mov"
    damage_sample_sizes(m.path, bad, 40, size)
    with av.open(str(bad)) as c:  # what the damaged input yields
        yields = sum(1 for p in c.demux(c.streams.video[0]) if p.size) if size < 0x3FFFFFFF else None
    out = tmp_path / "out.mov"
    try:
        fix_offset(bad, out, 0.4)
    except MediaError as e:
        msg = str(e)
        assert msg.startswith(f"{bad}: ") and "\n" not in msg
        assert "incomplete" not in msg and "error code" not in msg and "ffmpeg" not in msg.lower()
        assert not out.exists() and list(tmp_path.glob(".out*")) == []
        return
    # The fix succeeded: then it kept every video packet the input yields.
    assert yields is not None and len(video_packets(out)) == yields


def test_a_stream_that_ends_before_its_header_says_is_refused(tmp_path: Path) -> None:
    """Sample tables that point past the end of the file: the copy would keep what FFmpeg reads."""
    m = make_master(tmp_path, MasterSpec(kind="h264_mov", rate="25", frames=100, aac=True))
    data = m.path.read_bytes()
    mdat = data.find(b"mdat")
    cut = tmp_path / "cut.mov"
    # moov first (faststart) so the index survives a file cut short in the middle of the media.
    import subprocess

    from sparsesync_cli.media.ffmpeg import find_ffmpeg

    fast = tmp_path / "fast.mov"
    subprocess.run(
        [find_ffmpeg(), "-loglevel", "error", "-i", str(m.path), "-map", "0", "-c", "copy",
         "-movflags", "+faststart", str(fast)],
        check=True,
    )  # fmt: skip
    data = fast.read_bytes()
    mdat = data.find(b"mdat")
    cut.write_bytes(data[: mdat + (len(data) - mdat) // 3])
    with pytest.raises(MediaError) as err:
        fix_offset(cut, tmp_path / "out.mov", 0.4)
    msg = str(err.value)
    assert msg.startswith(f"{cut}: ") and "damaged" in msg and "\n" not in msg
    assert not (tmp_path / "out.mov").exists()


def test_ffmpeg_error_codes_are_put_in_words() -> None:
    """Regression: a fix failed with the raw `Task finished with error code: -1094995529`."""
    line = last_meaningful_line("[vost#0:0/copy @ 0x55d0] Task finished with error code: -1094995529")
    assert "1094995529" not in line and "invalid data" in line
    assert last_meaningful_line("[mov @ 0x1] moov atom not found\nTask finished with error code: -5") == (
        "moov atom not found"
    )
    assert describe_code(-5) == "input/output error" and describe_code(-12345678) == "an FFmpeg error"


def test_retime_factor_sign() -> None:
    """D > 0 (audio ever earlier) lengthens the audio by 1 + D/60."""
    from sparsesync_cli.media.fix_plan import retime_factor

    assert retime_factor(0.3) == Fraction(201, 200)
    assert retime_factor(-0.6) == Fraction(99, 100)
    assert retime_factor(0.0) is None
    with pytest.raises(UsageError):
        retime_factor(45.0)


def test_the_fix_command_reports_each_stream_and_takes_the_master_options(tmp_path: Path) -> None:
    import json

    from helpers.cli import invoke

    m = make_master(tmp_path, MasterSpec(kind="prores_mov", rate="25", frames=25, pcm_tracks=2))
    out = tmp_path / "out.mov"

    def run(*args: object):
        return invoke(*args)

    res = run("fix", m.path, "-o", out, "--offset", "-0.2", "--conform", "--drift", "0.3", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["applied"] and d["conform"] is True and d["drift_sec_per_min"] == 0.3
    fixes = {f["stream"]: f for f in d["stream_fixes"]}
    assert fixes[0]["action"] == "kept" and fixes[0]["kind"] == "video"
    assert fixes[1]["action"] == fixes[2]["action"] == "rewritten"
    assert fixes[1]["retime_factor"] == pytest.approx(1.005)
    assert same_picture(m.path, out) == []
    for start, samples in audio_tracks(out):  # conformed: the picture's 1 s exactly
        assert start == 0.0 and len(samples) == SAMPLE_RATE
    res = run("fix", m.path, "-o", tmp_path / "b.mov", "--offset", "0.4")
    assert res.exit_code == 0 and "audio 1-2 (pcm_s24le): rewritten, delayed 19200 samples" in res.output
    res = run("fix", m.path, "-o", tmp_path / "c.mov", "--drift", "0.3")
    assert res.exit_code == 2 and "--drift needs --offset" in res.output


def test_damaged_files_are_fixed_whole_or_refused_in_one_clean_line(tmp_path: Path) -> None:
    """Seeded damaged files (bench/fix_fuzz.py): no silent picture loss, no raw error, no temp name."""
    import json
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[1] / "bench" / "fix_fuzz.py"
    proc = subprocess.run(
        [sys.executable, str(bench), "--files", "30", "--seed", "7", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["fixed"] > 0 and report["refused"] > 0, report  # both outcomes are exercised
    for problem in ("silent_losses", "bad_messages", "written_on_failure", "leftovers", "tracebacks"):
        assert report[problem] == [], (problem, report[problem])
    assert report["inputs_modified"] == []


def test_pcm_with_a_hole_is_refused_not_closed_up(tmp_path: Path) -> None:
    """A rewrite renumbers samples: a hole in PCM timestamps would move all sound after it."""
    src = tmp_path / "gap.mkv"
    with av.open(str(src), "w") as out:
        v = out.add_stream("mjpeg", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuvj420p"
        a = out.add_stream("pcm_s16le", rate=SAMPLE_RATE)
        a.layout = "mono"
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame.reformat(format="yuvj420p")):
                out.mux(p)
        for k in range(50):  # 20 ms frames, with 100 ms missing after 0.5 s
            chunk = np.full((1, 960), 1000 * (k % 7), np.int16)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, 960 * k + (4800 if k >= 25 else 0)
            for p in a.encode(frame):
                out.mux(p)
        for stream in (v, a):
            for p in stream.encode(None):
                out.mux(p)
    with pytest.raises(MediaError, match=r"audio stream 1 has a gap of 100\.0 ms at 0\.600 s") as err:
        fix_offset(src, tmp_path / "out.mkv", 0.4)
    assert str(err.value).startswith(f"{src}: ") and not (tmp_path / "out.mkv").exists()


def test_a_changed_start_timecode_fails_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a MOV fix wrote 01:00:00;00 (29.97 drop-frame) back as 00:59:56:12 and said it
    succeeded. The drop-frame flag is now restored; without that step (FFmpeg's muxer alone) the
    timecode check must fail the fix in one line, naming the input, and write nothing."""
    import sparsesync_cli.media.remux as remux

    m = make_master(tmp_path, MasterSpec("prores_mov", "29.97df", frames=30, pcm_tracks=1, size=(64, 36)))
    assert verify.start_timecode(m.path) == "01:00:00;00"
    fixed = tmp_path / "fixed.mov"
    fix_offset(m.path, fixed, -0.2)
    assert verify.start_timecode(fixed) == "01:00:00;00"

    monkeypatch.setattr(remux, "restore_timecode_flags", lambda path, flags: [])
    out = tmp_path / "out.mov"
    with pytest.raises(MediaError) as e:
        fix_offset(m.path, out, 0.4)
    assert "start timecode 01:00:00;00 would read 00:59:56:12" in str(e.value)
    assert str(m.path) in str(e.value) and "incomplete" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([m.path.name, fixed.name])

    # A container that cannot hold the timecode: refused, not a silent loss.
    monkeypatch.undo()
    with pytest.raises(
        MediaError, match=r"01:00:00;00 would be lost in the fixed copy \(a \.avi file cannot hold it"
    ):
        fix_offset(m.path, tmp_path / "out.avi", 0.4)
    assert not (tmp_path / "out.avi").exists()


def test_ffmpeg_stops_when_the_input_scan_finds_damage(tmp_path: Path) -> None:
    """The input is scanned while ffmpeg writes; once the scan finds the input damaged, ffmpeg
    (here an endless one) is stopped at once rather than copying what is lost anyway."""
    import threading
    import time

    from sparsesync_cli.media.ffmpeg import run_ffmpeg

    damaged = threading.Event()
    timer = threading.Timer(0.3, damaged.set)
    timer.start()
    t = time.perf_counter()
    endless = ["-re", "-f", "lavfi", "-i", "anullsrc=r=8000", "-f", "null", "-"]
    with pytest.raises(MediaError, match="ffmpeg was stopped"):
        run_ffmpeg(endless, tmp_path / "in.mov", abort=damaged)
    assert time.perf_counter() - t < 5
    timer.cancel()
