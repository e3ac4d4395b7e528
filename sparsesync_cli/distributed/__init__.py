"""Checking many files on many machines: inputs by list or URI, Parquet results, Ray Data.

- :mod:`.sources`: which files to check (files, folders, ``--files-from`` lists, ``s3://``-style
  URIs and prefixes), their resume keys, and which are already done;
- :mod:`.parquet`: the ``--parquet DIR`` results (one row per file, ``avsync.result/1`` fields);
- :mod:`.work`: the per-file work cut into pieces a cluster can schedule (decode a file into model
  batches, assemble the logits back into the same result a local run gives), without Ray;
- :mod:`.ray_pipeline`: the Ray Data pipeline that runs those pieces (imports Ray, which is an
  optional dependency: ``pip install "sparsesync-cli[ray]"``).

Importing this package never imports Ray.
"""
