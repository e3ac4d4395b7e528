"""`avsync fix` on post-production masters is exact (issue 21): the masters test matrix.

Masters are made here with the bundled ffmpeg (:mod:`sparsesync_cli.testmedia.masters`) and every
fix runs through the `avsync fix` command in-process. "Exact" (:mod:`sparsesync_cli.testmedia.
verify`): every video and timecode packet identical (count, bytes, timestamps), every audio track
present in its own sample format, rate and layout, and at file time t holding the input's sample
at t - X, digital silence where the input has none; the start timecode unchanged. With
``--conform`` every track spans the picture (starts at 0, ends within 1 ms of the picture's end).

CI runs issue 21's done-when cases; the sweep over more masters and offsets from -2 to +2 s is
marked slow.
"""

from __future__ import annotations

import json
import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.cli import invoke

from sparsesync_cli.testmedia import verify
from sparsesync_cli.testmedia.damage import with_huge_sample_size
from sparsesync_cli.testmedia.masters import (
    FULL_SCALE_24,
    Master,
    MasterSpec,
    concat_copies,
    done_when_specs,
    drift_take_spec,
    make_master,
)

DONE_WHEN_OFFSETS = (-1.0, -0.4, 0.4, 1.2)
SWEEP_OFFSETS = (-2.0, -1.6, -1.2, -0.8, -0.4, -0.02, 0.0, 0.02, 0.4, 0.8, 1.2, 1.6, 2.0)
# Masters of the slow sweep besides the done-when three: every kind, rate and track layout.
SWEEP_SPECS = {
    "prores_mov_25_16pcm": MasterSpec("prores_mov", "25", frames=130, pcm_tracks=16),
    "prores_mov_2997df_1pcm": MasterSpec("prores_mov", "29.97df", frames=156, pcm_tracks=1),
    "h264_mov_25_aac": MasterSpec("h264_mov", "25", frames=130, aac=True),
    "h264_mov_50i_2pcm": MasterSpec("h264_mov", "50i", frames=130, pcm_tracks=2),
    "dnxhd_mxf_23976_1pcm": MasterSpec("dnxhd_mxf", "23.976", frames=125, pcm_tracks=1),
    "xdcam_mxf_50i_16pcm": MasterSpec("xdcam_mxf", "50i", frames=130, pcm_tracks=16),
}
DRIFT_SPEED = 1.005  # the take's audio runs 0.5 % fast: 0.3 s per minute
DRIFT_CHECK_SEC = (2.0, 30.0, 57.0)
DRIFT_TOLERANCE_SEC = 0.001


def avsync(*args):
    return invoke(*args)


class Original:
    """A master and what a fix must keep of it, read once per module."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.path = master.path
        kinds = verify.streams_by_type(master.path)
        self.kept = [i for t in ("video", "data") for i in kinds.get(t, [])]
        self.packets = verify.stream_packets(master.path, self.kept)
        self.audio = verify.read_audio(master.path)
        self.timecode = verify.start_timecode(master.path)
        self.picture = verify.picture_span(master.path)


def problems_after_fix(orig: Original, out: Path, shift: float, *, conform: bool = False) -> list[str]:
    """Everything about ``out`` that is not exactly ``orig`` with its audio moved by ``shift``."""
    problems = []
    kinds = verify.streams_by_type(out)
    kept_out = [i for t in ("video", "data") for i in kinds.get(t, [])]
    if len(kept_out) != len(orig.kept):
        problems.append(f"{len(kept_out)} video/timecode streams, the input has {len(orig.kept)}")
    after = verify.stream_packets(out, kept_out)
    for i, j in zip(orig.kept, kept_out, strict=False):
        problems += verify.compare_packets(orig.packets[i], after[j], f"stream {i}")
    audio = verify.read_audio(out)
    if len(audio) != len(orig.audio):
        problems.append(f"{len(audio)} audio tracks, the input has {len(orig.audio)}")
    # MXF interleaves its tracks frame by frame and its muxer ends every track with the shortest,
    # so moved audio there always spans the picture exactly (fix_offset conforms it): the samples
    # a shift keeps are those inside the picture.
    span = orig.picture if conform or out.suffix == ".mxf" else None
    for before, got in zip(orig.audio, audio, strict=False):
        problems += verify.shift_problems(before, got, shift, span=span, what=f"audio track {before.index}")
    timecode = verify.start_timecode(out)
    if timecode != orig.timecode:
        problems.append(f"start timecode {timecode}, the input's {orig.timecode}")
    return problems


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Original]:
    """Issue 21's three done-when masters (just over 5 s each, so `predict` runs on them)."""
    folder = tmp_path_factory.mktemp("masters")
    return {name: Original(make_master(folder, spec, name)) for name, spec in done_when_specs().items()}


