"""``python -m model_deploy.local.probe ARCHIVE``: load a model version in a process of its own and ask it once.

The endpoint server hosts every version in its own process, so a version whose code crashes the interpreter
(``os._exit`` in ``model_fn``, a segfault in a native library) or never finishes loading would take the
serving versions down with it. Before it loads a candidate, the server runs this probe with a time limit: the
archive is unpacked, the handler imported, ``model_fn`` called and one review sent through ``input_fn`` ->
``predict_fn`` -> ``output_fn``. Exit 0 means the version can be loaded beside the others; anything else
(exit code, signal, time-out) is the reason it is refused, and the serving versions never saw it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

PROBE_REVIEW = json.dumps({"features": ["Lovely fabric and it fits well."]})


def probe(archive: Path) -> str:
    """Load ``archive`` and answer one request; returns a one-line summary, raises on any failure."""
    from model_deploy.local.host import load

    work_dir = Path(tempfile.mkdtemp(prefix="mlops-probe-"))
    host = load(archive, work_dir, label="probe")
    try:
        handler = host.handler
        data = handler.input_fn(PROBE_REVIEW.encode(), "application/json")
        result = handler.output_fn(handler.predict_fn(data, host.model), "application/json")
        body = result[0] if isinstance(result, tuple) else result
        return f"loaded and answered {len(str(body))} characters"
    finally:
        host.close()
        shutil.rmtree(work_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print("usage: python -m model_deploy.local.probe ARCHIVE", file=sys.stderr)
        return 2
    try:
        print(probe(Path(arguments[0])))
    except BaseException as error:  # the parent reads this line as the reason
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
