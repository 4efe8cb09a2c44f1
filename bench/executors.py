"""Where a sweep's cells run: behind one `concurrent.futures.Executor` seam.

- `InlineExecutor`: in this process, one cell after the other (`--jobs 1`,
  the default; a failing cell's exception surfaces like a pool's).
- a local process pool (`--jobs N`): `concurrent.futures.ProcessPoolExecutor`.
- a Dask cluster (`--executor dask --scheduler ADDRESS`): the
  `concurrent.futures` executor of a `dask.distributed.Client`
  (optional extra: `pip install -e '.[dask]'`).

Cells travel as specs and seeds (`bench.sweep.Cell`), never as traces: a
worker generates its cell's trace from the workload spec and the seed, so
every executor gives the same non-timing figures.

Compiled kernels.  numba compiles a kernel on its first call in a process
(or loads it from the on-disk cache, `labcore.jitcache`).  Two processes
compiling the same kernel at once both pay for it (numba writes cache files
atomically, so nothing is corrupted, but the work is done twice), and a cell
timed while its process compiles would still be correct (compile time is
measured apart) but slow to start.  So kernels are compiled once before any
cell fans out: `warm_up(specs)` compiles every allocator's replay kernel,
the metric passes and the generators in the calling process, which fills the
cache every local worker then loads from (a forked pool worker inherits them
compiled); on a Dask cluster `prepare_workers` then makes each worker load or
compile them, one worker per host first (it fills that host's cache), then
the host's other workers (they load it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

DASK_EXTRA_HINT = "install the optional extra: pip install -e '.[dask]' (dask[distributed])"


class InlineExecutor(Executor):
    """Runs each submitted call at once, in this process; its Future is already done."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001  (handed to the caller through the future)
            future.set_exception(error)
        return future


def warm_up(specs: Iterable[str]) -> float:
    """Compile (or load) every model spec's kernels and the metric passes in this process; the seconds it took."""
    from bench.harness import warm_up as warm_one
    from labcore.jitcache import compile_done

    seconds = sum(warm_one(spec) for spec in specs)
    compile_done()  # "compiled in T s" once for all of them, when they had to be compiled
    return seconds


def local_executor(jobs: int) -> Executor:
    """`jobs` == 1: in this process; else a pool of `jobs` worker processes."""
    if jobs <= 1:
        return InlineExecutor()
    return ProcessPoolExecutor(max_workers=jobs)


def dask_client(scheduler: str, timeout: str = "10s") -> Any:
    """A `dask.distributed.Client` connected to `scheduler` (ValueError naming the extra if dask is missing)."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError(f"--executor dask needs dask.distributed: {DASK_EXTRA_HINT}") from None
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def prepare_workers(client: Any, specs: list[str]) -> int:
    """Compile or load the kernels on every worker of a Dask cluster, one worker per host first; return workers."""
    workers = client.scheduler_info().get("workers", {})
    by_host: dict[str, list[str]] = {}
    for address, info in workers.items():
        by_host.setdefault(str(info.get("host", address)), []).append(address)
    if not by_host:
        raise ValueError("the Dask cluster has no workers")
    first = [addresses[0] for addresses in by_host.values()]
    rest = [address for addresses in by_host.values() for address in addresses[1:]]
    client.run(warm_up, specs, workers=first)
    if rest:
        client.run(warm_up, specs, workers=rest)
    return len(workers)

