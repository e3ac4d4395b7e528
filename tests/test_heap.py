"""heap_reuse: large buffers freed inside it are reused without new page faults, and leaving it
gives the memory back and restores glibc's behaviour (fresh pages for every large buffer)."""

from __future__ import annotations

import resource

import pytest
import torch

from sparsesync_cli.heap import heap_reuse, heap_reuse_available

pytestmark = pytest.mark.skipif(not heap_reuse_available(), reason="needs glibc")

FLOATS = 16 * 2**20  # 64 MiB: above glibc's largest mmap threshold, a fresh mapping by default
PAGES = FLOATS * 4 // 4096


def faults_of_one_buffer() -> int:
    """Minor page faults taken by allocating, writing and freeing a 64 MiB tensor."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(FLOATS, dtype=torch.float32).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_large_buffers_are_reused_inside_and_fresh_again_after() -> None:
    with heap_reuse():
        with heap_reuse():  # nested: the inner exit must not end the reuse
            faults_of_one_buffer()
        # The first rounds may still touch heap pages never used before (aligned blocks move
        # through the heap); once every page of it has been used, a window's buffers fault no more.
        rounds = [faults_of_one_buffer() for _ in range(16)]
        assert sum(rounds[-3:]) < PAGES // 10, rounds
    # outside again: the kept memory went back to the kernel and a large buffer is mapped afresh
    assert faults_of_one_buffer() > PAGES // 2
