"""Randomised passes: the feasibility rule of the authors' TemporalCropAndOffsetRandomFeasible, the
uniform draws, and their reproducibility from (seed, pass, row) alone."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from sparsesync_cli.analysis.windows import window_at
from sparsesync_cli.distributed.work import chunk_items, item_chunks
from sparsesync_cli.errors import MediaError, UsageError
from sparsesync_cli.evaluation.passes import cut_spans, draw_window, pass_items, start_frames
from sparsesync_cli.evaluation.protocol import Draw, ProtocolItem

GRID21 = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
TEN_SEC = ((0, 250), (0, 160_000))  # a VGGSound clip: 250 frames, 160,000 samples, both from 0
# frames a 2-decimal start does not read back (int(4.6 * 25) == 114): never drawn
UNREACHABLE = {29, 57, 58, 113, 114, 115, 116, 201, 203, 205, 207, 226, 228, 230, 232}


@pytest.mark.parametrize("offset", [-2.0, -1.0, -0.2, 0.0, 0.4, 2.0])
def test_start_frames_are_the_authors_range(offset):
    # the authors: v_start_sec ~ U[max(0, -off), min(vmax, vmax - off)], vmax = (250 - 125) / 25 s,
    # floored to a frame: every frame from lo to hi - 1, hi itself with probability 0
    lo, hi = max(0, round(-offset * 25)), min(125, 125 - round(offset * 25))
    frames = start_frames(*TEN_SEC, offset)
    assert frames == [f for f in range(lo, hi) if f not in UNREACHABLE]
    for f in frames:  # each one reads back as its frame, video and audio inside the clip
        w = window_at(round(f / 25, 2), offset)
        assert w.frame_start == f and 0 <= w.sample_start <= 160_000 - 80_000


def test_the_clip_is_cut_to_10_s_and_to_the_shorter_stream():
    assert cut_spans((0, 500), (0, 320_000)) == ((0, 250), (0, 160_000))  # 20 s: the first 10 s
    assert cut_spans((0, 250), (0, 112_000)) == ((0, 175), (0, 112_000))  # audio ends at 7 s
    assert cut_spans((25, 300), (0, 200_000)) == ((25, 275), (16_000, 176_000))  # video from 1 s
    assert max(start_frames(*cut_spans((0, 500), (0, 320_000)), 0.0)) == 124  # not 249


def test_a_draw_is_reproducible_from_seed_pass_and_row_alone():
    rows = [ProtocolItem(f"clip{i}", 0.0, 0.0) for i in range(40)]
    items = pass_items(rows, 3, seed=5)
    assert len(items) == 120 and [it.draw for it in items[:4]] == [
        Draw(5, 0, 0),
        Draw(5, 1, 0),
        Draw(5, 2, 0),
        Draw(5, 0, 1),
    ]  # row-major: a clip's passes are neighbours (one reader)
    drawn = {it.key: draw_window(it, *TEN_SEC, GRID21) for it in items}
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)  # another order, as other workers would take them
    assert {it.key: draw_window(it, *TEN_SEC, GRID21) for it in shuffled} == drawn
    again = {it.key: draw_window(it, *TEN_SEC, GRID21) for it in pass_items(rows, 3, seed=5)}
    assert again == drawn
    other = {it.key[2:]: draw_window(it, *TEN_SEC, GRID21) for it in pass_items(rows, 3, seed=6)}
    same = sum(
        (d.offset_sec, d.vstart_sec) == (other[(6, *k[3:])].offset_sec, other[(6, *k[3:])].vstart_sec)
        for k, d in drawn.items()
    )
    assert same < 5  # another seed, other draws
    windows = {(d.offset_sec, d.vstart_sec) for d in drawn.values()}
    assert len(windows) > 100  # the passes of a row draw different items
    for d in drawn.values():
        assert d.offset_sec in [round(g, 2) for g in GRID21]
        assert round(d.vstart_sec * 25) in start_frames(*TEN_SEC, d.offset_sec)


def test_offsets_and_starts_are_uniform():
    rows = [ProtocolItem("c", 0.0, 0.0)] * 1
    items = pass_items(rows, 4200, seed=0)
    drawn = [draw_window(it, *TEN_SEC, GRID21) for it in items]
    counts = Counter(d.offset_sec for d in drawn)
    assert len(counts) == 21 and all(140 <= n <= 260 for n in counts.values())  # 200 expected each
    # offset +2.0 s: 72 start frames (0..74 less 29, 57, 58), ~200 draws: each half ~100
    starts = [round(d.vstart_sec * 25) for d in drawn if d.offset_sec == 2.0]
    assert set(starts) <= set(start_frames(*TEN_SEC, 2.0)) and len(set(starts)) > 50
    early = sum(f < 37 for f in starts)
    assert 0.35 < early / len(starts) < 0.65


def test_a_short_clip_draws_only_offsets_that_fit_and_a_too_short_one_fails():
    six_sec = ((0, 150), (0, 96_000))  # fits 5 s at |offset| <= 1 s
    items = pass_items([ProtocolItem("short", 0.0, 0.0)], 300, seed=0)
    offsets = {draw_window(it, *six_sec, GRID21).offset_sec for it in items}
    assert offsets == {round(g, 2) for g in GRID21 if abs(g) <= 1.0 + 1e-9}
    with pytest.raises(MediaError, match="too short"):
        draw_window(items[0], (0, 100), (0, 64_000), GRID21)
    plain = ProtocolItem("p", 0.4, 1.0)
    assert draw_window(plain, *six_sec, GRID21) is plain  # not a drawn item: left alone
    with pytest.raises(UsageError):
        pass_items([plain], 0, seed=0)


def test_drawn_items_travel_through_ray_chunks():
    items = pass_items([ProtocolItem("a", 0.4, 1.0), ProtocolItem("b", -0.2, 2.0)], 2, seed=9)
    chunks = item_chunks([*items, ProtocolItem("plain", 0.2, 0.5)], 2)
    back = [it for c in chunks for it in chunk_items(c)]
    assert back == [*items, ProtocolItem("plain", 0.2, 0.5)]
    assert json.loads(chunks[0])["items"][0] == ["a", 0.4, 1.0, 9, 0, 0]


def test_drawn_items_on_ray_chunks_equal_the_local_run(shared_dir, tmp_path):
    from helpers.fake_model import FakeModel

    from sparsesync_cli.distributed.work import Assembler, EvaluateJob, run_piece
    from sparsesync_cli.evaluation.run import evaluate_items

    (tmp_path / "real.mp4").symlink_to(shared_dir / "media/vggsound_3qesirWAGt4_25fps_256side_16k.mp4")
    items = pass_items([ProtocolItem("real", 0.0, 0.0), ProtocolItem("missing", 0.0, 0.0)], 2, seed=3)
    here = FakeModel(lambda t: -2.0 + t / 10)
    local = list(evaluate_items(items, here, tmp_path, batch_size=2))
    remote = FakeModel(lambda t: -2.0 + t / 10)
    job = EvaluateJob(remote.info, str(tmp_path), batch_size=2)
    pieces = [run_piece(remote, p) for c in item_chunks(items, 2) for p in job.decode(c)]
    asm = Assembler(job)
    records = [r for p in reversed(pieces) for r in asm.add(p) or []]
    assert sorted(records, key=lambda r: (r["path"], r["pass"])) == sorted(
        local, key=lambda r: (r["path"], r["pass"])
    )
    real = [r for r in local if r["path"] == "real"]
    assert all(r["ok"] for r in real) and [r["pass"] for r in real] == [0, 1]
    assert {(r["offset_sec"], r["vstart_sec"]) for r in real} == {
        (d.offset_sec, d.vstart_sec) for d in (draw_window(it, *TEN_SEC, GRID21) for it in items[:2])
    }  # the 10 s clip's spans are TEN_SEC: its draws are the ones computed here
    assert [r["ok"] for r in local if r["path"] == "missing"] == [False, False]
