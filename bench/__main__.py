"""``python -m bench [NAME ...] [--quick] [--output FILE]``: run benchmarks, write their sections.

See ``bench/__init__.py`` for what makes a module a benchmark.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import bench

BENCHMARKS_FILE = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
PREAMBLE = """# Benchmarks

Written by `make bench` (`python -m bench [NAME ...]`, see `bench/__init__.py`). Each section below is
replaced by its benchmark's latest full run; numbers compare against a baseline measured in the same run on
the same machine, so the ratios are what to read.
"""


def discover() -> dict[str, ModuleType]:
    """Every module of the package with a ``TITLE`` and a ``run``, by name."""
    found = {}
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda info: info.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if isinstance(getattr(module, "TITLE", None), str) and callable(getattr(module, "run", None)):
            found[info.name] = module
    return found


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def update_section(document: str, name: str, section: str) -> str:
    """``document`` with the text between ``name``'s markers replaced by ``section`` (appended if absent)."""
    start, end = markers(name)
    block = f"{start}\n{section.strip()}\n{end}"
    if start in document:
        before, rest = document.split(start, 1)
        if end not in rest:
            raise ValueError(f"BENCHMARKS.md has {start} without {end}: fix the file by hand")
        return before + block + rest.split(end, 1)[1]
    return document.rstrip("\n") + "\n\n" + block + "\n"


def render(module: ModuleType, body: str, seconds: float, quick: bool) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    mode = " (quick)" if quick else ""
    return f"## {module.TITLE}\n\n_Run {when}{mode} on {machine}; took {seconds:.0f} s._\n\n{body.strip()}\n"


def run_all(
    modules: dict[str, ModuleType], quick: bool, output: Path | None, echo: Callable[[str], None] = print
) -> None:
    for name, module in modules.items():
        echo(f"== bench.{name}: {module.TITLE}{' (quick)' if quick else ''}")
        started = time.perf_counter()
        section = render(module, module.run(quick), time.perf_counter() - started, quick)
        echo(section)
        if output is not None:  # written after each benchmark: a later failure keeps the earlier results
            document = output.read_text() if output.exists() else PREAMBLE
            output.write_text(update_section(document, name, section))
            echo(f"== wrote the {name} section of {output}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (module names); default: all")
    parser.add_argument("--quick", action="store_true", help="a small run, printed, BENCHMARKS.md untouched")
    parser.add_argument(
        "--output", type=Path, help=f"file to write (default: {BENCHMARKS_FILE.name}, not with --quick)"
    )
    args = parser.parse_args(argv)
    available = discover()
    unknown = [name for name in args.names if name not in available]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; available: {', '.join(available)}")
    selected = {name: available[name] for name in args.names} if args.names else available
    output = args.output or (None if args.quick else BENCHMARKS_FILE)
    run_all(selected, args.quick, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
