"""Benchmarks of the polling synchronizer: ``python -m bench [--quick]``.

Each figure (B1...B8) is measured against a baseline taken in the same run
and reported as the median of several runs with its spread.
"""
