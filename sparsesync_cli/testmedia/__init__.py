"""Synthetic media with known truth, for avsync's tests and benchmarks (not used by the tool itself)."""
