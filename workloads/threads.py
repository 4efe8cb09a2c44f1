"""Thread models: which simulated thread performs each row, and the ALLOC/FREE skeleton they assemble.

- `Independent(threads=T)`: T threads, each with its own stream from the
  lifetime model (its own working set, e.g. `live` objects per thread).  Each
  row goes to a uniformly random thread, so the streams are interleaved at
  random; every FREE happens on the thread that allocated the object.
- `ProducerConsumer(producers=P, consumers=C)`: one stream from the lifetime
  model (FIFO = a hand-off queue); ALLOC rows run on a random producer
  (threads 0..P-1), FREE rows on a random consumer (threads P..P+C-1), so
  every FREE is a remote free.  `threads=T` sets both, for a thread-count
  axis (`producer-consumer:threads=1/2/4/8/16`): T // 2 producers and the
  rest consumers; T = 1 is the same stream on one thread that allocates and
  frees (no remote frees), the axis's single-thread baseline.

Randomness, in the order the bulk form drew it from one Generator: for
`Independent(T > 1)` the row labels (`integers(0, T, n, int16)`), then thread
0's lifetime draws for its rows, thread 1's, ...; for one stream the lifetime
draws for all n rows, then (`ProducerConsumer`) n producer and n consumer
draws (`integers(..., int32)`).

`Skeleton(thread_model, lifetime, n_rows, state)` plans the skeleton of
`n_rows` rows from a Generator state: label counts per stream (a counting
pre-pass over the emulated int16 labels, `workloads.substreams.LabelStream`),
where each stream's lifetime sub-streams start, where the producer and
consumer draws start (dry passes), and the state after all of it (`end`).
`open()` gives a `SkeletonRun`, whose `next(count)` produces the next rows
(`is_free`, `slot`, `thread`) in bounded memory: labels, lifetime streams and
thread draws are all read chunk by chunk.  Rows name live objects by slot
(`lifetimes.SlotStack`); ids are given in row order downstream.

`drain_threads()` chooses the threads that free the objects still live at the
end of a drained trace: the owner for `Independent`, a random consumer for
`ProducerConsumer`.  `assemble()` is the in-memory form of a skeleton.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads import lifetime_kernels
from workloads.lifetimes import WORK_ROWS, LifetimeModel, SlotStack
from workloads.substreams import LabelStream, Part, Reader, State, lay_out
from workloads.trace import MAX_THREADS


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class _OneStream:
    """Every row in stream 0; no draws."""

    def __init__(self, state: State, n_rows: int) -> None:
        self.rows = np.array([n_rows], np.int64)
        self.end = state
        self._zeros = np.zeros(0, np.int32)

    def open(self):
        return self

    def read(self, count: int) -> np.ndarray:
        if self._zeros.size < count:
            self._zeros = np.zeros(count, np.int32)
        return self._zeros[:count]


class _RandomLabels:
    """Uniform int16 labels 0..T-1: counted once by a pre-pass, then read again in chunks."""

    def __init__(self, state: State, n_rows: int, threads: int) -> None:
        self.start, self.threads = state, threads
        stream = LabelStream(state, threads)
        rows = np.zeros(threads, np.int64)
        for first in range(0, n_rows, WORK_ROWS):
            rows += np.bincount(stream.read(min(WORK_ROWS, n_rows - first)), minlength=threads)
        self.rows = rows
        self.end = stream.end()

    def open(self) -> LabelStream:
        return LabelStream(self.start, self.threads)


class _LabelThreads:
    """The thread of a row is its stream's label; no draws."""

    def __init__(self, state: State) -> None:
        self.end = state

    def open(self):
        return self

    def threads(self, labels: np.ndarray, is_free: np.ndarray) -> np.ndarray:
        return labels.astype(np.int32)


