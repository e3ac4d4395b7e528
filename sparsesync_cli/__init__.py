"""avsync: measure and fix the audio-visual offset of video files.

Library first: everything the ``avsync`` command does is callable from here::

    import sparsesync_cli as avsync

    model = avsync.load_model("sparsesync-audioset")          # or checkpoint="x.pt", config="cfg.yaml"
    result = avsync.predict_file("clip.mp4", model)           # a SyncResult
    print(result.offset_sec, result.offset_words, result.confidence)
    for r in avsync.iter_predictions(paths, model):           # a batch; failures become results
        print(r.to_dict())
    avsync.fix_offset("clip.mp4", "fixed.mp4", result.offset_sec)

Sign: ``offset_sec > 0`` means the audio is early; clock: file time by presentation timestamps.
``__all__`` is what is promised; everything else is importable from its module (for example
``sparsesync_cli.analysis.predict.collect_media_files``) and may move between minor versions.
Heavy modules (torch, PyAV) are imported on first use of the names below, so importing the
package is instant.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0"

_EXPORTS = {
    "load_model": "sync_model",
    "SyncModel": "sync_model",
    "predict_file": "analysis.predict",
    "iter_predictions": "analysis.predict",
    "PredictOptions": "analysis.predict",
    "SyncResult": "analysis.results",
    "WindowResult": "analysis.results",
    "decide_fix": "analysis.fix_decision",
    "fix_offset": "media.remux",
    "MediaReader": "media.decode",
    "score_files": "analysis.desync",
    "write_html_report": "output.html",
    "AvsyncError": "errors",
    "MediaError": "errors",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DownloadError": "errors",
    "UsageError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sparsesync_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
