"""Benchmarks: speed and memory measured as ratios against a baseline in the same run, never as timed tests.

A benchmark is a module in this package that defines::

    TITLE: str                        # the heading of its section in BENCHMARKS.md
    def run(quick: bool) -> str: ...  # runs it; returns the section's markdown body (tables, notes)

``python -m bench [NAME ...]`` (``make bench``) runs them (all, or the named ones, in name order) and writes
each body into ``BENCHMARKS.md`` between its own markers, so every benchmark updates only its section.
``--quick`` runs a small version and prints it without touching ``BENCHMARKS.md``. Keep heavy imports inside
``run()``: the runner imports every module here to find the benchmarks.
"""
