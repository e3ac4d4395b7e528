"""The decoder puts every picture and every sample where the file's clock says.

Synthetic clips (sparsesync_cli/testmedia/synth.py) carry a white flash frame and a click at known times in
each container and codec; the decoded 25 fps / 16 kHz streams must show them within half a frame
and 1 ms. The real clips in ../shared/media must reproduce the paper's pipeline exactly.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sparsesync_cli.errors import MediaError
from sparsesync_cli.features.common import center_crop
from sparsesync_cli.media import audio as audio_mod
from sparsesync_cli.media import video as video_mod
from sparsesync_cli.media.decode import MediaReader
from sparsesync_cli.media.probe import check_audio_format, check_geometry, probe
from sparsesync_cli.testmedia.synth import (
    CLICK_AMPLITUDE,
    Clip,
    cached_clip,
    file_events,
    make_still_tail,
    measure,
)

HALF_FRAME_SEC = 0.5 / 25
CLICK_TOLERANCE_SEC = 0.001

# One clip per container/codec pair the bundled FFmpeg can encode.
CODECS = [
    Clip(),
    Clip(vcodec="libx265", fps=Fraction(30), rate=44100),
    Clip(vcodec="libsvtav1"),
    Clip(container="mov", vcodec="prores_ks", pix_fmt="yuv422p10le", acodec="pcm_s16le"),
    Clip(container="mov", vcodec="mjpeg", pix_fmt="yuvj420p", acodec="ac3"),
    Clip(container="mkv", acodec="libmp3lame", rate=44100),
    Clip(container="mkv", vcodec="ffv1", acodec="flac"),
    Clip(container="mkv", vcodec="libsvtav1", acodec="libopus"),
    Clip(container="webm", vcodec="libvpx-vp9", acodec="libopus"),
    Clip(container="webm", vcodec="libvpx-vp9", acodec="vorbis", rate=44100),
    Clip(container="avi", vcodec="mpeg4", acodec="libmp3lame", rate=44100, fps=Fraction(30)),
    Clip(container="avi", vcodec="mjpeg", pix_fmt="yuvj420p", acodec="pcm_s16le"),
    Clip(container="ts"),
    Clip(container="ts", vcodec="libx265", acodec="ac3"),
    Clip(container="ts", vcodec="mpeg4", acodec="libmp3lame", rate=44100),
]
# Timing variants: late starts, variable frame rate, channel layouts and rates.
TIMING = [
    Clip(video_start=0.5, audio_start=1.0),
    Clip(container="mkv", video_start=0.5, audio_start=1.0),
    Clip(container="ts", video_start=0.5, audio_start=1.0),
    Clip(container="webm", vcodec="libvpx-vp9", acodec="libopus", video_start=1.5),
    Clip(vfr=True),
    Clip(container="mkv", vfr=True),
    Clip(layout="5.1", rate=44100),
    Clip(container="mkv", acodec="ac3", layout="5.1"),
]
# Containers that cannot keep the encoder's timing exactly: AVI has no timestamps for the MP3
# encoder delay (1105 samples play before the sound) and shifts the video onto its 1/30 s
# ticks; MPEG-TS has no origin, so file time 0 is its earliest packet (the AAC priming).
NOT_AS_ENCODED = {"avi-mpeg4-libmp3lame-44100-stereo-30fps", "ts-mpeg4-libmp3lame-44100-stereo-25fps"}


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.mark.parametrize("clip", CODECS + TIMING, ids=lambda c: c.name)
def test_events_land_where_the_file_timestamps_put_them(media_root: Path, clip: Clip) -> None:
    truth = cached_clip(media_root, clip)
    flash, click = file_events(truth.path)  # plain PyAV: raw frame timestamps, no resampling
    got = measure(truth.path)
    assert abs(got.flash_frame / 25 - flash) <= HALF_FRAME_SEC + 1e-9
    assert abs(got.click_sec - click) <= CLICK_TOLERANCE_SEC


@pytest.mark.parametrize("clip", CODECS + TIMING, ids=lambda c: c.name)
def test_events_land_where_they_were_encoded(media_root: Path, clip: Clip) -> None:
    if clip.name in NOT_AS_ENCODED:
        pytest.skip("the container cannot represent the encoder's timing (see NOT_AS_ENCODED)")
    truth = cached_clip(media_root, clip)
    got = measure(truth.path)
    frame, sample = got.flash_frame, got.click_sample
    if clip.container == "ts":
        # No fixed origin: only the picture-to-sound distance is defined.
        measured = sample / 16000 - frame / 25
        assert abs(measured - (truth.click_sec - truth.flash_sec)) <= HALF_FRAME_SEC + CLICK_TOLERANCE_SEC
        return
    assert abs(frame / 25 - truth.flash_sec) <= HALF_FRAME_SEC + 1e-9
    assert abs(sample / 16000 - truth.click_sec) <= CLICK_TOLERANCE_SEC
    # Exactly one white picture is kept on the grid unless the flash frame lasts longer.
    if not clip.vfr and clip.fps <= 25:
        with MediaReader(truth.path) as r:
            lo, hi = r.video_span
            assert int((r.read_frames(lo, hi - lo).mean(axis=(1, 2, 3)) > 150).sum()) == 1


def test_late_streams_start_at_their_presentation_time(media_root: Path) -> None:
    info = probe(cached_clip(media_root, Clip(container="mkv", video_start=0.5, audio_start=1.0)).path)
    assert info.video.start_sec == pytest.approx(0.5)
    assert info.video_span[0] == 13  # 0.5 s * 25 = 12.5, rounded half up as ffmpeg's fps filter
    assert info.audio.start_sec == pytest.approx(1.0)
    assert info.audio_span[0] == 16000
    late = probe(
        cached_clip(
            media_root, Clip(container="webm", vcodec="libvpx-vp9", acodec="libopus", video_start=1.5)
        ).path
    )
    assert late.video_span[0] == 38  # 37.5 rounds up
    with MediaReader(late.path) as r:
        with pytest.raises(ValueError, match="outside"):
            r.read_frames(0, 10)  # before the first picture: the planner must not ask
        assert not r.read_audio(-500, 1000)[:500].any()  # before file time 0: silence


def test_a_short_file_reports_its_durations(media_root: Path) -> None:
    truth = cached_clip(media_root, Clip(container="mkv", duration=2.0, flash_sec=1.0, click_sec=1.5))
    with MediaReader(truth.path) as r:
        assert r.info.duration_sec == pytest.approx(2.0, abs=0.03)
        assert r.info.video.end_sec == pytest.approx(2.0)
        assert r.video_span == (0, 50)
        assert abs(r.audio_span[1] - 32000) < 1024
        audio = r.read_audio(0, 80000)  # a whole window: real audio, then silence
        assert audio.shape == (80000,) and not audio[r.audio_span[1] :].any()
        assert r.read_frames(0, 50).shape == (50, 256, 340, 3)


@pytest.mark.parametrize("suffix", [".mov", ".mkv"])
def test_a_last_picture_held_long_fills_the_grid_to_its_end(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"slides{suffix}"
    make_still_tail(path, hold_sec=1.5)  # last picture at 3.96 s, shown until 5.46 s
    with MediaReader(path) as r:
        assert r.video_span == (0, 137) and r.info.video.end_sec == pytest.approx(5.46)
        brightness = r.read_frames(0, 137).mean(axis=(1, 2, 3))
    assert (brightness[99:] > 150).all() and (brightness[:99] < 100).all()


@pytest.mark.parametrize(
    ("rotation", "size", "corner"),
    [(90, (256, 340), "top-right"), (180, (340, 256), "bottom-right"), (270, (256, 340), "bottom-left")],
)
def test_rotation_is_applied_as_a_player_shows_it(
    media_root: Path, rotation: int, size: tuple[int, int], corner: str
) -> None:
    truth = cached_clip(media_root, Clip(rotation=rotation, container="mov" if rotation == 270 else "mp4"))
    with MediaReader(truth.path) as r:
        assert r.info.video.rotation == rotation
        assert (r.info.video.display_width, r.info.video.display_height) == (
            (120, 160) if rotation != 180 else (160, 120)
        )
        frame = r.read_frames(0, 1)[0].astype(int)
        assert (frame.shape[1], frame.shape[0]) == size
    red = (frame[..., 0] > 150) & (frame[..., 1] < 90)
    ys, xs = np.nonzero(red)
    h, w = red.shape
    where = ("top" if ys.mean() < h / 2 else "bottom") + "-" + ("left" if xs.mean() < w / 2 else "right")
    assert where == corner  # the marker is stored top-left


def test_non_square_pixels_are_shown_at_display_aspect(media_root: Path) -> None:
    truth = cached_clip(media_root, Clip(container="mkv", sar=Fraction(2, 1)))
    with MediaReader(truth.path) as r:
        assert r.info.video.sample_aspect_ratio == (2, 1)
        frame = r.read_frames(0, 1)[0].astype(int)
        assert (frame.shape[1], frame.shape[0]) == (682, 256)  # 320x120 displayed, shorter side to 256
    red = (frame[..., 0] > 150) & (frame[..., 1] < 90)
    ys, xs = np.nonzero(red)
    # The marker is 40x30 stored pixels, 80x30 displayed: 8:3 on screen.
    assert (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1) == pytest.approx(8 / 3, rel=0.05)


def test_mono_is_the_mean_of_the_channels(media_root: Path) -> None:
    # 16 kHz PCM: no resampling, so the click sample is exact. L = +click, R = -click / 2.
    truth = cached_clip(
        media_root, Clip(container="mkv", acodec="pcm_s16le", rate=16000, channel_gains=(1.0, -0.5))
    )
    with MediaReader(truth.path) as r:
        click = r.read_audio(48000, 1)[0]
    # The mean is 0.25 * click; ffmpeg's `-ac 1` would give (L + R) / sqrt(2) = 0.35 * click.
    assert click == pytest.approx(0.25 * CLICK_AMPLITUDE, abs=1e-4)


def test_the_chosen_audio_stream_is_read(media_root: Path) -> None:
    truth = cached_clip(media_root, Clip(extra_audio=True))
    first = measure(truth.path).click_sec
    second = measure(truth.path, audio_stream=1).click_sec
    info = probe(truth.path, audio_stream=1)
    assert len(info.audio_streams) == 2 and info.audio.index == info.audio_streams[1].index
    assert abs(first - truth.click_sec) <= CLICK_TOLERANCE_SEC
    assert abs(second - truth.extra_click_sec) <= CLICK_TOLERANCE_SEC
    with pytest.raises(MediaError, match=r"audio stream 2 requested but the file has 2"):
        probe(truth.path, audio_stream=2)


# -- streaming: forward reads continue, jumps seek, a seek returns what a sequential read does --

SEEK_CLIPS = [
    Clip(aopts=(("aac_pns", "0"),)),  # H.264 with B-frames; AAC without noise substitution
    Clip(container="mkv", aopts=(("aac_pns", "0"),)),  # millisecond timestamps
    Clip(container="ts", vcodec="libx265", acodec="libmp3lame", rate=44100),
    Clip(container="webm", vcodec="libvpx-vp9", acodec="libopus", vfr=True),
    Clip(container="mov", fps=Fraction(30), acodec="pcm_s16le", rate=44100, video_start=0.5, audio_start=1.0),
    Clip(container="avi", vcodec="mpeg4", acodec="libmp3lame", rate=44100, fps=Fraction(30)),
]


@pytest.mark.parametrize("clip", SEEK_CLIPS, ids=lambda c: c.name)
def test_reads_after_a_seek_equal_a_sequential_decode(
    media_root: Path, clip: Clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cached_clip(media_root, clip).path
    with MediaReader(path) as r:
        lo, hi = r.video_span
        frames = r.read_frames(lo, hi - lo)
        audio = r.read_audio(0, r.audio_span[1])
    seeks = {"video": 0, "audio": 0}
    for name, mod, cls in (("video", video_mod, "VideoDecoder"), ("audio", audio_mod, "AudioDecoder")):
        real = getattr(mod, cls)._seek

        def counting(self, target, _real=real, _name=name):
            seeks[_name] += 1
            return _real(self, target)

        monkeypatch.setattr(getattr(mod, cls), "_seek", counting)
    rng = np.random.default_rng(7)
    # Every read jumps backward (a seek), landing at random phases of the frame and sample grids.
    video_starts = sorted(rng.integers(lo + 30, hi - 20, 5), reverse=True)
    audio_starts = sorted(rng.integers(20000, r.audio_span[1] - 8000, 5), reverse=True)
    with MediaReader(path) as r:
        for first, s in zip(video_starts, audio_starts, strict=True):
            np.testing.assert_array_equal(r.read_frames(first, 20), frames[first - lo : first - lo + 20])
            np.testing.assert_allclose(r.read_audio(s, 8000), audio[s : s + 8000], rtol=0, atol=1e-6)
    assert seeks["video"] >= 4 and seeks["audio"] >= 4


# Decoders that carry state through the whole stream (AAC noise substitution and AC-3 dither draw
# from a random generator no seek resets; Opus folds noise from a seed) next to ones that forget
# (Vorbis, FLAC, MP3); mono and resampled audio; several containers.
RANDOM_ACCESS_CLIPS = [
    Clip(vcodec="mpeg4", rate=44100, layout="mono"),  # AAC-LC mono 44.1 kHz, noise substitution on
    Clip(container="mov", vcodec="mpeg4", rate=16000, layout="mono"),  # the authors' format
    Clip(container="mov", vcodec="mjpeg", pix_fmt="yuvj420p", acodec="ac3"),
    Clip(container="mkv", vcodec="mpeg4", acodec="libopus", layout="mono"),
    Clip(container="webm", vcodec="libvpx-vp9", acodec="vorbis", rate=44100),  # (stereo only)
    Clip(container="mkv", vcodec="ffv1", acodec="flac", rate=22050),
    Clip(container="ts", vcodec="mpeg4", acodec="libmp3lame", rate=44100, layout="mono"),
]


@pytest.mark.parametrize("clip", RANDOM_ACCESS_CLIPS, ids=lambda c: c.name)
def test_random_access_returns_what_a_sequential_read_does(media_root: Path, clip: Clip) -> None:
    """Regression: AAC read after a seek differed from a sequential read by up to 1e-3.

    FFmpeg's AAC decoder draws noise-substituted bands from a random generator that runs through
    the whole stream; a decoder started by a seek drew other values. Windows read in any order,
    by one reader or each by a fresh one, must equal the sequential read: frames bit for bit,
    audio to float rounding.
    """
    path = cached_clip(media_root, clip).path
    with MediaReader(path) as r:
        lo, hi = r.video_span
        frames = r.read_frames(lo, hi - lo)
        audio = r.read_audio(0, r.audio_span[1])
    rng = np.random.default_rng(3)
    positions = rng.permutation(np.linspace(0.1, 0.9, 6))  # random order: back and forth
    with MediaReader(path) as r:
        for fraction in positions:
            s = int(fraction * (audio.shape[0] - 16000))
            np.testing.assert_allclose(r.read_audio(s, 16000), audio[s : s + 16000], rtol=0, atol=1e-6)
            f = lo + int(fraction * (hi - lo - 25))
            np.testing.assert_array_equal(r.read_frames(f, 25), frames[f - lo : f - lo + 25])
    for fraction in positions[:2]:  # a seek right after opening
        s = int(fraction * (audio.shape[0] - 16000))
        with MediaReader(path) as r:
            np.testing.assert_allclose(r.read_audio(s, 16000), audio[s : s + 16000], rtol=0, atol=1e-6)


def test_a_forward_scan_decodes_forward_only(media_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = cached_clip(media_root, Clip(duration=8.0)).path
    opened = {"video": 0, "audio": 0}
    for name, cls in (("video", video_mod.VideoDecoder), ("audio", audio_mod.AudioDecoder)):
        real = cls._open

        def counting(self, _real=real, _name=name):
            opened[_name] += 1
            return _real(self)

        monkeypatch.setattr(cls, "_open", counting)
    with MediaReader(path) as r:
        reference = r.read_frames(0, 200)
    opened.update(video=0, audio=0)
    with MediaReader(path) as r:
        for start in range(0, 200 - 50 + 1, 25):  # 2 s windows, 1 s hop: overlapping, increasing
            np.testing.assert_array_equal(r.read_frames(start, 50), reference[start : start + 50])
            r.read_audio(start * 640, 32000)
            assert len(r._video._cache) <= video_mod.CACHE_FRAMES
            assert sum(c.shape[0] for c in r._audio._chunks) <= audio_mod.KEEP_SAMPLES + 32000
    assert opened == {"video": 1, "audio": 1}  # one open each, never a re-decode from the start


# -- conformance with the paper's pipeline on real clips --------------------------------------


def test_case0_frames_and_audio_match_the_reference(shared_dir: Path) -> None:
    ref = np.load(shared_dir / "fixtures/sparsesync/case0_tensors.npz")
    case0 = shared_dir / "media/vggsound_3qesirWAGt4_25fps_256side_16k.mp4"
    with MediaReader(case0) as r:
        frames = r.read_frames(0, 125)
        audio = r.read_audio(0, 80000)
        later = r.read_audio(32000, 80000)
    np.testing.assert_array_equal(center_crop(frames).numpy(), ref["frames_uint8"])
    # By default the file starts as the paper's reader starts it (torchvision seeks to 0, which
    # skips the AAC priming packet: 448 zeros and a 128-sample ramp), sample for sample.
    np.testing.assert_allclose(audio, ref["audio_f32"], rtol=0, atol=1e-6)
    assert not ref["audio_f32"][:448].any()
    # A player decodes the priming packet: the same from sample 576 on, real sound before it.
    with MediaReader(case0, torchvision_compat=False) as r:
        player = r.read_audio(0, 80000)
        np.testing.assert_array_equal(r.read_audio(32000, 80000), later)
    np.testing.assert_allclose(player[576:], ref["audio_f32"][576:], rtol=0, atol=1e-6)
    assert np.abs(player[:448]).max() > 1e-3


@pytest.mark.parametrize(
    ("clip", "quirk"),
    [
        (Clip(vcodec="mpeg4", rate=16000, layout="mono"), True),  # the authors' format
        (Clip(container="mov", vcodec="mpeg4", rate=16000, layout="mono"), True),
        (Clip(vcodec="mpeg4", rate=44100, layout="mono"), False),  # the 44.1 kHz original
        (Clip(container="mkv", vcodec="mpeg4", rate=16000, layout="mono"), False),
        (Clip(vcodec="mpeg4", acodec="libmp3lame", rate=16000, layout="mono"), False),
    ],
    ids=lambda v: v.name if isinstance(v, Clip) else str(v),
)
def test_the_priming_quirk_applies_only_to_the_authors_format(
    media_root: Path, clip: Clip, quirk: bool
) -> None:
    """Regression: the paper's reader quirk changed the first AAC frame of every MP4, 44.1 kHz too."""
    path = cached_clip(media_root, clip).path
    with MediaReader(path) as r:
        default = r.read_audio(0, 8000)
    with MediaReader(path, torchvision_compat=False) as r:
        player = r.read_audio(0, 8000)
    np.testing.assert_array_equal(default[2000:], player[2000:])  # never more than the first frame
    assert (np.abs(default[:2000] - player[:2000]).max() > 1e-4) == quirk


