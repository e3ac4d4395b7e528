"""The files avsync writes from stored results: JSONL/CSV records, the HTML report, the SVG sync map.

``records`` appends and reads result lines; ``html`` and ``assets`` build the single-file report;
``syncmap`` draws one file's windows over time; ``svg`` holds escaping, number formatting, the
palette and tick spacing they share. Views format what a result stores; they never rerun a model.

May import: ``analysis.results``, ``clock`` and ``errors``. Never models, media or checkpoints.
(Before 0.3 this package was called ``report``; ``sparsesync_cli.report.*`` still imports it.)
"""