def run_fix(orig: Original, out: Path, offset: float, *extra: str):
    before = orig.path.stat().st_mtime_ns, orig.path.stat().st_size
    res = avsync("fix", orig.path, "-o", out, "--offset", offset, *extra)
    assert (orig.path.stat().st_mtime_ns, orig.path.stat().st_size) == before  # input untouched
    return res


# ---------------------------------------------------------------- the masters themselves
def test_masters_hold_what_the_generator_promises(originals):
    """The yardstick first: codecs, rates, tracks, sample-exact PCM and timecode as specified."""
    expect = {
        "prores_mov": ("prores", Fraction(24000, 1001), 4, "01:00:00:00"),
        "dnxhd_mxf": ("dnxhd", Fraction(30000, 1001), 2, "01:00:00;00"),
        "xdcam_mxf": ("mpeg2video", Fraction(25), 8, "10:00:00:00"),
    }
    for name, orig in originals.items():
        codec, fps, tracks, timecode = expect[name]
        with av.open(str(orig.path)) as c:
            v = c.streams.video[0]
            assert v.codec_context.name == codec, name
            assert v.average_rate == fps, name
            assert v.codec_context.format.name.startswith("yuv422p"), name
            if name == "xdcam_mxf":  # 1080i50: interlaced 4:2:2 profile
                assert (v.codec_context.width, v.codec_context.height) == (1920, 1080)
                frame = next(c.decode(v))
                assert frame.interlaced_frame
        video = orig.packets[orig.kept[0]]
        assert len(video) == orig.master.frames, name
        assert orig.picture == (0, orig.master.frames / fps), name
        assert len(orig.audio) == tracks, name
        assert orig.timecode == timecode, name
        for ch, track in enumerate(orig.audio):
            assert (track.codec, track.rate, track.samples.shape[1]) == ("pcm_s24le", 48000, 1), name
            assert track.start == 0 and not track.gaps, name
            assert np.array_equal(track.samples[:, 0] >> 8, orig.master.samples(ch)), (name, ch)
        # every track is its own signal: no two alike, so a swapped track cannot pass
        firsts = {track.samples[:4800, 0].tobytes() for track in orig.audio}
        assert len(firsts) == len(orig.audio)


def test_shift_check_catches_a_one_sample_error(originals):
    """The exactness check itself: a track off by one sample, or not silent in front, fails."""
    track = originals["prores_mov"].audio[0]
    moved = verify.PcmTrack(**{**track.__dict__, "start": track.start + 19201})
    assert verify.shift_problems(track, moved, 0.4)
    moved = verify.PcmTrack(**{**track.__dict__, "start": track.start + 19200})
    assert verify.shift_problems(track, moved, 0.4) == []
    noisy = np.concatenate([np.full((19200, 1), 256, np.int32), track.samples])
    padded = verify.PcmTrack(**{**track.__dict__, "samples": noisy})
    assert any("silence" in p for p in verify.shift_problems(track, padded, 0.4))


