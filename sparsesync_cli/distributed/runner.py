"""``--ray``: a batch of the CLI (predict, score, evaluate) run on a Ray cluster.

:class:`RayRunner` holds the cluster settings and the model to load on the actors, checked
before anything slow; its methods have the shape of the local loops they replace, so a command
calls ``runner.predict`` where it would call ``iter_predictions``. Importing this module never
imports Ray, nor numpy (:mod:`.ray_pipeline` is imported when a runner is made).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..analysis.desync import DesyncResult
    from ..analysis.predict import PredictOptions
    from ..analysis.results import SyncResult
    from ..evaluation.protocol import ProtocolItem
    from ..sync_model import SyncModel
    from .work import ModelSpec


def is_ray_address(value: str) -> bool:
    """``local``, ``auto``, ``ray://HOST:PORT`` (any ``scheme://``) or ``HOST:PORT``."""
    return value in ("local", "auto") or "://" in value or bool(re.fullmatch(r"[\w.-]+:\d+", value))


def check_ray_address(address: str | None) -> None:
    """A usage error for a ``--ray`` value that is no address (None: no ``--ray``)."""
    if address is not None and not is_ray_address(address):
        raise UsageError(f"--ray {address}: expected local, auto, ray://HOST:PORT or HOST:PORT")


def _absolute(path: str | None) -> str | None:
    # actors run in their own working folders
    return None if path is None else str(Path(path).resolve())


class RayRunner:
    """Runs files (or protocol items) on Ray with the model ``spec``, as the local loops would.

    ``address``: ``local`` (a Ray runtime in this process) or a cluster address; ``actors``:
    ``auto`` or a positive number; ``batch_size``: None for the actors' default (8 on GPU, 1 on
    CPU). Raises :class:`~sparsesync_cli.errors.UsageError` at once for a bad address, a bad
    ``actors`` or a missing Ray (with the line that installs it).
    """

    def __init__(
        self,
        address: str,
        spec: ModelSpec,
        *,
        actors: str = "auto",
        num_gpus_per_actor: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        from .ray_pipeline import require_ray

        check_ray_address(address)
        require_ray()  # the one-line install hint before anything slow
        if actors != "auto" and not (actors.isdigit() and int(actors) > 0):
            raise UsageError(f"--actors {actors}: expected a positive number or auto")
        self.spec = replace(
            spec,
            checkpoint=_absolute(spec.checkpoint),
            config=_absolute(spec.config),
            threads=spec.threads or 1,
        )
        self.batch_size = batch_size
        self._cluster: dict[str, Any] = {
            "address": None if address == "local" else address,
            "actors": actors,
            "num_gpus_per_actor": num_gpus_per_actor,
            "cpus_per_actor": self.spec.threads,
        }

    def _calibrated(self, sync_model: SyncModel) -> ModelSpec:
        # the actors apply the calibration the driver applied to its own copy of the model
        return replace(self.spec, calibration=sync_model.info.calibration)

    def predict(
        self,
        todo: Sequence[str],
        sync_model: SyncModel,
        options: PredictOptions,
        on_window: Callable[..., None] | None = None,
        on_error: Callable[..., None] | None = None,
    ) -> Iterator[SyncResult]:
        """Results of ``todo`` as they complete; the signature of ``iter_predictions`` (the
        progress callbacks are not called: windows run on other machines)."""
        from .ray_pipeline import predict_on_ray

        return predict_on_ray(
            todo,
            self._calibrated(sync_model),
            options,
            sync_model.info,
            batch_size=self.batch_size,
            **self._cluster,
        )

    def score(self, files: Sequence[str], sync_model: SyncModel, **kwargs: Any) -> Iterator[DesyncResult]:
        """DeSync results of ``files`` (``kwargs``: ``clip_sec``, ``whole_file``)."""
        from .ray_pipeline import score_on_ray

        return score_on_ray(
            files,
            self._calibrated(sync_model),
            sync_model.info,
            batch_size=self.batch_size,
            **kwargs,
            **self._cluster,
        )

    def evaluate(
        self, sync_model: SyncModel, root: str | Path, audio_stream: int | None
    ) -> Callable[[Sequence[ProtocolItem]], Iterator[dict[str, Any]]]:
        """The ``runner`` for :func:`~sparsesync_cli.evaluation.run.run_protocol`: items to records."""
        from .ray_pipeline import evaluate_on_ray

        def items_on_ray(todo: Sequence[ProtocolItem]) -> Iterator[dict[str, Any]]:
            return evaluate_on_ray(
                todo,
                self.spec,
                sync_model.info,
                root,
                batch_size=self.batch_size,
                audio_stream=audio_stream,
                **self._cluster,
            )

        return items_on_ray
