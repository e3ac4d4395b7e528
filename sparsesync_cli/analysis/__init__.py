"""The sync analysis: windows over a file, model predictions, their aggregation into one verdict.

``windows`` plans where to look; ``predict`` runs a model over them; ``aggregate`` and ``trend``
turn per-window posteriors into an offset, confidence and drift/jump; ``results`` is the stored
form (``avsync.result``); ``desync`` scores against reference offsets; ``fix_decision`` decides
whether and how far to shift (``media.remux`` applies it).

May import: ``clock``, ``errors``, ``families``, ``geometry``, ``media``, ``features`` and
``sync_model``. Never ``output`` or ``cli``.
"""
