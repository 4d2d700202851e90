"""The commands of ``python -m pipelines`` (:mod:`pipelines.cli` parses the command line and dispatches here)."""


class UsageError(Exception):
    """Bad input from the command line: printed without a traceback, exit status 2."""