def audio_window(shared_dir: Path, first: int) -> np.ndarray:
    with MediaReader(shared_dir / "media/vggsound_3qesirWAGt4_25fps_256side_16k.mp4") as r:
        return r.read_audio(first, 80000)


@pytest.mark.parametrize(
    "name", ["vggsound_3qesirWAGt4_original_30fps_44k.mp4", "vggsound_ZYc410CE4Rg_original_30fps_44k.mp4"]
)
def test_originals_match_the_ffmpeg_command_line(shared_dir: Path, name: str) -> None:
    """The paper's re-encode filters, run by an ffmpeg binary, give the same frames and audio."""
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    path = shared_dir / "media" / name
    with MediaReader(path, torchvision_compat=False) as r:  # the ffmpeg command line decodes like a player
        lo, hi = r.video_span
        frames = r.read_frames(lo, hi - lo)
        audio = r.read_audio(0, r.audio_span[1])
        h, w, channels = *frames.shape[1:3], r.info.audio.channels
    vf = "fps=25,scale=iw*256/min(iw\\,ih):ih*256/min(iw\\,ih),crop=trunc(iw/2)*2:trunc(ih/2)*2,format=rgb24"
    cmd = [ffmpeg, "-v", "error", "-i", str(path)]
    raw = subprocess.run([*cmd, "-vf", vf, "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    np.testing.assert_array_equal(frames, np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3))
    raw = subprocess.run(
        [*cmd, "-vn", "-ar", "16000", "-f", "f32le", "-"], capture_output=True, check=True
    ).stdout
    cli = np.frombuffer(raw, np.float32).reshape(-1, channels).mean(axis=1)  # mono = mean
    assert cli.shape == audio.shape
    # The resampler's flush differs in the last few samples only.
    np.testing.assert_allclose(audio[:-16], cli[:-16], rtol=0, atol=1e-6)


# -- bad input --------------------------------------------------------------------------------


def _bad_inputs(root: Path) -> dict[str, Path]:
    (root / "folder").mkdir(exist_ok=True)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("not a video\n")
    (root / "noise.mkv").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    whole = cached_clip(root, Clip()).path.read_bytes()  # moov at the end: the cut loses the index
    (root / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    return {
        "missing": root / "nope.mp4",
        "directory": root / "folder",
        "empty": root / "empty.mp4",
        "text": root / "notes.mp4",
        "random bytes": root / "noise.mkv",
        "truncated mp4": root / "cut.mp4",
        "no audio": cached_clip(root, Clip(acodec=None)).path,
        "no video": cached_clip(root, Clip(container="m4a", vcodec=None)).path,
    }


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "empty"),
        ("text", "not a readable media file"),
        ("random bytes", "not a readable media file"),
        ("truncated mp4", "not a readable media file"),
        ("no audio", "no audio stream"),
        ("no video", "no video stream"),
    ],
)
def test_bad_input_is_one_line_naming_file_and_cause(media_root: Path, case: str, cause: str) -> None:
    path = _bad_inputs(media_root)[case]
    with pytest.raises(MediaError) as err:
        MediaReader(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and cause in message


def stretch_in_track_header(src: Path, dst: Path, factor: int) -> None:
    """Copy an MP4 with its first track's tkhd matrix scaling x by ``factor`` (a damaged header:
    FFmpeg then reports a sample aspect ratio of factor:1)."""
    data = bytearray(src.read_bytes())
    matrix = data.find(b"tkhd") + 44  # type, version/flags, 3 times, id, reserved, duration, ...
    assert struct.unpack(">i", data[matrix : matrix + 4])[0] == 1 << 16
    data[matrix : matrix + 4] = struct.pack(">i", factor << 16)
    dst.write_bytes(data)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc")
def test_an_absurd_display_geometry_is_refused_before_any_frame_is_scaled(
    media_root: Path, tmp_path: Path
) -> None:
    """Regression: a tkhd matrix giving SAR ~252:1 scaled every frame to 114408x256 (13 GB peak).

    Refused in one line at probe, and nothing is allocated in proportion to the header: the peak
    memory of opening the file and asking for a window of frames stays small.
    """
    bad = tmp_path / "stretched.mp4"
    stretch_in_track_header(cached_clip(media_root, Clip(vcodec="mpeg4")).path, bad, 252)
    assert av.open(str(bad)).streams.video[0].sample_aspect_ratio == 252  # FFmpeg reads it so
    script = (  # VmHWM: this process's own peak (ru_maxrss would include pytest's, from the fork)
        "import sys\n"
        "from sparsesync_cli.errors import MediaError\n"
        "from sparsesync_cli.media.decode import MediaReader\n"
        "try:\n"
        "    MediaReader(sys.argv[1]).read_frames(0, 125)\n"
        "except MediaError as exc:\n"
        "    print(exc)\n"
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(bad)], capture_output=True, text=True, check=True)
    message, peak_kib = run.stdout.splitlines()
    assert message == (
        f"{bad}: the video's sample aspect ratio 252:1 would stretch each picture 252x, beyond what "
        "any player shows (a damaged header?)"
    )
    assert int(peak_kib) < 1024 * 1024  # far below one window at the stretched size (8 GB)