# ---------------------------------------------------------------- predict
def _predict(shared_dir: Path, *paths: Path):
    """`avsync predict PATHS --json` with the tiny fixture model: one model load for all."""
    fx = shared_dir / "fixtures/sparsesync"
    model = ["--checkpoint", fx / "tiny_sparsesync.pt", "--config", fx / "cfg-tiny_sparsesync.yaml"]
    res = avsync("predict", *paths, *model, "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def test_predict_works_on_an_mxf_master(originals, shared_dir):
    """The XDCAM master (MPEG-2 4:2:2 1080i50 long GOP, 8 tracks, MXF OP1a: the least ordinary
    read) is read and scored: a window, an offset. The other masters: the slow sweep (the model
    costs ~6 CPU-s a file, ~5 s to load)."""
    paths = [originals["xdcam_mxf"].path]
    results = _predict(shared_dir, *paths)
    assert [d["path"] for d in results] == [str(p) for p in paths]
    for d in results:
        assert d["ok"] and d["error"] is None, (d["path"], d.get("error"))
        assert d["windows"], f"{d['path']}: no window was scored"
        assert d["offset_sec"] in d["grid"] and 0.0 <= d["confidence"] <= 1.0


# ---------------------------------------------------------------- fix: done when
@pytest.mark.parametrize("offset", DONE_WHEN_OFFSETS)
@pytest.mark.parametrize("name", list(done_when_specs()))
def test_fix_is_exact_on_masters(originals, tmp_path, name, offset):
    """Issue 21 done-when: exit 0, every video packet identical, every track sample-exact, TC kept."""
    orig = originals[name]
    out = tmp_path / f"fixed{orig.path.suffix}"
    res = run_fix(orig, out, offset)
    assert res.exit_code == 0, res.output
    assert problems_after_fix(orig, out, offset) == []


@pytest.mark.parametrize("offset", [0.4, -1.0])
@pytest.mark.parametrize("name", list(done_when_specs()))
def test_conform_makes_every_track_span_the_picture(originals, tmp_path, name, offset):
    """`--conform`: every track starts at 0 and ends within 1 ms of the picture, still exact."""
    orig = originals[name]
    out = tmp_path / f"conformed{orig.path.suffix}"
    res = run_fix(orig, out, offset, "--conform")
    assert res.exit_code == 0, res.output
    assert problems_after_fix(orig, out, offset, conform=True) == []


def test_fix_keeps_a_drop_frame_timecode_in_mov(tmp_path):
    """A MOV's 29.97 drop-frame timecode survives a fix (found by the sweep: the copy kept the
    tmcd sample but lost its drop-frame flag, so 01:00:00;00 read back as 00:59:56:12)."""
    spec = MasterSpec("prores_mov", "29.97df", frames=30, pcm_tracks=1, size=(64, 36))
    orig = Original(make_master(tmp_path / "in", spec, "df"))
    assert orig.timecode == "01:00:00;00"
    out = tmp_path / "fixed.mov"
    res = run_fix(orig, out, 0.4)
    assert res.exit_code == 0, res.output
    assert problems_after_fix(orig, out, 0.4) == []


def test_fix_json_says_what_happened_to_each_stream(originals, tmp_path):
    """`fix --json` records per stream what was done (item 6; the record's shape is the fix's)."""
    orig = originals["prores_mov"]  # a container the fix handles today: this is about the record
    out = tmp_path / "fixed.mov"
    res = run_fix(orig, out, 0.4, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout.splitlines()[-1])
    assert d["applied"] and d["offset_sec"] == pytest.approx(0.4)
    per_stream = [v for v in d.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    assert per_stream, f"no per-stream records in {sorted(d)}"
    assert max(len(v) for v in per_stream) >= len(orig.audio) + 1  # the video and every track


# ---------------------------------------------------------------- drift
@pytest.fixture(scope="module")
def drift_take(tmp_path_factory) -> Original:
    """A 60 s take (tiny picture) whose two PCM tracks run 0.5 % fast."""
    return Original(make_master(tmp_path_factory.mktemp("take"), drift_take_spec(DRIFT_SPEED), "take"))


def _lags(master: Master, track: verify.PcmTrack, channel: int, search: float = 0.02) -> list[float]:
    """How far ``track`` lags the undrifted take at each check time (> 0: later), within ``search``."""
    rate, window = track.rate, 0.1
    signal = track.samples[:, 0].astype(np.float64) / (FULL_SCALE_24 * 256)
    lags = []
    for t in DRIFT_CHECK_SEC:
        # centred on t: within the window the drift itself moves the sound by up to 0.5 ms
        first = t - window / 2
        ref = master.reference(channel, first + np.arange(round(window * rate)) / rate)
        a = round((first - search) * rate) - track.start
        seg = signal[a : a + len(ref) + 2 * round(search * rate)]
        lags.append(verify.lag_sec(seg, ref, rate, search))
    return lags


def test_the_drifting_take_drifts(drift_take):
    """The yardstick: before any fix the take's audio runs early, the sound of picture time t at
    t / 1.005 (-0.01, -0.149, -0.284 s); the lag measure finds that to a tenth of a millisecond."""
    lags = _lags(drift_take.master, drift_take.audio[0], 0, search=0.3)
    assert lags == pytest.approx([t / DRIFT_SPEED - t for t in DRIFT_CHECK_SEC], abs=1e-4)


def test_fix_drift_retimes_the_audio_to_the_picture(drift_take, tmp_path):
    """Done-when: `fix take.mov --offset 0 --drift 0.3`: audio within 1 ms at 2, 30, 57 s; video kept."""
    out = tmp_path / "out.mov"
    res = run_fix(drift_take, out, 0, "--drift", "0.3")
    assert res.exit_code == 0, res.output
    kinds = verify.streams_by_type(out)
    kept_out = [i for t in ("video", "data") for i in kinds.get(t, [])]
    after = verify.stream_packets(out, kept_out)
    for i, j in zip(drift_take.kept, kept_out, strict=True):
        assert verify.compare_packets(drift_take.packets[i], after[j], f"stream {i}") == []
    audio = verify.read_audio(out)
    assert len(audio) == len(drift_take.audio)
    for ch, (before, track) in enumerate(zip(drift_take.audio, audio, strict=True)):
        assert (track.codec, track.rate, track.layout) == (before.codec, before.rate, before.layout)
        lags = _lags(drift_take.master, track, ch)
        assert max(abs(x) for x in lags) <= DRIFT_TOLERANCE_SEC, (
            f"track {ch} lags {lags} s at {DRIFT_CHECK_SEC}"
        )
    assert verify.start_timecode(out) == drift_take.timecode


@pytest.mark.parametrize("ext", ["mov", "mxf"])
def test_bench_masters_repeat_a_mov_with_a_timecode_track(tmp_path, ext):
    """bench/fix_speed.py builds its 2 GB masters by concatenating a MOV segment that has a
    timecode track (reported failing on that track): every picture and PCM track repeated, one
    timecode, the segment's."""
    spec = MasterSpec("prores_mov", "25", frames=10, pcm_tracks=8, size=(64, 36))
    segment = make_master(tmp_path, spec, "segment")
    out = concat_copies(segment.path, tmp_path / f"master.{ext}", 3, spec.start_timecode)
    kinds = verify.streams_by_type(out)
    assert len(kinds["video"]) == 1 and len(kinds["audio"]) == 8
    assert len(verify.stream_packets(out, kinds["video"])[kinds["video"][0]]) == 30
    assert verify.start_timecode(out) == "01:00:00:00"


# ---------------------------------------------------------------- damaged inputs
@pytest.fixture(scope="module")
def delivery(tmp_path_factory) -> Path:
    """A 6 s H.264 + AAC MP4, the shape the fuzz run damaged."""
    spec = MasterSpec("h264_mp4", "25", frames=150, aac=True, timecode=None, size=(160, 90))
    return make_master(tmp_path_factory.mktemp("delivery"), spec, "clip").path


RAW_CODE = re.compile(r"error code|-\d{6,}")


@pytest.mark.parametrize("track", [b"vide", b"soun"])
def test_a_damaged_sample_table_is_never_a_silent_loss(delivery, tmp_path, track):
    """One huge `stsz` entry: the fix keeps every packet the input yields and says the input is
    damaged, or fails with one line naming the input; no output, no temporary file, no raw
    ffmpeg error code, no blame on the ffmpeg version."""
    src = tmp_path / "damaged.mp4"
    with_huge_sample_size(delivery, src, handler=track, at_fraction=0.3)
    yielded = verify.stream_packets(src)
    assert sum(map(len, yielded.values())) < sum(map(len, verify.stream_packets(delivery).values()))
    out = tmp_path / "out.mp4"
    res = avsync("fix", src, "-o", out, "--offset", "0.4")
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert "newer ffmpeg" not in res.output and "AVSYNC_FFMPEG" not in res.output
    assert not RAW_CODE.search(res.output), res.output
    assert ".incomplete" not in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["damaged.mp4"] + (["out.mp4"] if out.exists() else [])
    )
    if res.exit_code != 0:
        assert res.exit_code == 1 and len(lines) == 1, res.output
        assert str(src) in lines[0], res.output
        assert not out.exists()
        return
    # Success: every packet the input yields is in the output, the audio's moved by 0.4 s ...
    got = verify.stream_packets(out)
    kinds = verify.streams_by_type(src)
    assert verify.streams_by_type(out) == kinds
    for i in kinds["video"]:
        assert verify.compare_packets(yielded[i], got[i], f"video {i}") == []
    for i in kinds["audio"]:
        assert [p.digest for p in got[i]] == [p.digest for p in yielded[i]], f"audio {i} packets"
        moved = [float(b.pts - a.pts) for a, b in zip(yielded[i], got[i], strict=True)]
        assert moved == pytest.approx([0.4] * len(moved), abs=1e-3)
    # ... and it is not silent: a line besides the "wrote" line says the input is damaged.
    assert any(src.name in line for line in lines if not line.startswith("wrote")), res.output


# ---------------------------------------------------------------- the slow sweep
@pytest.fixture(scope="module")
def sweep_masters(tmp_path_factory, originals) -> dict[str, Original]:
    folder = tmp_path_factory.mktemp("sweep")
    made = {name: Original(make_master(folder, spec, name)) for name, spec in SWEEP_SPECS.items()}
    return {**originals, **made}


SWEEP_NAMES = [*done_when_specs(), *SWEEP_SPECS]


@pytest.mark.slow
@pytest.mark.parametrize("conform", [False, True], ids=["plain", "conform"])
@pytest.mark.parametrize("name", SWEEP_NAMES)
def test_fix_sweep_offsets_from_minus_2_to_plus_2(sweep_masters, tmp_path, name, conform):
    """Every master x offsets -2..+2 s (and with --conform): exact per issue 21 items 1-3."""
    orig = sweep_masters[name]
    failures = {}
    for offset in SWEEP_OFFSETS:
        out = tmp_path / f"fixed{offset:+.2f}{orig.path.suffix}"
        res = run_fix(orig, out, offset, *(["--conform"] if conform else []))
        if conform and orig.master.spec.aac:
            # Conforming AAC means re-encoding it: refused in one line unless --reencode-audio
            lines = res.output.strip().splitlines()
            if res.exit_code != 2 or len(lines) != 1 or "--reencode-audio" not in lines[0] or out.exists():
                failures[offset] = f"AAC --conform not refused in one line: {res.output.strip()}"
            continue
        if res.exit_code != 0:
            failures[offset] = res.output.strip()
            continue
        if orig.master.spec.aac:
            found = _aac_problems(orig, out, offset, conform)
        else:
            found = problems_after_fix(orig, out, offset, conform=conform)
        if found:
            failures[offset] = found
        os.unlink(out)
    assert failures == {}


def _aac_problems(orig: Original, out: Path, shift: float, conform: bool) -> list[str]:
    """Compressed audio moved by stream copy: the picture kept, the packets kept, the decoded
    sound where the shift puts it (away from the decoder's warm-up, to float precision)."""
    problems = []
    kinds = verify.streams_by_type(out)
    kept_out = [i for t in ("video", "data") for i in kinds.get(t, [])]
    after = verify.stream_packets(out, kept_out)
    for i, j in zip(orig.kept, kept_out, strict=False):
        problems += verify.compare_packets(orig.packets[i], after[j], f"stream {i}")
    before, (got,) = orig.audio[0], verify.read_audio(out)
    k = round(shift * before.rate)
    warm = 4096  # two AAC frames: where a decoder that starts later has caught up
    lo = max(before.start + k, 0, got.start) + warm
    hi = min(before.end + k, got.end) - warm
    if hi <= lo:
        return [*problems, f"audio: holds {got.start}..{got.end}, nothing to compare"]
    a = got.samples[lo - got.start : hi - got.start]
    b = before.samples[lo - k - before.start : hi - k - before.start]
    if not np.allclose(a, b, atol=1e-5):
        problems.append(f"audio: decoded sound not where a {shift} s shift puts it")
    if conform:
        end = orig.picture[1]
        if got.start != 0 or abs(got.end_sec - float(end)) > 1024 / before.rate:
            problems.append(
                f"audio spans {got.start_sec:.4f}..{got.end_sec:.4f} s, the picture ..{float(end):.4f}"
            )
    return problems


@pytest.mark.slow
def test_predict_works_on_every_sweep_master(sweep_masters, shared_dir):
    names = ["prores_mov", "dnxhd_mxf", *SWEEP_SPECS]
    results = _predict(shared_dir, *(sweep_masters[name].path for name in names))
    assert len(results) == len(names)
    for d in results:
        assert d["ok"] and d["windows"], (d["path"], d.get("error"))
