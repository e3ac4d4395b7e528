"""The Ray Data pipeline: decode tasks on CPUs feed a pool of model actors; the driver assembles.

    sources -> map_batches(decode: CPU tasks, one file at a time, yields model batches)
            -> map_batches(model actors: each loads the model once, on its GPU or CPU)
            -> iter_rows() at the driver -> Assembler -> one SyncResult per file

``avsync evaluate --ray`` runs the same pipeline over chunks of protocol items instead of files
(:class:`~.work.EvaluateJob`): one chunk per local model batch, one list of item records per chunk.

Ray Data's streaming executor bounds how many decoded batches wait in memory (backpressure), so
decoding and the model scale separately: add CPUs when the actors wait, GPUs when decoders do.
Actors load the weights through the normal path (registry cache with its lock, one download per
node, or a checkpoint file every node can read); weights never travel through the object store.

Failures: a file that cannot be checked is a failed result (see :func:`.work.decode_file`). A
task or actor that dies (node lost, out of memory, ``kill -9``) is retried by Ray (Ray Data
restarts actors and re-runs their batches); pieces a retry repeats are dropped by the
:class:`~.work.Assembler`, so every file is reported exactly once.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from ..heap import heap_reuse
from .work import Assembler, EvaluateJob, ModelSpec, PredictJob, ScoreJob, item_chunks, run_piece

if TYPE_CHECKING:
    from ..analysis.desync import DesyncResult
    from ..analysis.predict import PredictOptions
    from ..analysis.results import SyncResult
    from ..evaluation.protocol import ProtocolItem
    from ..sync_model import ModelSetup

INSTALL_HINT = "--ray needs Ray: pip install 'sparsesync-cli[ray]'"
MAX_FILES_PER_BLOCK = 16  # files per decode task input block: small, so a retry repeats little
MIN_BLOCKS = 256  # below this many files, one file per block: the most parallel decoding


def require_ray() -> Any:
    """The ``ray`` module, or UsageError with the one-line install command."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://host:10001``) or start a local runtime.

    Returns True when this call connected (the caller disconnects), False when Ray was already
    initialised in this process (a notebook, a test) and is left as it is.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address in (None, "", "local"):
        # Workers must import the same avsync as this driver (an editable checkout, a venv).
        here = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


Job = PredictJob | ScoreJob | EvaluateJob


def _decode_batch(batch: dict[str, np.ndarray], job: Job) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data UDF: the pieces of each source in ``batch``, one piece per yielded batch."""
    for source in batch["source"]:
        for piece in job.decode(str(source)):
            yield {k: v[None] if isinstance(v, np.ndarray) else np.asarray([v]) for k, v in piece.items()}


def _add_decoders(ds: Any, job: Job, cpus_per_decoder: float) -> Any:
    return ds.map_batches(
        _decode_batch,
        fn_kwargs={"job": job},
        batch_size=1,
        batch_format="numpy",
        num_cpus=cpus_per_decoder,
        # Spread decoders over the nodes. Also keeps Ray Data from fusing them into the model
        # actors (it never fuses an op with a remote-args function), so the two scale apart.
        ray_remote_args_fn=_decoder_args,
    )


def _decoder_args() -> dict[str, Any]:
    return {"scheduling_strategy": "SPREAD"}


class _ModelActor:
    """Ray Data actor UDF: loads the model once, then turns pieces into logits."""

    def __init__(self, spec: ModelSpec) -> None:
        # Pieces arrive as read-only arrays; the model only reads them.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.model = spec.load()
        # The actor's process only runs the model: freed activations stay mapped for the next
        # piece for the actor's whole life, instead of every window faulting them in (heap.py).
        self._heap = contextlib.ExitStack()
        self._heap.enter_context(heap_reuse())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        n = len(batch["source"])
        rows = [run_piece(self.model, {k: v[i] for k, v in batch.items()}) for i in range(n)]
        return {
            k: np.stack([r[k] for r in rows]) if k == "logits" else np.asarray([r[k] for r in rows])
            for k in rows[0]
        }


def _cluster_resources(ray: Any) -> tuple[float, float]:
    res = ray.cluster_resources()
    return float(res.get("CPU", 0)), float(res.get("GPU", 0))


def actor_pool(ray: Any, actors: int | str, num_gpus_per_actor: float, cpus_per_actor: float) -> Any:
    """``ActorPoolStrategy`` for ``--actors N`` or ``auto`` (every GPU; else half the CPUs)."""
    from ray.data import ActorPoolStrategy

    if actors != "auto":
        return ActorPoolStrategy(size=int(actors))
    cpus, gpus = _cluster_resources(ray)
    if num_gpus_per_actor > 0:
        most = max(1, int(gpus // num_gpus_per_actor))
    else:  # leave the other half of the CPUs to the decoders
        most = max(1, int(cpus / 2 // max(cpus_per_actor, 1e-9)))
    return ActorPoolStrategy(min_size=1, max_size=most)


def predict_on_ray(
    sources: Sequence[str],
    spec: ModelSpec,
    options: PredictOptions,
    setup: ModelSetup,
    *,
    batch_size: int | None = None,
    **cluster: Any,
) -> Iterator[SyncResult]:
    """Check ``sources`` (paths or URIs) on Ray; yields one result per source as each completes.

    Per-file results equal :func:`~sparsesync_cli.analysis.predict.predict_file`'s with the same
    model, options and torch threads (``spec.threads``): bit-exactly on CPU. ``setup``: the
    model's :class:`~sparsesync_cli.sync_model.ModelSetup` (family, grid, window geometry), from a
    load here. ``batch_size``: windows per model call (None: 8 on GPU actors, 1 on CPU).
    ``cluster``: see :func:`run_on_ray`.
    """
    return run_on_ray(
        sources,
        spec,
        lambda batch: PredictJob(replace(options, batch_size=batch_size or batch), setup),
        **cluster,
    )


def score_on_ray(
    sources: Sequence[str],
    spec: ModelSpec,
    setup: ModelSetup,
    *,
    clip_sec: float | None = None,
    whole_file: bool = True,
    batch_size: int | None = None,
    **cluster: Any,
) -> Iterator[DesyncResult]:
    """DeSync of ``sources`` on Ray, equal to :func:`~sparsesync_cli.analysis.desync.score_files`'s."""
    from ..analysis.desync import check_family

    check_family(setup.family)
    return run_on_ray(
        sources, spec, lambda batch: ScoreJob(setup, clip_sec, whole_file, batch_size or batch), **cluster
    )


