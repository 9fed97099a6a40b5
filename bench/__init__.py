"""Benchmarks that print figures and never pass or fail on time. `python -m bench` runs every bench_*.py."""
