"""Deprecated (before 0.3) name of :mod:`sparsesync_cli.output`; kept so that imports such as
``from sparsesync_cli.report.syncmap import sync_map_svg`` keep working. "Report" now means the
HTML report only (``avsync report``, ``--report``); import from ``sparsesync_cli.output``.
"""
