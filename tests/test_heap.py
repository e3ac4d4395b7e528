"""heap_reuse: large buffers freed inside it are reused without new page faults, and leaving it
gives the memory back and restores glibc's behaviour (fresh pages for every large buffer); a
batch (predict over files, evaluate over items) keeps one heap from its first file to its last."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest
import torch
from helpers.fake_model import FakeModel

from sparsesync_cli.analysis.predict import iter_predictions
from sparsesync_cli.evaluation.protocol import ProtocolItem
from sparsesync_cli.evaluation.run import evaluate_items
from sparsesync_cli.heap import heap_reuse, heap_reuse_available
from sparsesync_cli.testmedia.synth import Clip, cached_clip

pytestmark = pytest.mark.skipif(not heap_reuse_available(), reason="needs glibc")

FLOATS = 16 * 2**20  # 64 MiB: above glibc's largest mmap threshold, a fresh mapping by default
PAGES = FLOATS * 4 // 4096
# Outside heap_reuse a 64 MiB block is mostly fresh pages; how much exactly depends on what the
# process did before: after the fuzz test's batch of broken files glibc served 60-80 % of one
# from pages it already held (3,098 and 6,164 faults of 16,384 in two full runs). Inside reuse
# a block faults under 10 %, so more than that after a batch means the reuse ended.
FRESH_AGAIN = PAGES // 10
# Whether glibc maps a large block afresh depends on everything the process allocated before, so
# each test runs in a fresh interpreter of its own: in one worker of a parallel run, after other
# test files, glibc served a 64 MiB block with 126 faults although the reuse had ended.
CHILD_ENV = "AVSYNC_HEAP_TEST_CHILD"


def ran_in_a_fresh_process(request: pytest.FixtureRequest) -> bool:
    """Run the calling test in a new Python process (pytest on its node id) and assert it passed;
    True in the parent, False in that child (which then runs the test body itself)."""
    if os.environ.get(CHILD_ENV):
        return False
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            request.node.nodeid,
        ],
        cwd=request.config.rootpath,
        env={**os.environ, CHILD_ENV: "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    return True


def faults_of_one_buffer() -> int:
    """Minor page faults taken by allocating, writing and freeing a 64 MiB tensor."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(FLOATS, dtype=torch.float32).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_large_buffers_are_reused_inside_and_fresh_again_after(request) -> None:
    if ran_in_a_fresh_process(request):
        return
    with heap_reuse():
        with heap_reuse():  # nested: the inner exit must not end the reuse
            faults_of_one_buffer()
        # The first rounds may still touch heap pages never used before (aligned blocks move
        # through the heap); once every page of it has been used, a window's buffers fault no more.
        rounds = [faults_of_one_buffer() for _ in range(16)]
        assert sum(rounds[-3:]) < PAGES // 10, rounds
    # outside again: the kept memory went back to the kernel and a large buffer is mapped afresh
    assert faults_of_one_buffer() > FRESH_AGAIN


class BufferModel(FakeModel):
    """A stand-in model whose every call allocates, writes and frees one 64 MiB activation (as a
    real network's windows do) and records the page faults that took."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: list[int] = []

    def logits(self, frames, audio) -> torch.Tensor:
        self.faults.append(faults_of_one_buffer())
        return super().logits(frames, audio)


@pytest.fixture(scope="module")
def five_second_clips(tmp_path_factory):
    clip = cached_clip(tmp_path_factory.mktemp("clip"), Clip(duration=5.0)).path
    return [clip] * 12


def test_a_batch_keeps_one_heap_so_later_files_fault_no_fresh_pages(request, five_second_clips) -> None:
    if ran_in_a_fresh_process(request):
        return
    # One window per file: with a heap per file, every file's window mapped its buffers afresh.
    model = BufferModel()
    results = list(iter_predictions(five_second_clips, model))
    assert all(r.ok for r in results) and len(model.faults) == len(five_second_clips)
    assert sum(model.faults[-3:]) < PAGES // 10, model.faults
    assert faults_of_one_buffer() > FRESH_AGAIN  # the batch over: back to glibc's defaults


def test_evaluate_runs_its_batches_on_one_heap(request, five_second_clips) -> None:
    if ran_in_a_fresh_process(request):
        return
    # evaluate_items ran its model calls with no heap reuse at all: every item faulted ~2 GB in
    items = [ProtocolItem(path=p, offset_sec=0.0, vstart_sec=0.0) for p in five_second_clips]
    model = BufferModel()
    records = list(evaluate_items(items, model, root="/"))
    assert all(r["ok"] for r in records) and len(model.faults) == len(items)
    assert sum(model.faults[-3:]) < PAGES // 10, model.faults
