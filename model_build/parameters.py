"""Pipeline parameter values from the command line, checked against the spec's types; shared by both runners."""

from __future__ import annotations

import re
from argparse import ArgumentTypeError
from collections.abc import Iterable, Mapping

from model_build.pipeline_spec import Parameter, ParameterValue, PipelineSpec
from model_build.steps.arguments import str_to_bool


class ParameterError(ValueError):
    pass


def parse_value(parameter: Parameter, text: str) -> ParameterValue:
    """``text`` as the parameter's type, or a ParameterError naming the parameter and what it expects."""
    if parameter.type == "String":
        return _checked_string(parameter, text)
    try:
        match parameter.type:
            case "Integer":
                return int(text)
            case "Float":
                return float(text)
            case _:
                return str_to_bool(text)
    except (ValueError, ArgumentTypeError):
        raise ParameterError(
            f"--param {parameter.name}={text!r}: {parameter.name} is of type {parameter.type} "
            f"(default {render(parameter.default)!r}); {parameter.description}"
        ) from None


def _checked_string(parameter: Parameter, text: str) -> str:
    if parameter.choices and text not in parameter.choices:
        raise ParameterError(
            f"--param {parameter.name}={text!r}: use one of {', '.join(parameter.choices)}; "
            f"{parameter.description}"
        )
    if parameter.pattern and not re.fullmatch(parameter.pattern, text):
        raise ParameterError(
            f"--param {parameter.name}={text!r}: {parameter.name} is {parameter.pattern_description}, "
            f"like the default {render(parameter.default)!r}; {parameter.description}"
        )
    return text


def parse_assignments(spec: PipelineSpec, assignments: Iterable[str]) -> dict[str, ParameterValue]:
    """``["Epochs=2", "MinAccuracy=0.6"]`` -> typed values; unknown names list the known ones."""
    values: dict[str, ParameterValue] = {}
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        if not separator:
            raise ParameterError(f"--param {assignment!r}: expected NAME=VALUE, e.g. --param Epochs=2")
        name = name.strip()
        try:
            parameter = spec.parameter(name)
        except KeyError:
            raise ParameterError(
                f"--param {assignment!r}: the pipeline has no parameter {name!r}; valid names: "
                f"{', '.join(spec.parameter_names)}"
            ) from None
        values[name] = parse_value(parameter, text)
    return values


def resolve(
    spec: PipelineSpec, overrides: Mapping[str, ParameterValue], local: bool
) -> dict[str, ParameterValue]:
    """The spec's defaults (local or AWS) with ``overrides`` on top, every value of its declared type and
    inside its range; a ParameterError names each value out of range (nothing has started yet)."""
    values = spec.defaults(local)
    for name, value in overrides.items():
        parameter = spec.parameter(name)  # KeyError names the known parameters
        values[name] = parse_value(parameter, render(value)) if isinstance(value, str) else value
    problems = spec.value_problems(values)
    if problems:
        raise ParameterError("; ".join(problems) + "; nothing was started, fix it with --param NAME=VALUE")
    return values


def shown(value: object) -> str:
    """A value as a person reads it: a measured float to 4 significant digits (0.4833, not
    0.48333333333333334), anything else as :func:`render` writes it."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return render(value) if isinstance(value, str | int | bool) else str(value)


def render(value: ParameterValue) -> str:
    """A value as SageMaker passes it to a job: booleans in JSON spelling, numbers as Python writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
