"""The checkpoint store: which models exist, how they are fetched, verified, cached and loaded.

``registry`` reads ``weights/registry.toml``; ``verified.ensure_verified_file`` is the one path
by which any file comes from a URL (checkpoints, configs, evaluation protocols): ``fetch``
streams it, ``checksum`` verifies and records it; ``download`` gets a model's files (URL or
Hub); ``loading`` opens a checkpoint without running its pickle; ``cache`` keeps a safetensors
copy for fast later loads; ``config`` reads the model's YAML config.

May import: ``errors`` and the standard library (plus its third-party loaders). Nothing here
knows about media, windows or reports.
"""
