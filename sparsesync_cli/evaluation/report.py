"""Deprecated (before 0.3) name of :mod:`sparsesync_cli.evaluation.page`, the evaluation's HTML page."""

from __future__ import annotations

from .page import evaluation_html, worst_items, write_evaluation_html

__all__ = ["evaluation_html", "worst_items", "write_evaluation_html"]
