"""Issue 6: performance targets as benchmarks (`python -m bench`; see bench/README.md)."""
