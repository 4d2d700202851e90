"""argparse types shared by the step scripts and the runners' ``--param`` parsing.

SageMaker passes every job argument and hyperparameter as a string (a ``ParameterBoolean`` arrives as
``"true"``/``"false"``), so the scripts parse them here once. Pure standard library: it runs inside the jobs'
containers too, where the scripts import it as a sibling module.
"""

from __future__ import annotations

import argparse

TRUE_STRINGS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_STRINGS = frozenset({"false", "0", "no", "n", "off"})


def str_to_bool(value: str | bool) -> bool:
    """``"true"``, ``"False"``, ``"1"``, ``"no"``... -> a bool; anything else is an argparse error."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in TRUE_STRINGS:
        return True
    if lowered in FALSE_STRINGS:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, 1/0 or yes/no, got {value!r}")


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return number


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return number
