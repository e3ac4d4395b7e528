"""Measuring a model: protocols of test items, the run over them, metrics, calibration, report.

A *protocol* is a CSV in the SparseSync authors' format (``path,offset_sec,vstart_sec``): one
test item per row, read exactly as ``avsync predict PATH --start vstart_sec --shift offset_sec
--duration 5`` reads it (one window). :mod:`.protocol` reads and draws protocols, :mod:`.named`
fetches the authors' published ones, :mod:`.run` runs a model over the items, :mod:`.metrics`
computes the paper's accuracies plus confidence metrics, :mod:`.calibration` fits a temperature,
and :mod:`.report` writes the HTML page. Nothing here prints.
"""

from .calibration import Calibration, fit_calibration, load_calibration
from .guard import check_protocol_model, model_classes
from .metrics import SCHEMA, compute_metrics
from .passes import pass_items
from .protocol import Draw, ProtocolItem, make_protocol, read_protocol, write_protocol
from .run import evaluate_items

__all__ = [
    "SCHEMA",
    "Calibration",
    "Draw",
    "ProtocolItem",
    "check_protocol_model",
    "compute_metrics",
    "evaluate_items",
    "fit_calibration",
    "load_calibration",
    "make_protocol",
    "model_classes",
    "pass_items",
    "read_protocol",
    "write_protocol",
]
