"""Benchmark runner: grid of fusions × heads × seeds, resumable results, statistics, the `bench` command."""
