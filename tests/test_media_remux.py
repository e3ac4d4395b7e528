"""fix_offset moves the sound by exactly the offset, keeps everything else, and never harms the input.

Checked on the decoded output: the white flash stays on its frame and the click moves by the
offset (within 1 ms), in each container; streams, chapters and metadata survive.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from sparsesync_cli.errors import MediaError, UsageError
from sparsesync_cli.media import ffmpeg as ffmpeg_mod
from sparsesync_cli.media.decode import MediaReader
from sparsesync_cli.media.ffmpeg import find_ffmpeg, last_meaningful_line, run_ffmpeg
from sparsesync_cli.media.probe import probe
from sparsesync_cli.media.remux import fix_offset
from sparsesync_cli.testmedia.synth import Clip, cached_clip, measure

CLICK_TOLERANCE_SEC = 0.001
# Matroska/WebM store milliseconds, so each file pins its audio to +-0.5 ms, and FFmpeg rounds
# the Opus pre-skip it re-applies after a cut once more: compare two such files to 1 ms + 1 tick.
MATROSKA_TOLERANCE_SEC = 0.002

FIX_CLIPS = [
    Clip(),  # H.264 + AAC in MP4: edit lists, priming
    Clip(container="mov", vcodec="prores_ks", pix_fmt="yuv422p10le", acodec="pcm_s16le"),
    Clip(container="mkv", acodec="ac3", layout="5.1"),
    Clip(container="webm", vcodec="libvpx-vp9", acodec="libopus"),
    Clip(container="ts"),
]


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("offset", [0.4, -0.4], ids=["audio-early", "audio-late"])
@pytest.mark.parametrize("clip", FIX_CLIPS, ids=lambda c: c.name)
def test_the_click_moves_by_the_offset_and_the_picture_stays(
    media_root: Path, tmp_path: Path, clip: Clip, offset: float
) -> None:
    src = cached_clip(media_root, clip).path
    src_hash = digest(src)
    dst = tmp_path / f"fixed{src.suffix}"
    result = fix_offset(src, dst, offset)
    before, after = measure(src), measure(dst)
    if clip.container == "ts":
        # MPEG-TS has no fixed origin (file time 0 is its earliest packet, which the shift may
        # change): compare the click with the start of the picture.
        moved = (after.click_sec - after.video_start_sec) - (before.click_sec - before.video_start_sec)
    else:
        assert after.flash_frame == before.flash_frame
        assert after.video_span == before.video_span
        moved = after.click_sec - before.click_sec
    tolerance = MATROSKA_TOLERANCE_SEC if clip.container in ("mkv", "webm") else CLICK_TOLERANCE_SEC
    assert abs(moved - offset) <= tolerance  # audio early (> 0) is delayed, late advanced
    assert result.audio_shift_sec == offset and result.audio_streams == (probe(src).audio.index,)
    assert result.streams == len(av.open(str(src)).streams)
    assert digest(src) == src_hash  # the input is untouched
    assert [p.name for p in tmp_path.iterdir()] == [dst.name]  # no temporary file left behind


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_streams_chapters_and_metadata_survive(media_root: Path, tmp_path: Path, suffix: str) -> None:
    src = cached_clip(media_root, Clip(extra_audio=True, chapters=True)).path
    dst = tmp_path / f"fixed{suffix}"
    result = fix_offset(src, dst, 0.25)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        assert [len(b.streams.video), len(b.streams.audio)] == [1, 2]
        assert [s.metadata.get("language") for s in b.streams.audio] == ["eng", "fra"]
        tags = {k.lower(): v for k, v in b.metadata.items()}  # Matroska spells tags in capitals
        assert tags["title"] == a.metadata["title"] == "avsync synthetic clip"
        assert tags["comment"] == a.metadata["comment"]
        chapters = [(float(c["start"] * c["time_base"]), c["metadata"].get("title")) for c in b.chapters()]
        assert chapters == [(0.0, "one"), (3.0, "two")]
        # MP4 keeps its chapters as a text track too: rebuilt once, never duplicated.
        assert len(b.streams) == len(a.streams) - (1 if suffix == ".mkv" else 0) == result.streams
    assert result.chapters == 2 and len(result.audio_streams) == 2
    # All audio tracks moved together.
    for i, click in enumerate(
        (
            cached_clip(media_root, Clip(extra_audio=True, chapters=True)).click_sec,
            cached_clip(media_root, Clip(extra_audio=True, chapters=True)).extra_click_sec,
        )
    ):
        assert abs(measure(dst, audio_stream=i).click_sec - (click + 0.25)) <= CLICK_TOLERANCE_SEC


def test_only_the_chosen_audio_stream_moves(media_root: Path, tmp_path: Path) -> None:
    truth = cached_clip(media_root, Clip(extra_audio=True))
    dst = tmp_path / "fixed.mp4"
    result = fix_offset(truth.path, dst, -0.3, audio_stream=1)
    assert result.audio_streams == (probe(truth.path, audio_stream=1).audio.index,)
    assert abs(measure(dst, audio_stream=0).click_sec - truth.click_sec) <= CLICK_TOLERANCE_SEC
    assert abs(measure(dst, audio_stream=1).click_sec - (truth.extra_click_sec - 0.3)) <= CLICK_TOLERANCE_SEC


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_advancing_past_zero_trims_the_audio_and_keeps_the_video(
    media_root: Path, tmp_path: Path, suffix: str
) -> None:
    src = cached_clip(media_root, Clip()).path
    dst = tmp_path / f"fixed{suffix}"
    result = fix_offset(src, dst, -0.5)
    assert result.audio_trimmed_sec == pytest.approx(0.5)
    before, after = probe(src), probe(dst)
    assert after.video.start_sec == pytest.approx(before.video.start_sec, abs=1e-3)
    assert after.video_span == before.video_span  # the picture still starts at zero
    # MP4 cuts sample-exactly (edit list). Matroska drops the AAC frames that start before zero,
    # and FFmpeg re-applies the codec delay (one more frame) to the first one it keeps.
    assert 0.0 <= after.audio.start_sec <= (0.001 if suffix == ".mp4" else 2 * 1024 / 48000 + 0.001)
    assert after.audio.end_sec == pytest.approx(before.audio.end_sec - 0.5, abs=1e-3)


def test_a_container_change_follows_the_extension(media_root: Path, tmp_path: Path) -> None:
    truth = cached_clip(media_root, Clip(container="mkv"))
    dst = tmp_path / "fixed.mp4"
    fix_offset(truth.path, dst, 0.2)
    assert probe(dst).format_name.startswith("mov,mp4")
    assert abs(measure(dst).click_sec - (truth.click_sec + 0.2)) <= CLICK_TOLERANCE_SEC


# -- every offset the models report, in the containers that trim exactly -----------------------

OFFSET_GRID = [round(-2.0 + 0.2 * k, 1) for k in range(21)]  # the models' range, in their 0.2 s steps
# AAC at 44.1 kHz mono and at 16 kHz, as the real clips in ../shared/media are.
EDIT_LIST_CLIPS = [Clip(rate=44100, layout="mono"), Clip(rate=16000, layout="mono", vcodec="mpeg4")]


def decoded(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    with MediaReader(path, torchvision_compat=False) as r:
        return r.read_audio(0, r.audio_span[1]), r.audio_span


@pytest.mark.parametrize("offset", [-2.0, -1.0, 0.01, 1.0, 2.0])
@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
@pytest.mark.parametrize("clip", EDIT_LIST_CLIPS, ids=lambda c: c.name)
def test_an_edit_list_output_moves_the_sound_exactly_for_any_offset(
    media_root: Path, tmp_path: Path, clip: Clip, suffix: str, offset: float
) -> None:
    """Regression: advancing by >= 1 s failed ("lands +40 ms off"); delaying played the priming.

    Advanced by a second or more, the output kept audio packets over 1 s before zero, which
    FFmpeg's MP4 demuxer skips and then times one sample off. Delayed, the muxer's edit list
    started at the AAC priming frame the source's edit list skipped, so a codec frame of
    warm-up sound played before the real first sample.
    """
    truth = cached_clip(media_root, clip)
    dst = tmp_path / f"fixed{suffix}"
    fix_offset(truth.path, dst, offset)
    before, after = probe(truth.path), probe(dst)
    one_sample = 1 / clip.rate
    assert after.audio.start_sec == pytest.approx(max(0.0, before.audio.start_sec + offset), abs=one_sample)
    assert after.audio.end_sec == pytest.approx(before.audio.end_sec + offset, abs=one_sample)
    assert after.video_span == before.video_span
    assert abs(measure(dst).click_sec - (truth.click_sec + offset)) <= CLICK_TOLERANCE_SEC
    if offset > 0:  # the same packets from the first on: the same sound, sample for sample
        src_audio, _ = decoded(truth.path)
        out_audio, (lo, _) = decoded(dst)
        assert lo == round(offset * 16000)
        np.testing.assert_allclose(out_audio[lo : lo + 8000], src_audio[:8000], rtol=0, atol=1e-6)


REAL_CLIPS = [
    "vggsound_3qesirWAGt4_25fps_256side_16k.mp4",
    "lrs3_C8zY0oAdQrs_00018_25fps_256side_16k.mp4",
    "vggsound_3qesirWAGt4_original_30fps_44k.mp4",
    "vggsound_ZYc410CE4Rg_original_30fps_44k.mp4",
]


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
@pytest.mark.parametrize("name", REAL_CLIPS)
def test_the_real_clips_are_fixed_exactly_over_the_whole_offset_grid(
    shared_dir: Path, tmp_path: Path, name: str, suffix: str
) -> None:
    """Every offset from -2 to +2 s in 0.2 s steps: the sound lands where the offset puts it.

    Measured on the decoded 16 kHz audio: the lag that best aligns output and input (cross-
    correlation over +-20 samples) must be the offset exactly; MP4/MOV also start and end
    exactly (their edit lists trim sample-exactly), Matroska ends exactly and starts after a
    dropped codec frame or two.
    """
    src = shared_dir / "media" / name
    before = probe(src)
    src_audio, (src_lo, src_hi) = decoded(src)
    for offset in OFFSET_GRID:
        dst = tmp_path / f"fixed{suffix}"
        fix_offset(src, dst, offset, force=True)
        after = probe(dst)
        assert after.video_span == before.video_span, offset
        assert after.audio.end_sec == pytest.approx(before.audio.end_sec + offset, abs=1e-3), offset
        start = max(0.0, before.audio.start_sec + offset)
        if suffix == ".mkv":
            assert start - 1e-3 <= after.audio.start_sec <= start + 2 * 1024 / before.audio.sample_rate + 1e-3
        else:
            assert after.audio.start_sec == pytest.approx(start, abs=1 / before.audio.sample_rate), offset
        out_audio, (lo, hi) = decoded(dst)
        k = round(offset * 16000)
        a, b = max(lo, src_lo + k) + 1600, min(hi, src_hi + k) - 1600
        lags = range(-20, 21)
        corr = [float(np.dot(out_audio[a:b], src_audio[a - k - lag : b - k - lag])) for lag in lags]
        # Matroska stores milliseconds: its audio may sit up to half a millisecond off.
        assert abs(lags[int(np.argmax(corr))]) <= (8 if suffix == ".mkv" else 0), offset


def test_a_fix_removes_what_killed_fixes_to_the_same_output_left(media_root: Path, tmp_path: Path) -> None:
    """Regression: a kill -9 during fix left its temporary file (``.NAME.XXXXXXXX.incomplete.EXT``,
    ``.avsync-tmp.EXT`` in 0.1.0) for good.

    The next fix to that output removes them once a minute old; nothing else is touched.
    """
    src = cached_clip(media_root, Clip()).path
    dst = tmp_path / "fixed.mp4"
    hour_ago = time.time() - 3600
    stale = [
        tmp_path / ".fixed.mp4.k3_9zq0a.incomplete.mp4",
        tmp_path / ".fixed.mp4.abcdefgh.incomplete.mp4",
        tmp_path / ".fixed.mp4.abcdefgh.avsync-tmp.mp4",  # as avsync 0.1.0 named them
    ]
    kept = [
        tmp_path / ".fixed.mp4.young123.incomplete.mp4",  # may be a fix still running
        tmp_path / ".fixed.mp4.abcdefgh.incomplete",  # another writer's (no extension)
        tmp_path / ".other.mp4.abcdefgh.avsync-tmp.mp4",  # another output's
        tmp_path / ".fixed.mp4.abcdefgh.avsync-tmp.mkv",  # another container's
        tmp_path / ".fixed.mp4.abcdefg.avsync-tmp.mp4",  # not what tempfile names (7 characters)
        tmp_path / "fixed.mp4.abcdefgh.avsync-tmp.mp4",  # not hidden
        tmp_path / ".fixed.mp4.abcdefgh.avsync-tmp.mp4.keep",
        tmp_path / "notes.txt",
    ]
    for path in stale + kept:
        path.write_bytes(b"partial output")
        if "young" not in path.name:
            os.utime(path, (hour_ago, hour_ago))
    folder = tmp_path / ".fixed.mp4.dirdirdi.avsync-tmp.mp4"  # a folder of that name is not ours
    folder.mkdir()
    os.utime(folder, (hour_ago, hour_ago))
    fix_offset(src, dst, 0.2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [*kept, folder, dst])


# -- refusals and failures --------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_a_fixed_file_gets_the_mode_of_a_file_the_user_creates(
    media_root: Path, tmp_path: Path, umask: int
) -> None:
    # A post-production pipeline reads the corrected file as another user or service: it must not
    # keep a temporary file's private 0600.
    src = cached_clip(media_root, Clip()).path
    old = os.umask(umask)
    try:
        fix_offset(src, tmp_path / "fixed.mp4", 0.2)
        (tmp_path / "by-hand.txt").write_text("x")
    finally:
        os.umask(old)
    mode = (tmp_path / "fixed.mp4").stat().st_mode & 0o777
    assert mode == (tmp_path / "by-hand.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_an_existing_output_is_kept_unless_forced(media_root: Path, tmp_path: Path) -> None:
    src = cached_clip(media_root, Clip()).path
    dst = tmp_path / "taken.mp4"
    dst.write_bytes(b"precious")
    with pytest.raises(UsageError, match="exists"):
        fix_offset(src, dst, 0.2)
    assert dst.read_bytes() == b"precious"
    fix_offset(src, dst, 0.2, force=True)
    assert probe(dst).audio.start_sec > 0.1


def test_the_input_is_never_the_output(media_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(cached_clip(media_root, Clip()).path.read_bytes())
    src_hash = digest(src)
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    hard = tmp_path / "hard.mp4"
    os.link(src, hard)
    for dst in (src, link, hard, tmp_path / "." / "clip.mp4"):
        with pytest.raises(UsageError, match="the output is the input file"):
            fix_offset(src, dst, 0.2, force=True)
    assert digest(src) == src_hash


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("missing/out.mp4", UsageError, "output folder does not exist"),
        ("noextension", UsageError, "needs an extension"),
        ("out.avi", UsageError, "compressed \\(aac\\).*needs a re-encode; add --reencode-audio"),
        ("out.webm", MediaError, "ffmpeg failed: Only VP8 or VP9 or AV1 video"),  # H.264 + AAC do not fit
    ],
)
def test_outputs_that_cannot_work_fail_cleanly(
    media_root: Path, tmp_path: Path, name: str, error: type[Exception], match: str
) -> None:
    src = cached_clip(media_root, Clip()).path
    with pytest.raises(error, match=match) as err:
        fix_offset(src, tmp_path / name, 0.2)
    # The output path is wrong, or the input cannot go there (its compressed audio, ffmpeg on it).
    named = tmp_path / name if error is UsageError and name != "out.avi" else src
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{named}: ")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_a_bad_input_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        fix_offset(tmp_path / "nope.mp4", tmp_path / "out.mp4", 0.2)
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(MediaError, match="not a readable media file"):
        fix_offset(junk, tmp_path / "out.mp4", 0.2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


# -- the ffmpeg binary ------------------------------------------------------------------------


def test_find_ffmpeg_honours_the_override_and_explains_a_missing_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ffmpeg_mod.FFMPEG_ENV, str(tmp_path / "no-ffmpeg"))
    with pytest.raises(MediaError, match="AVSYNC_FFMPEG points to"):
        find_ffmpeg()
    monkeypatch.delenv(ffmpeg_mod.FFMPEG_ENV)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # not installed
    monkeypatch.setenv("PATH", str(tmp_path))  # and no ffmpeg on PATH
    with pytest.raises(MediaError, match="no ffmpeg binary found: `pip install imageio-ffmpeg`"):
        find_ffmpeg()


def test_an_ffmpeg_failure_says_why_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        run_ffmpeg(["-i", str(tmp_path / "absent.mkv"), "-f", "null", "-"], tmp_path / "absent.mkv")
    assert str(err.value).startswith(f"{tmp_path / 'absent.mkv'}: ffmpeg failed: ")
    assert "No such file or directory" in str(err.value) and "\n" not in str(err.value)
    stderr = (
        "[mp4 @ 0x55d0c0ffee00] Could not find tag for codec vorbis in stream #1, codec not currently "
        "supported in container\n[out#0/mp4 @ 0x5] Could not write header (incorrect codec parameters ?): "
        "Invalid argument\nConversion failed!\n"
    )
    assert last_meaningful_line(stderr).startswith("Could not find tag for codec vorbis in stream #1")
