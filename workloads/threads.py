"""Thread models: which simulated thread performs each row.

A thread model takes a lifetime model and a row count and returns the
ALLOC/FREE skeleton of the whole trace: `is_free`, `obj` (globally unique
ids, each allocated once, not yet in allocation order) and `thread` (int32).

- `Independent(threads=T)`: T threads, each with its own stream from the
  lifetime model (its own working set, e.g. `live` objects per thread).  Each
  row goes to a uniformly random thread, so the streams are interleaved at
  random; every FREE happens on the thread that allocated the object.
- `ProducerConsumer(producers=P, consumers=C)`: one stream from the lifetime
  model (FIFO = a hand-off queue); ALLOC rows run on a random producer
  (threads 0..P-1), FREE rows on a random consumer (threads P..P+C-1), so
  every FREE is a remote free.

`drain_threads()` chooses the threads that free the objects still live at the
end of a drained trace: the owner for `Independent`, a random consumer for
`ProducerConsumer`.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads.lifetimes import LifetimeModel, Schedule
from workloads.trace import MAX_THREADS


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class ThreadModel:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @property
    def n_threads(self) -> int:
        raise NotImplementedError

    def assemble(self, rng: np.random.Generator, lifetime: LifetimeModel,
                 n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (is_free bool, obj int64 globally unique, thread int32), n_rows each."""
        raise NotImplementedError

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
    threads: int = 1

    def __post_init__(self) -> None:
        _check(isinstance(self.threads, int) and 1 <= self.threads <= MAX_THREADS,
               f"threads must be an integer in 1..{MAX_THREADS} (got {self.threads})")

    @property
    def n_threads(self) -> int:
        return self.threads

    def assemble(self, rng: np.random.Generator, lifetime: LifetimeModel,
                 n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.threads == 1:
            stream = lifetime.schedule(rng, n_rows)
            return stream.is_free, stream.obj, np.zeros(n_rows, np.int32)
        labels = rng.integers(0, self.threads, size=n_rows, dtype=np.int16)
        rows_per_thread = np.bincount(labels, minlength=self.threads)
        streams: list[Schedule] = [lifetime.schedule(rng, int(count)) for count in rows_per_thread]
        order = np.argsort(labels, kind="stable")  # rows of thread 0, then of thread 1, ...
        id_offset = np.cumsum([0] + [stream.n_alloc for stream in streams])
        is_free = np.empty(n_rows, np.bool_)
        obj = np.empty(n_rows, np.int64)
        is_free[order] = np.concatenate([stream.is_free for stream in streams])
        obj[order] = np.concatenate([stream.obj + id_offset[t] for t, stream in enumerate(streams)])
        return is_free, obj, labels.astype(np.int32)

    def drain_threads(self, rng: np.random.Generator, owners: np.ndarray) -> np.ndarray:
        return owners.astype(np.int32)


@dataclass(frozen=True)
class ProducerConsumer(ThreadModel):
    """Producers allocate, consumers free: every FREE is a remote free."""

    name: ClassVar[str] = "producer-consumer"
    summary: ClassVar[str] = "producer threads allocate, consumer threads free (remote frees)"
    producers: int = 2
    consumers: int = 2

    def __post_init__(self) -> None:
        _check(isinstance(self.producers, int) and self.producers >= 1,
               f"producers must be an integer >= 1 (got {self.producers})")
        _check(isinstance(self.consumers, int) and self.consumers >= 1,
               f"consumers must be an integer >= 1 (got {self.consumers})")
        _check(self.producers + self.consumers <= MAX_THREADS,
               f"producers + consumers must be <= {MAX_THREADS} (got {self.producers + self.consumers})")

    @property
    def n_threads(self) -> int:
        return self.producers + self.consumers

    def assemble(self, rng: np.random.Generator, lifetime: LifetimeModel,
                 n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        stream = lifetime.schedule(rng, n_rows)
        producer = rng.integers(0, self.producers, size=n_rows, dtype=np.int32)
        consumer = rng.integers(self.producers, self.producers + self.consumers, size=n_rows, dtype=np.int32)
        return stream.is_free, stream.obj, np.where(stream.is_free, consumer, producer)

    def drain_threads(self, rng: np.random.Generator, owners: np.ndarray) -> np.ndarray:
        return rng.integers(self.producers, self.producers + self.consumers, size=owners.size, dtype=np.int32)


THREAD_MODELS: dict[str, type[ThreadModel]] = {cls.name: cls for cls in (Independent, ProducerConsumer)}
