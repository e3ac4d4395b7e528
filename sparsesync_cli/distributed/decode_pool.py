"""Decode worker processes on this machine, each decoding whole files, feeding one model.

The Ray path's decode units (:mod:`.work`: a job's ``decode(source)`` yields pieces, the
:class:`~.work.Assembler` turns logits back into the local run's result) run here in N worker
processes instead of Ray tasks; the model stays in this process (see :mod:`.batched_run`).

- A worker holds one file at a time (a free worker is given the next file in input order) and
  writes each decoded piece into one of its own shared-memory slots; only the piece's small
  metadata crosses its pipe. The slots bound its memory: a worker waits for a free slot, so it
  is never more than ``slots`` pieces ahead of the model.
- :meth:`DecodePool.pieces` hands the pieces over in INPUT order (file after file, each file's
  pieces in decode order) whatever order the workers finish in, so what the model is given does
  not depend on how many workers there are.
- A worker that dies (killed, out of memory) turns the file it held into a failed row naming
  the cause; a new worker takes its place and the batch goes on. A file is not retried: a file
  that crashes the decoder would crash the next worker too.
- Workers ignore Ctrl-C (the terminal sends it to the whole process group); this process
  stops them, and closing the pool (a ``with`` block, or closing :meth:`pieces`) ends every
  worker within a few seconds whatever state it is in.

Processes start with ``forkserver`` (``spawn`` where there is none): forking a process that
has torch loaded is unsafe. A worker imports the decoder (PyAV, numpy) and not torch.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

FILES_AHEAD = 4  # files given out per worker beyond the one the model is on: small messages only
STOP_WAIT_SEC = 2.0  # how long a closing pool waits for a worker before it terminates it
ARRAYS = ("frames", "audio")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_workers(device: str, model_threads: int) -> int:
    """``--decode-workers auto``: the cores this process may use minus the model's host side.

    On CUDA the host side is one core (this process: batching, copies to the GPU, assembling
    results); on CPU it is the model's torch threads (``--threads``, default every core, which
    leaves one worker). At least one worker.
    """
    host = 1 if device.startswith("cuda") else max(1, model_threads)
    return max(1, available_cores() - host)


def _context() -> Any:
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # The server imports the decoder once; each worker (and a replacement) forks from it ready
    # to decode instead of importing PyAV and numpy again. No effect once the server runs.
    ctx.set_forkserver_preload(["sparsesync_cli.distributed.work", "sparsesync_cli.media.decode"])
    return ctx


@dataclass(frozen=True)
class SlotLayout:
    """One slot: room for ``windows`` windows of frames (uint8) then their audio (float32)."""

    windows: int
    frame_shape: tuple[int, ...]  # one window's (T, 3, H, W)
    samples: int

    @property
    def frame_bytes(self) -> int:
        return self.windows * int(np.prod(self.frame_shape))

    @property
    def nbytes(self) -> int:
        return self.frame_bytes + self.windows * self.samples * 4

    def views(self, buf: Any, slot: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` windows of ``slot`` as (frames, audio) arrays over ``buf``."""
        base = slot * self.nbytes
        frames = np.ndarray((n, *self.frame_shape), np.uint8, buf, base)
        audio = np.ndarray((n, self.samples), np.float32, buf, base + self.frame_bytes)
        return frames, audio

    def fits(self, frames: np.ndarray, audio: np.ndarray) -> bool:
        n = len(frames)
        return (
            n <= self.windows
            and frames.dtype == np.uint8
            and tuple(frames.shape[1:]) == tuple(self.frame_shape)
            and audio.dtype == np.float32
            and audio.shape == (n, self.samples)
        )


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While a worker starts: keep multiprocessing from running the caller's main script again
    in it (as ``__mp_main__``, which spawn and forkserver do to unpickle objects defined there).

    A worker needs nothing from that script, and running it again imports whatever the script
    imports at its top, torch included: seconds and hundreds of MB per worker. Without the main
    module's ``__file__`` and ``__spec__`` multiprocessing sends no main module to the child.
    """
    main = sys.modules.get("__main__")
    names: tuple[str, ...] = ("__file__", "__spec__")
    saved: dict[str, Any] = {k: main.__dict__[k] for k in names if main is not None and k in main.__dict__}
    if main is not None:
        main.__dict__.pop("__file__", None)
        main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


def _attach(name: str) -> SharedMemory:
    """Open this process's view of the pool's shared memory, which the pool alone unlinks."""
    try:
        return SharedMemory(name=name, track=False)  # type: ignore[call-arg]  # Python >= 3.13
    except TypeError:
        # Before 3.13 attaching registers the block again with the resource tracker, which this
        # process shares with the pool's (spawn and forkserver pass it on): a second entry for
        # the same name, removed when the pool unlinks the block.
        return SharedMemory(name=name)


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _worker_main(job: Any, shm_name: str, layout: SlotLayout, inbox: Connection, outbox: Connection) -> None:
    """A worker: decode the files it is given into pieces, data in its slots, metadata out."""
    from ..heap import heap_reuse

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pool's to handle
    shm = _attach(shm_name)
    free: list[int] = []

    def take(msg: tuple) -> None:
        if msg[0] == "slots":
            free.extend(msg[1])
        elif msg[0] == "stop":
            raise SystemExit(0)

    try:
        # Every window allocates the same large arrays again: reuse freed pages (see heap.py).
        with heap_reuse():
            while True:
                msg = inbox.recv()
                if msg[0] != "file":
                    take(msg)
                    continue
                _, index, source = msg
                for piece in job.decode(source):
                    frames, audio = piece.pop("frames"), piece.pop("audio")
                    slot = None
                    if len(frames) and layout.fits(frames, audio):
                        while not free:
                            take(inbox.recv())
                        slot = free.pop()
                        f, a = layout.views(shm.buf, slot, len(frames))
                        f[...], a[...] = frames, audio
                        del f, a
                    else:  # no windows, or a piece the slots were not sized for: inline
                        piece["frames"], piece["audio"] = frames, audio
                    outbox.send(("piece", index, slot, len(frames), piece))
                    del frames, audio
                outbox.send(("done", index, _peak_rss_mb()))
    except (EOFError, OSError, SystemExit):  # the pool closed our pipe, or told us to stop
        pass
    finally:
        with contextlib.suppress(BufferError):
            shm.close()


@dataclass
class _Worker:
    process: Any
    inbox: Connection  # ours: we send files and freed slots
    outbox: Connection  # ours: we receive pieces and markers
    holding: int | None = None  # the file index it decodes now


def _death_cause(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"the decode worker was killed by {name}{hint} while reading this file"
    return f"the decode worker stopped (exit code {exitcode}) while reading this file"


class DecodePool:
    """N worker processes decoding ``sources`` with ``job`` (see the module docstring).

    Use as a context manager; :meth:`pieces` yields ``(index, piece)`` in input order. A piece
    is the job's piece (:data:`.work.Piece`) whose ``frames`` and ``audio`` are views into shared
    memory, valid until the next piece is asked for: copy what you keep. A file whose worker
    died ends with a piece whose ``error`` says so.
    """

    def __init__(self, job: Any, sources: list[str], workers: int, layout: SlotLayout, slots: int) -> None:
        if workers < 1 or slots < 1:
            raise ValueError("a decode pool needs at least one worker and one slot")
        self.job, self.sources, self.layout, self.slots = job, list(sources), layout, slots
        self.peak_rss_mb: list[float] = []  # each worker's peak RSS, reported with each file
        self.restarts = 0
        self._ctx = _context()
        self._n = workers
        self._shm: SharedMemory | None = None
        self._workers: list[_Worker | None] = [None] * workers
        self._queues: list[deque] = [deque() for _ in range(workers)]
        self._owner: dict[int, int] = {}
        self._next = 0  # the next file to give out
        self._consumed = 0  # files the consumer has read to their end
        self._in_use: set[int] = set()  # the slot of the piece the consumer holds now

    # -- lifetime ---------------------------------------------------------------------------------
    def __enter__(self) -> DecodePool:
        try:
            self._shm = SharedMemory(create=True, size=max(1, self._n * self.slots * self.layout.nbytes))
            for w in range(self._n):
                self._start(w)
            for w in range(self._n):
                self._dispatch(w)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _slot_ids(self, w: int) -> range:
        return range(w * self.slots, (w + 1) * self.slots)

    def _start(self, w: int) -> None:
        assert self._shm is not None
        ours_in, theirs_in = self._ctx.Pipe(duplex=False)  # (reader, writer): the worker reads
        theirs_out, ours_out = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(self.job, self._shm.name, self.layout, ours_in, ours_out),
            name=f"avsync-decode-{w}",
            daemon=True,
        )
        with _main_module_hidden():
            proc.start()
        ours_in.close()
        ours_out.close()
        self._workers[w] = _Worker(proc, theirs_in, theirs_out)
        held = {m[2] for m in self._queues[w] if m[0] == "piece" and m[2] is not None} | self._in_use
        theirs_in.send(("slots", [s for s in self._slot_ids(w) if s not in held]))

    def close(self) -> None:
        """Stop every worker (politely, then by force) and free the shared memory."""
        for wk in self._workers:
            if wk is not None:
                with contextlib.suppress(OSError, ValueError):
                    wk.inbox.send(("stop",))
        for wk in self._workers:
            if wk is not None:
                wk.process.join(STOP_WAIT_SEC)
                if wk.process.is_alive():
                    wk.process.terminate()
                    wk.process.join(STOP_WAIT_SEC)
                if wk.process.is_alive():
                    wk.process.kill()
                    wk.process.join()
                for conn in (wk.inbox, wk.outbox):
                    conn.close()
        self._workers = [None] * self._n
        if self._shm is not None:
            with contextlib.suppress(BufferError):  # a view still held: freed when we exit
                self._shm.close()
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
            self._shm = None

    def pids(self) -> list[int]:
        """The workers' process ids (for monitoring, and for tests that kill one)."""
        return [wk.process.pid for wk in self._workers if wk is not None]

    def holder_pid(self, index: int) -> int | None:
        """The pid of the worker decoding file ``index`` now, if one is."""
        for wk in self._workers:
            if wk is not None and wk.holding == index:
                return wk.process.pid
        return None

    # -- giving out files, collecting messages -----------------------------------------------------
    def _dispatch(self, w: int) -> None:
        wk = self._workers[w]
        if wk is None or wk.holding is not None or self._next >= len(self.sources):
            return
        if self._next - self._consumed > self._n * FILES_AHEAD:
            return  # bounded read-ahead: a later file waits until the model catches up
        i, self._next = self._next, self._next + 1
        self._owner[i] = w
        wk.holding = i
        wk.inbox.send(("file", i, self.sources[i]))

    def _receive(self, w: int, msg: tuple) -> None:
        if msg[0] == "done":
            if msg[2] is not None:
                self.peak_rss_mb.append(msg[2])
            wk = self._workers[w]
            if wk is not None and wk.holding == msg[1]:
                wk.holding = None
        self._queues[w].append(msg)
        if msg[0] == "done":
            self._dispatch(w)

    def _drain(self, w: int) -> None:
        wk = self._workers[w]
        assert wk is not None
        with contextlib.suppress(EOFError, OSError):
            while wk.outbox.poll():
                self._receive(w, wk.outbox.recv())

    def _died(self, w: int) -> None:
        wk = self._workers[w]
        assert wk is not None
        self._drain(w)  # what it sent before it died is still good
        wk.process.join()
        if wk.holding is not None:
            self._queues[w].append(("died", wk.holding, _death_cause(wk.process.exitcode)))
        wk.inbox.close()
        wk.outbox.close()
        self._workers[w] = None
        self.restarts += 1
        if self.restarts > len(self.sources) + 2 * self._n:  # they die without any file's help
            from ..errors import AvsyncError

            raise AvsyncError(f"the decode workers keep stopping ({_death_cause(wk.process.exitcode)})")
        self._start(w)
        self._dispatch(w)

    def _pump(self, timeout: float | None) -> None:
        """Wait until some worker sends something or dies, then take in everything ready."""
        live = [(w, wk) for w, wk in enumerate(self._workers) if wk is not None]
        handles: list[Any] = [wk.outbox for _, wk in live] + [wk.process.sentinel for _, wk in live]
        ready = set(wait(handles, timeout))
        for w, wk in live:
            if wk.outbox in ready:
                self._drain(w)
        for w, wk in live:
            if wk.process.sentinel in ready:
                self._died(w)

    # -- the consumer's side -------------------------------------------------------------------------
    def pieces(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(file index, piece)`` for every file in input order, each file's pieces in order."""
        assert self._shm is not None, "use the pool as a context manager"
        for i in range(len(self.sources)):
            while i not in self._owner:  # given out once the read-ahead allows (it does by now)
                for w in range(self._n):
                    self._dispatch(w)
                if i not in self._owner:
                    self._pump(0.1)
            w = self._owner[i]
            q = self._queues[w]
            while True:
                while not q:
                    self._pump(None)
                msg = q.popleft()
                if msg[1] != i:  # cannot happen: a worker's messages come file after file
                    raise RuntimeError(f"decode worker {w}: file {msg[1]} out of order (expected {i})")
                if msg[0] == "done":
                    break
                if msg[0] == "died":
                    yield i, {**_error_piece(self.sources[i]), "error": msg[2]}
                    break
                _, _, slot, n, piece = msg
                if slot is not None:
                    self._in_use.add(slot)
                    piece["frames"], piece["audio"] = self.layout.views(self._shm.buf, slot, n)
                yield i, piece
                if slot is not None:
                    piece.pop("frames", None), piece.pop("audio", None)
                    self._in_use.discard(slot)
                    wk = self._workers[w]  # a successor if the worker died meanwhile: its slot now
                    if wk is not None:
                        with contextlib.suppress(OSError):
                            wk.inbox.send(("slots", [slot]))
            self._consumed = i + 1
            for w2 in range(self._n):
                self._dispatch(w2)


def _error_piece(source: str) -> dict[str, Any]:
    from .work import _empty_piece

    return _empty_piece(source, 0.0)
