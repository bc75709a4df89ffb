"""Benchmarks, run by hand (`uv run python -m bench.campaign_bench`); not part of the tests."""