class _ProducerConsumerThreads:
    """n producer draws, then n consumer draws; a row takes the consumer if it frees, else the producer."""

    def __init__(self, state: State, n_rows: int, producers: int, consumers: int) -> None:
        self.producer = Part(lambda generator, count: generator.integers(0, producers, size=count, dtype=np.int32))
        self.consumer = Part(lambda generator, count: generator.integers(producers, producers + consumers,
                                                                         size=count, dtype=np.int32))
        self.starts, self.end = lay_out(state, [(self.producer, n_rows), (self.consumer, n_rows)])

    def open(self):
        return _ProducerConsumerRun(Reader(self.producer, self.starts[0]), Reader(self.consumer, self.starts[1]))


class _ProducerConsumerRun:
    def __init__(self, producer: Reader, consumer: Reader) -> None:
        self.producer, self.consumer = producer, consumer

    def threads(self, labels: np.ndarray, is_free: np.ndarray) -> np.ndarray:
        producer = self.producer.read(is_free.size)
        consumer = self.consumer.read(is_free.size)
        return np.where(is_free, consumer, producer)


class ThreadModel:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: Whether `drain_threads` draws from the Generator.
    drain_draws: ClassVar[bool] = True

    @property
    def n_threads(self) -> int:
        raise NotImplementedError

    def labels(self, state: State, n_rows: int) -> Any:
        """The row -> stream labels of a skeleton: `rows` per stream, `end` state, `open().read(count)`."""
        raise NotImplementedError

    def thread_draws(self, state: State, n_rows: int) -> Any:
        """The draws after the lifetime streams: `end` state, `open().threads(labels, is_free)`."""
        raise NotImplementedError

    def assemble(self, rng: np.random.Generator, lifetime: LifetimeModel,
                 n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (is_free bool, obj int64 in allocation order, thread int32), n_rows each, in memory."""
        skeleton = Skeleton(self, lifetime, n_rows, rng.bit_generator.state)
        run = skeleton.open()
        pieces = [run.next(min(WORK_ROWS, n_rows - first)) for first in range(0, n_rows, WORK_ROWS)]
        if not pieces:
            pieces = [(np.empty(0, np.bool_), np.empty(0, np.int64), np.empty(0, np.int32))]
        is_free, slot, thread = (np.concatenate(column) for column in zip(*pieces, strict=True))
        rng.bit_generator.state = skeleton.end
        return is_free, lifetime_kernels.ids_of_slots(is_free, slot, run.slots.n_used), thread

    def drain_threads(self, rng: np.random.Generator, owners: np.ndarray) -> np.ndarray:
        """Threads (int32) that free the still-live objects whose allocating threads are `owners`."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        described: dict[str, Any] = {"name": self.name}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            described[item.name] = int(getattr(self, item.name))
        return described


@dataclass(frozen=True)
class Independent(ThreadModel):
    """T threads with their own streams, randomly interleaved; frees on the allocating thread."""

    name: ClassVar[str] = "independent"
    summary: ClassVar[str] = "T threads, each its own stream, randomly interleaved; local frees"
    drain_draws: ClassVar[bool] = False
    threads: int = 1

    def __post_init__(self) -> None:
        _check(isinstance(self.threads, int) and 1 <= self.threads <= MAX_THREADS,
               f"threads must be an integer in 1..{MAX_THREADS} (got {self.threads})")

    @property
    def n_threads(self) -> int:
        return self.threads

    def labels(self, state, n_rows):
        return _OneStream(state, n_rows) if self.threads == 1 else _RandomLabels(state, n_rows, self.threads)

    def thread_draws(self, state, n_rows):
        return _LabelThreads(state)

    def drain_threads(self, rng: np.random.Generator, owners: np.ndarray) -> np.ndarray:
        return owners.astype(np.int32)


@dataclass(frozen=True)
class ProducerConsumer(ThreadModel):
    """Producers allocate, consumers free: every FREE is a remote free."""

    name: ClassVar[str] = "producer-consumer"
    summary: ClassVar[str] = "producer threads allocate, consumer threads free (remote frees)"
    producers: int = 2
    consumers: int = 2
    #: 0: `producers` + `consumers` threads as given; T >= 1: T // 2 producers and T - T // 2 consumers
    #: (they override the two), T = 1: one thread allocates and frees.
    threads: int = 0

    def __post_init__(self) -> None:
        _check(isinstance(self.threads, int) and 0 <= self.threads <= MAX_THREADS,
               f"threads must be an integer in 1..{MAX_THREADS}, or 0 for producers + consumers "
               f"(got {self.threads})")
        if self.threads:
            object.__setattr__(self, "producers", max(1, self.threads // 2))
            object.__setattr__(self, "consumers", max(1, self.threads - self.threads // 2))
        _check(isinstance(self.producers, int) and self.producers >= 1,
               f"producers must be an integer >= 1 (got {self.producers})")
        _check(isinstance(self.consumers, int) and self.consumers >= 1,
               f"consumers must be an integer >= 1 (got {self.consumers})")
        _check(self.producers + self.consumers <= MAX_THREADS,
               f"producers + consumers must be <= {MAX_THREADS} (got {self.producers + self.consumers})")

    @property
    def n_threads(self) -> int:
        return 1 if self.threads == 1 else self.producers + self.consumers

    def labels(self, state, n_rows):
        return _OneStream(state, n_rows)

    def thread_draws(self, state, n_rows):
        if self.threads == 1:
            return _LabelThreads(state)  # the one stream's label: thread 0, no draws
        return _ProducerConsumerThreads(state, n_rows, self.producers, self.consumers)

    def drain_threads(self, rng: np.random.Generator, owners: np.ndarray) -> np.ndarray:
        consumers = rng.integers(self.producers, self.producers + self.consumers, size=owners.size, dtype=np.int32)
        return np.zeros_like(consumers) if self.threads == 1 else consumers

    def params(self) -> dict[str, Any]:
        described = super().params()
        if not self.threads:  # as before the thread axis: the meta of existing traces stays as it was
            del described["threads"]
        return described


THREAD_MODELS: dict[str, type[ThreadModel]] = {cls.name: cls for cls in (Independent, ProducerConsumer)}


# --------------------------------------------------------------------------- the skeleton
class Skeleton:
    """Where every draw of an `n_rows`-row skeleton starts, from a Generator state; `end` = the state after."""

    def __init__(self, thread_model: ThreadModel, lifetime: LifetimeModel, n_rows: int, state: State) -> None:
        self.thread_model, self.lifetime, self.n_rows = thread_model, lifetime, int(n_rows)
        self.labels = thread_model.labels(state, self.n_rows)
        self.rows = self.labels.rows
        state = self.labels.end
        self.starts = []
        for count in self.rows.tolist():
            starts, state = lay_out(state, lifetime.parts(int(count)))
            self.starts.append(starts)
        self.prepared = lifetime.prepare(self.rows, self.starts)
        self.thread_draws = thread_model.thread_draws(state, self.n_rows)
        self.end = self.thread_draws.end

    def open(self) -> "SkeletonRun":
        return SkeletonRun(self)


class SkeletonRun:
    """The skeleton's rows, chunk by chunk: `next(count)` -> (is_free, slot, thread), fresh arrays."""

    def __init__(self, skeleton: Skeleton) -> None:
        self.n_rows = skeleton.n_rows
        self.labels = skeleton.labels.open()
        self.streams = skeleton.lifetime.open(skeleton.rows, skeleton.starts, skeleton.prepared)
        self.thread_draws = skeleton.thread_draws.open()
        self.slots = SlotStack()
        self.done = 0  # rows produced
        self.n_alloc = 0  # ALLOC rows among them

    def next(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        count = min(count, self.n_rows - self.done)
        labels = self.labels.read(count)
        is_free = np.empty(count, np.bool_)
        slot = np.empty(count, np.int64)
        self.slots.reserve(count)
        self.streams.run(labels, None, self.slots, is_free, slot)
        self.done += count
        self.n_alloc += count - int(np.count_nonzero(is_free))
        return is_free, slot, self.thread_draws.threads(labels, is_free)
