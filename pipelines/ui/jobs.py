"""Work a button starts that outlasts its request: an approval (whose event rolls the version out to staging,
which loads and smoke-tests a model) or a promotion. Each runs on its own thread; the page shows its state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.local.executions import now

RUNNING, DONE, FAILED = "Running", "Done", "Failed"


class JobRunning(Exception):
    """The same work is already under way: a second click does not start it twice."""


@dataclass
class Job:
    title: str
    started: str = field(default_factory=now)
    state: str = RUNNING
    ended: str | None = None
    messages: list[str] = field(default_factory=list)
    """What went wrong: the error, or one message per event subscriber that failed."""
    raised: Exception | None = None
    finished: threading.Event = field(default_factory=threading.Event, repr=False)


class Jobs:
    """The jobs this server started, by key (``approval-3``, ``promote``); the latest of each key is kept."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, key: str, title: str, work: Callable[[], list[str]]) -> Job:
        """Run ``work`` (which returns its failure messages, empty when all went well) on a thread."""
        with self._lock:
            current = self._jobs.get(key)
            if current is not None and current.state == RUNNING:
                raise JobRunning(f"{current.title} is still running (since {current.started[11:19]} UTC)")
            job = self._jobs[key] = Job(title)
        threading.Thread(target=self._run, args=(job, work), name=f"ui-{key}", daemon=True).start()
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[], list[str]]) -> None:
        try:
            job.messages = work()
            job.state = FAILED if job.messages else DONE
        except Exception as error:
            job.raised, job.messages, job.state = error, [str(error)], FAILED
        finally:
            job.ended = now()
            job.finished.set()

    def get(self, key: str) -> Job | None:
        return self._jobs.get(key)

    def running(self) -> bool:
        return any(job.state == RUNNING for job in self._jobs.values())

    def wait(self, timeout: float) -> bool:
        """Wait for every job to finish (at shutdown, in tests); whether all did within ``timeout`` seconds."""
        return all(job.finished.wait(timeout) for job in list(self._jobs.values()))