def evaluate_on_ray(
    items: Sequence[ProtocolItem],
    spec: ModelSpec,
    setup: ModelSetup,
    root: str | os.PathLike = ".",
    *,
    batch_size: int | None = None,
    audio_stream: int | None = None,
    **cluster: Any,
) -> Iterator[dict[str, Any]]:
    """Item records of protocol ``items`` on Ray, in the order they complete.

    The records equal :func:`~sparsesync_cli.evaluation.run.evaluate_items`'s with the same model,
    ``batch_size`` and torch threads (``spec.threads``), bit-exactly on CPU, with ``root`` made
    absolute (workers have their own working folder; every worker must see ``root``). The
    model's raw logits are recorded, as locally (a calibration in ``spec`` is not applied).
    ``batch_size``: items per model call (None: 8 on GPU actors, 1 on CPU). Pass it as
    :func:`~sparsesync_cli.evaluation.run.run_protocol`'s ``runner`` for the resumable JSONL.
    ``cluster``: see :func:`run_on_ray`.
    """
    items = list(items)
    root = os.path.abspath(root)
    spec = replace(spec, calibration=None)

    def make_job(batch: int) -> EvaluateJob:
        return EvaluateJob(setup, root, batch_size or batch, audio_stream)

    def chunks(job: EvaluateJob) -> list[str]:
        return item_chunks(items, job.batch_size)

    for records in run_on_ray(chunks if items else [], spec, make_job, **cluster):
        yield from records


def run_on_ray(
    sources: Sequence[str] | Callable[[Any], Sequence[str]],
    spec: ModelSpec,
    make_job: Callable[[int], Job],
    *,
    address: str | None = None,
    actors: int | str = "auto",
    num_gpus_per_actor: float | None = None,
    cpus_per_actor: float = 1.0,
    cpus_per_decoder: float = 1.0,
) -> Iterator[Any]:
    """Run a job over ``sources`` on Ray; yields one result per source, in the order they complete.

    ``make_job(default_batch_size)`` builds the job once the actors' kind is known (8 windows per
    call on GPU actors, 1 on CPU); ``sources`` may be a function of that job giving them.
    ``actors``: model actors (``"auto"``: as many as fit);
    ``num_gpus_per_actor``: None takes 1 when the cluster has GPUs, else 0 (CPU actors);
    ``address``: see :func:`connect`.
    """
    require_ray()
    if not sources:
        return
    started = connect(address)
    try:
        yield from _run(sources, spec, make_job, actors, num_gpus_per_actor, cpus_per_actor, cpus_per_decoder)
    finally:
        if started:
            import ray

            ray.shutdown()


def _run(
    sources, spec, make_job, actors, num_gpus_per_actor, cpus_per_actor, cpus_per_decoder
) -> Iterator[Any]:
    import ray
    import ray.data

    if num_gpus_per_actor is None:
        num_gpus_per_actor = 1.0 if _cluster_resources(ray)[1] > 0 else 0.0
    job = make_job(8 if num_gpus_per_actor > 0 else 1)
    if callable(sources):
        sources = sources(job)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    files = [{"source": s} for s in sources]
    blocks = min(len(files), max(MIN_BLOCKS, -(-len(files) // MAX_FILES_PER_BLOCK)))
    ds = ray.data.from_items(files, override_num_blocks=blocks)
    with warnings.catch_warnings():  # ray_remote_args_fn: deprecated for 2.64 (pyproject caps Ray below)
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = _add_decoders(ds, job, cpus_per_decoder)
    ds = ds.map_batches(
        _ModelActor,
        fn_constructor_kwargs={"spec": spec},
        batch_size=1,
        batch_format="numpy",
        compute=actor_pool(ray, actors, num_gpus_per_actor, cpus_per_actor),
        num_gpus=num_gpus_per_actor or None,
        num_cpus=cpus_per_actor,
    )
    assembler = Assembler(job)
    for row in ds.iter_rows():
        result = assembler.add(row)
        if result is not None:
            yield result
    for s in sources:  # cannot happen while Ray keeps its promises; never lose a file silently
        if s not in assembler.finished:
            yield job.failed(s, "no result came back from the cluster", _LOST, 0.0)


_LOST = {"size": -1, "mtime": float("nan")}
