"""One model version loaded as SageMaker's PyTorch serving container loads it, and the batching in front of it.

The container unpacks ``model.tar.gz`` into ``/opt/ml/model``, imports the handler from the model's own
``code/inference.py`` and calls ``model_fn(model_dir)`` once; each request then goes through ``input_fn`` ->
``predict_fn`` -> ``output_fn``. :class:`ModelHost` does the same, with one worker thread for every model call
(fast tokenizers refuse concurrent use, and two forward passes on two cores only slow each other down).

Batching: a handler that declares ``ELEMENTWISE_PREDICT = True`` (its ``predict_fn`` maps a list of reviews to
one result each) gets the reviews of requests that arrive together in one ``predict_fn`` call. The worker
never waits when no other request is on its way, so a lone client sees no added latency; when others are being
parsed it waits for them at most ``max_batch_delay_ms``. A batch that fails is retried request by request, so
one bad request never fails the others.

Fairness: a batch holds at most ``max_batch_size`` reviews, and at most :data:`REQUEST_CHUNK` of any one
request. A request with more is answered in chunks, and after each chunk it goes back to the end of the queue,
behind the requests that arrived meanwhile: a 64-review request takes turns with a lone review instead of
holding the model until all 64 are done, and a review that arrives while a chunk runs waits for that chunk
only (a few reviews: batches of 4 or of 16 give about the same texts/s on CPU, so the cost is small). A chunk
holds at most one review longer than the model reads (:data:`LONG_REVIEW_CHARACTERS`) and runs after the short
ones of its batch, in a call of its own, so a short review is neither padded to a long one's length nor kept
waiting behind more than one of them. Nothing is pip-installed from ``code/requirements.txt``: the handler
runs in this interpreter, whose requirements are the training job's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import tarfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from model_deploy.stage_config import ServingSettings

logger = logging.getLogger(__name__)

HANDLER_FILE = Path("code") / "inference.py"
HANDLER_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")


class ServingError(Exception):
    """The model cannot be served: a bad archive, a handler without the expected functions, a failing model_fn."""


def unpack(archive: Path, model_dir: Path) -> Path:
    """Extract ``model.tar.gz`` as SageMaker does into ``/opt/ml/model``; refuse members that would escape."""
    if not archive.is_file():
        raise ServingError(f"the model archive {archive} does not exist")
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(model_dir, filter="data")
    except Exception as error:  # a truncated gzip is an EOFError, a corrupt one zlib.error
        raise ServingError(
            f"cannot unpack the model archive {archive}: {type(error).__name__}: {error}"
        ) from error
    return model_dir


def load_handler(model_dir: Path) -> ModuleType:
    """Import ``<model_dir>/code/inference.py`` from its path: the model brings its own serving code."""
    path = model_dir / HANDLER_FILE
    if not path.is_file():
        raise ServingError(
            f"the model has no {HANDLER_FILE.as_posix()} (looked in {model_dir}): training copies the serving "
            "handler there, and SageMaker's serving container needs it too"
        )
    name = f"model_inference_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    # The container puts code/ on sys.path, so a handler may import the files next to it.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # a handler that calls sys.exit() at import must not stop us
        sys.modules.pop(name, None)
        raise ServingError(f"importing code/inference.py failed: {type(error).__name__}: {error}") from error
    finally:
        sys.path.remove(str(path.parent))
    missing = [function for function in HANDLER_FUNCTIONS if not callable(getattr(module, function, None))]
    if missing:
        sys.modules.pop(name, None)
        raise ServingError(f"code/inference.py does not define {', '.join(missing)}")
    return module


@dataclass
class _Job:
    """One request: what ``input_fn`` made of it, and how far the worker has got through its reviews."""

    data: Any
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    done: int = 0
    """Reviews of ``data`` answered so far (a list request is answered in chunks)."""
    results: list[Any] = field(default_factory=list)

    @property
    def chunkable(self) -> bool:
        return isinstance(self.data, list)

    @property
    def remaining(self) -> int:
        return (len(self.data) if self.chunkable else 1) - self.done

    @property
    def finished(self) -> bool:
        """Answered, failed, or given up by its request (a response timeout cancels the future)."""
        return self.future.done() or self.remaining <= 0

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(settle)

    def answered(self, predictions: Any, count: int) -> None:
        """``count`` more reviews answered; the request is resolved once all of its reviews are."""
        if self.done == 0 and count == self.remaining:
            self.done += count
            self.resolve(predictions)  # the whole request in one call: whatever the handler returned
            return
        if not isinstance(predictions, list) or len(predictions) != count:
            self.failed(TypeError(f"predict_fn returned {type(predictions).__name__} for {count} reviews"))
            return
        self.results.extend(predictions)
        self.done += count
        if self.remaining <= 0:
            self.resolve(self.results)

    def failed(self, error: BaseException) -> None:
        """The request fails as a whole: none of its remaining reviews is run."""
        self.done += self.remaining
        self.resolve(error=error)


REQUEST_CHUNK = 4
"""Reviews of one request per model call at most: what a review arriving meanwhile may have to wait for."""

LONG_REVIEW_CHARACTERS = 1_000
"""A review longer than this is read only up to the model's cut (128 tokens of English are ~600 characters), so it
costs a full-length forward pass whatever its length. A request's chunk holds at most one such review, and a
chunk with one runs in a model call of its own after the rest of its batch: a short review that arrives while a
6 MB request of 64 long reviews is being answered waits for one long review, and is not padded to its length
(measured, issue 26: batched with 4 long reviews, a lone review's p99 was 6.8x its quiet p99)."""

Chunk = tuple[_Job, int]
"""A job and how many of its next reviews go into a model call."""


@dataclass
class BatchStats:
    """What the worker did: requests, model calls and the largest batch, for the benchmark and the tests."""

    requests: int = 0
    model_calls: int = 0
    largest_batch: int = 0


@dataclass
class ModelHost:
    """A loaded version: the handler module, what ``model_fn`` returned, and the worker thread that batches."""

    handler: ModuleType
    model: Any
    work_dir: Path
    settings: ServingSettings = field(default_factory=ServingSettings)
    label: str = ""
    stats: BatchStats = field(default_factory=BatchStats)
    _queue: deque[_Job] = field(default_factory=deque, repr=False)
    _condition: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _arriving: int = 0
    _in_flight: int = 0
    _closed: bool = False
    _stuck_since: float | None = None
    _worker: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.batches = bool(getattr(self.handler, "ELEMENTWISE_PREDICT", False))
        self._worker = threading.Thread(target=self._work, name=f"model-{self.label or 'host'}", daemon=True)
        self._worker.start()

    # --- requests (called on the event loop)
    @property
    def in_flight(self) -> int:
        return self._in_flight

    def alive(self) -> bool:
        """``/ping``: the model is loaded, its worker runs, and it has not stopped answering."""
        return (
            not self._closed
            and self._stuck_since is None
            and self._worker is not None
            and self._worker.is_alive()
        )

    async def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """The toolkit's default transform; returns (response body, its content type)."""
        self._in_flight += 1
        with self._condition:
            self._arriving += 1
        enqueued = False
        try:
            data = await asyncio.to_thread(self.handler.input_fn, body, content_type)
            loop = asyncio.get_running_loop()
            job = _Job(data, loop.create_future(), loop)
            with self._condition:
                self._arriving -= 1
                enqueued = True
                if self._closed:
                    raise ServingError("the model version was unloaded")
                self._queue.append(job)
                self._condition.notify()
            try:
                prediction = await asyncio.wait_for(job.future, self.settings.response_timeout_seconds)
            except TimeoutError:
                self._stuck_since = self._stuck_since or time.monotonic()
                raise ServingError(
                    f"the model did not answer within {self.settings.response_timeout_seconds} s "
                    "(serving.response_timeout_seconds)"
                ) from None
            self._stuck_since = None
            result = await asyncio.to_thread(self.handler.output_fn, prediction, accept)
        finally:
            if not enqueued:
                with self._condition:
                    self._arriving -= 1
                    self._condition.notify()
            self._in_flight -= 1
        response, response_type = result if isinstance(result, tuple) else (result, accept)
        return (response.encode("utf-8") if isinstance(response, str) else bytes(response)), response_type

    async def drained(self, poll_seconds: float = 0.01) -> None:
        """Return once no request is in flight (after a swap, before :meth:`close`)."""
        while self._in_flight:
            await asyncio.sleep(poll_seconds)

    def close(self) -> None:
        """Stop the worker (queued jobs still run), forget the handler module, remove the unpacked model."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            # A model call that never returns cannot be stopped in a thread: give up waiting for it.
            self._worker.join(timeout=5 if self._stuck_since else 60)
        sys.modules.pop(self.handler.__name__, None)
        shutil.rmtree(self.work_dir, ignore_errors=True)

    # --- the worker thread
    def _next_batch(self) -> list[Chunk] | None:
        with self._condition:
            while not self._queue:
                if self._closed:
                    return None
                self._condition.wait()
            job = self._queue.popleft()
            if not self.batches or not job.chunkable:
                return [(job, job.remaining)]
            limit = self.settings.max_batch_size
            batch = [(job, _chunk_size(job, limit))]
            size = batch[0][1]
            deadline = time.monotonic() + self.settings.max_batch_delay_ms / 1000
            while size < limit:
                if self._queue:
                    if not self._queue[0].chunkable:
                        break
                    job = self._queue.popleft()
                    batch.append((job, _chunk_size(job, limit - size)))
                    size += batch[-1][1]
                    continue
                remaining = deadline - time.monotonic()
                if self._arriving <= 0 or remaining <= 0:
                    break  # nobody else is on the way: do not make this batch wait
                self._condition.wait(remaining)
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self.stats.requests += sum(1 for job, _ in batch if job.done == 0)
            self.stats.largest_batch = max(self.stats.largest_batch, sum(count for _, count in batch))
            for group in _short_first(batch):
                if not (len(group) > 1 and self._predict_together(group)):
                    for chunk in group:
                        self._predict_alone(chunk)
            with self._condition:  # a request with reviews left waits its turn behind those that came since
                self._queue.extend(job for job, _ in batch if not job.finished)

    def _predict_together(self, batch: list[Chunk]) -> bool:
        """One model call for the whole batch, results split back in order; False when it must be retried."""
        reviews = [review for job, count in batch for review in job.data[job.done : job.done + count]]
        try:
            self.stats.model_calls += 1
            predictions = self.handler.predict_fn(reviews, self.model)
        except BaseException:
            logger.info("a batch of %d requests failed together; retrying them one by one", len(batch))
            return False
        if not isinstance(predictions, list) or len(predictions) != len(reviews):
            return False
        start = 0
        for job, count in batch:
            job.answered(predictions[start : start + count], count)
            start += count
        return True

    def _predict_alone(self, chunk: Chunk) -> None:
        job, count = chunk
        data = job.data[job.done : job.done + count] if job.chunkable else job.data
        try:
            self.stats.model_calls += 1
            predictions = self.handler.predict_fn(data, self.model)
        except BaseException as error:  # SystemExit from a handler must not end the worker thread
            job.failed(error if isinstance(error, Exception) else RuntimeError(repr(error)))
            return
        job.answered(predictions, count)


def _is_long(review: Any) -> bool:
    return isinstance(review, str) and len(review) > LONG_REVIEW_CHARACTERS


def _chunk_size(job: _Job, room: int) -> int:
    """How many of ``job``'s next reviews go into this batch: up to :data:`REQUEST_CHUNK` and ``room``, and only
    one long review (:data:`LONG_REVIEW_CHARACTERS`)."""
    count = min(job.remaining, room, REQUEST_CHUNK)
    if not job.chunkable:
        return count
    upcoming = job.data[job.done : job.done + count]
    for index, review in enumerate(upcoming):
        if _is_long(review):
            return max(index, 1)  # the short ones before it now; the long one alone (or first) next time
    return count


def _short_first(batch: list[Chunk]) -> list[list[Chunk]]:
    """The batch's chunks without a long review in one model call, then those with one in another."""
    short = [chunk for chunk in batch if not _has_long(chunk)]
    long = [chunk for chunk in batch if _has_long(chunk)]
    return [group for group in (short, long) if group]


def _has_long(chunk: Chunk) -> bool:
    job, count = chunk
    return job.chunkable and any(_is_long(review) for review in job.data[job.done : job.done + count])


_ENVIRONMENT_LOCK = threading.Lock()
"""One ``model_fn`` at a time reads the environment it is given (endpoints of one server may differ in it)."""


@contextlib.contextmanager
def _container_environment(settings: ServingSettings) -> Iterator[None]:
    """The stage's ``INFERENCE_BACKEND`` in this process's environment while ``model_fn`` runs, as the serving
    container's environment holds it (``ServingSettings.container_environment``); the previous value after."""
    name = "INFERENCE_BACKEND"
    with _ENVIRONMENT_LOCK:
        previous = os.environ.get(name)
        os.environ[name] = settings.container_environment()[name]
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous


def load(
    archive: Path, work_dir: Path, settings: ServingSettings | None = None, label: str = ""
) -> ModelHost:
    """Unpack into ``work_dir/model``, import the handler, call ``model_fn`` once; ``work_dir`` is then the host's."""
    model_dir = work_dir / "model"
    try:
        unpack(Path(archive), model_dir)
        handler = load_handler(model_dir)
        try:
            with _container_environment(settings or ServingSettings()):
                model = handler.model_fn(str(model_dir))
        except (Exception, SystemExit) as error:
            sys.modules.pop(handler.__name__, None)
            raise ServingError(f"model_fn failed: {type(error).__name__}: {error}") from error
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return ModelHost(handler, model, work_dir, settings or ServingSettings(), label)
