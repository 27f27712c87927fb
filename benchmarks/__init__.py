"""Benchmarks: cost of unified_obs hot paths next to the raw anchors, measured in one run.

Run ``./run bench`` (or ``python -m benchmarks [--only NAME] [--json PATH] [--quick]``).
Not part of the test suite: tests assert behaviour, benchmarks measure.
"""