@pytest.mark.parametrize(
    ("width", "height", "sar", "cause"),
    [
        (720, 576, Fraction(64, 45), None),  # PAL 16:9 anamorphic
        (1440, 1080, Fraction(4, 3), None),  # HDV
        (3840, 1080, Fraction(1), None),  # 32:9 panorama
        (1080, 1920, Fraction(1), None),  # portrait phone video
        (160, 120, Fraction(64012788, 254017), "sample aspect ratio 64012788:254017"),
        (160, 120, Fraction(1, 5), "sample aspect ratio 1:5"),
        (16000, 100, Fraction(1), "aspect of 160:1"),
        (100, 2000, Fraction(1, 2), "aspect of 0.025:1"),
        (65535, 65535, Fraction(1), "picture size 65535x65535"),
    ],
)
def test_display_geometry_is_bounded(width: int, height: int, sar: Fraction, cause: str | None) -> None:
    if cause is None:
        check_geometry(width, height, sar, "clip.mp4")
    else:
        with pytest.raises(MediaError, match=re.escape(cause)):
            check_geometry(width, height, sar, "clip.mp4")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_media_error(media_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "locked.mp4"
    path.write_bytes(cached_clip(media_root, Clip()).path.read_bytes())
    path.chmod(0)
    with pytest.raises(MediaError, match="permission denied"):
        probe(path)


def test_a_damaged_file_still_reads_its_good_windows(media_root: Path, tmp_path: Path) -> None:
    clean = cached_clip(media_root, Clip(duration=8.0, mux_opts=(("movflags", "faststart"),))).path
    data = bytearray(clean.read_bytes())
    cut = len(data) * 55 // 100  # index at the front intact, the media data garbage from ~4.4 s
    data[cut:] = np.random.default_rng(1).integers(0, 256, len(data) - cut, np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with MediaReader(clean) as r:
        good_frames, good_audio = r.read_frames(0, 75), r.read_audio(0, 48000)
    with MediaReader(damaged) as r:
        assert r.video_span == (0, 200)  # the index still describes 8 s
        with pytest.raises(MediaError, match=r"damaged\.mp4: video frame \d+ .* cannot be decoded"):
            r.read_frames(150, 50)
        with pytest.raises(MediaError, match=r"damaged\.mp4: audio at .* cannot be decoded"):
            r.read_audio(112000, 16000)
        # The windows before the damage still decode, and exactly as from the clean file.
        np.testing.assert_array_equal(r.read_frames(0, 75), good_frames)
        np.testing.assert_array_equal(r.read_audio(0, 48000), good_audio)


def test_a_cut_file_reports_the_duration_it_really_has(media_root: Path, tmp_path: Path) -> None:
    whole = cached_clip(media_root, Clip(container="mkv", duration=8.0)).path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole[: len(whole) * 6 // 10])  # the header still says 8 s
    with MediaReader(cut) as r:
        assert 3.0 < r.info.duration_sec < 6.0
        lo, hi = r.video_span
        assert r.read_frames(lo, hi - lo).shape[0] == hi - lo


def write_pcm_clip(path: Path, rate: int, audio_pts_sec: tuple[float, ...], seconds: int = 6) -> None:
    """A small mkv: ``seconds`` of black 25 fps video, and one second of PCM tone at each of
    ``audio_pts_sec`` (mkv stores any rate and any timestamp, as a damaged header may claim)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aus = out.add_stream("pcm_s16le", rate=rate)
        aus.layout = "mono"
        for i in range(25 * seconds):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        tone = (3000 * np.sin(np.arange(rate) * 0.1)).astype(np.int16)[None]
        for t in audio_pts_sec:
            frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, round(t * rate)
            out.mux(aus.encode(frame))
        out.mux(aus.encode(None))


def test_an_absurd_audio_sample_rate_is_refused_in_one_line(tmp_path: Path) -> None:
    """1 Hz audio would be resampled into 16,000 samples per input sample: refused at probe."""
    path = tmp_path / "500hz.mkv"
    write_pcm_clip(path, 500, (0.0, 1.0, 2.0, 3.0, 4.0, 5.0))
    with pytest.raises(MediaError) as err:
        MediaReader(path)
    assert str(err.value) == (
        f"{path}: the audio's sample rate 500 Hz is outside what any recorder makes "
        "(4000-768000 Hz; a damaged header?)"
    )


@pytest.mark.parametrize(
    ("rate", "channels", "cause"),
    [
        (8000, 1, None),
        (768000, 2, None),
        (44100, 24, None),  # 22.2 sound
        (0, 2, None),  # unknown in the header: the decoder's frames are checked instead
        (3999, 2, "sample rate 3999 Hz"),
        (10**9, 2, "sample rate 1000000000 Hz"),
        (48000, 65, "claims 65 channels"),
    ],
)
def test_audio_format_is_bounded(rate: int, channels: int, cause: str | None) -> None:
    if cause is None:
        check_audio_format(rate, channels, "clip.mp4")
    else:
        with pytest.raises(MediaError, match=re.escape(cause)):
            check_audio_format(rate, channels, "clip.mp4")


def test_a_far_audio_timestamp_jump_is_silence_that_costs_no_memory(tmp_path: Path) -> None:
    """Regression: a timestamp ~30 years on made the gap's silence one 58 TiB array (MemoryError,
    an unexpected error for the file). The window still reads: the tone, then silence."""
    path = tmp_path / "jump.mkv"
    write_pcm_clip(path, 16000, (0.0, 1e9))
    audio = MediaReader(path).read_audio(0, 80000)
    assert np.abs(audio[:15000]).max() > 0.05
    assert not audio[16100:].any()
