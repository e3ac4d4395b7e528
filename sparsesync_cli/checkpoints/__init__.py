"""The checkpoint store: which models exist, how they are fetched, verified, cached and loaded.

``registry`` reads ``weights/registry.toml``; ``download``/``fetch`` bring files onto disk and
``checksum`` verifies and records them; ``loading`` opens a checkpoint without running its pickle;
``cache`` keeps a safetensors copy for fast later loads; ``config`` reads the model's YAML config.

May import: ``errors`` and the standard library (plus its third-party loaders). Nothing here
knows about media, windows or reports.
"""
