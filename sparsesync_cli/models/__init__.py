"""Pure-torch implementations of the synchronisation models (no timm, no transformers)."""
