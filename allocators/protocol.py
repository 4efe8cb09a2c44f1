"""The one protocol every allocator implements, as a thin Python shell over kernels.

An allocator is a subclass of `Allocator` living in its own module.  The module
defines its state (a tuple of numpy arrays, built by `make_state`) and the
kernels listed in `allocators.replay`; the class only names them:

    @register
    class Pool(Allocator):
        name = "pool"
        summary = "fixed-size blocks carved from one region, LIFO free list"
        kernels = Kernels(alloc_block, free_block, heap_stats, reset_state)

Naming the kernels is all a class does to wire them: the base class builds the
class's replay loop from them (`replay_kernel`, `allocators.replay`) when the
class is defined.

The shell validates every argument before it reaches a kernel (kernels do no
bounds checks), turns kernel status codes into exceptions, and keeps a dict of
live blocks so `deallocate` of an unknown address is an `InvalidAddress` error,
never memory corruption of the model.

Operations (the seed's four, plus replay):
- `create(capacity_bytes, **params)`: an allocator over a simulated address
  space `[0, capacity_bytes)`; nothing real is allocated.
- `allocate(size, thread=0) -> addr`, `deallocate(addr, thread=0)`.
- `free()`: release every block, keep the memory taken so far (reset).
- `replay(trace) -> AllocLog`: a fresh heap, the whole trace in one kernel call.
  `prepare_replay(trace)` gives the `ReplayJob` behind it: its `run(start, stop)`
  replays any run of rows and continues later where it stopped, and with
  `keep_going=True` a failing row is recorded and skipped instead of ending the
  replay (`ReplayJob.failures()`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from allocators import replay as driver
from allocators.detections import SafetyKernels
from allocators.errors import BadParameter, InvalidAddress, UnsupportedOperation, error_for
from allocators.log import AllocLog
from allocators.replayjob import ReplayJob, StreamReplay
from labcore.memory import NotEnoughMemory, check_fits
from labcore.units import format_bytes
from workloads.facts import TraceFacts, as_facts
from workloads.trace import MAX_REQUEST_SIZE, Trace

#: Smallest address space an allocator can be created over.
MIN_CAPACITY = 4096
#: Largest simulated address space (2^48 bytes, as x86-64 user space).
MAX_CAPACITY = 1 << 48
#: Timeline samples per replay unless asked otherwise.
DEFAULT_TIMELINE_SAMPLES = 1000
#: Failing rows a keep-going replay records (all are counted).
DEFAULT_MAX_FAILURES = 4096
#: State sizes of the estimate's probe instances, by (class, parameters).
_PROBES: dict[tuple, tuple[int, int] | None] = {}


#: The default capacity's margin over the bytes live at the trace's peak (see `default_capacity`).
LIVE_MARGIN = 4
#: Bytes added per live object at the peak (headers, alignment, size-class rounding).
SLACK_PER_OBJECT = 64
#: Added to every default capacity: room for thread caches, spans and arenas a model takes whatever is live.
BASE_CAPACITY = 16 << 20
#: A default capacity is halved until the model's tables for it fit in this (a fixed figure, so the capacity
#: and hence every figure is the same on every machine); a larger request then fails as out of memory.
DEFAULT_STATE_LIMIT = 4 << 30
#: Capacities up to this are never estimated (their tables are small); the estimate's probes use these sizes.
PROBE_CAPACITIES = (1 << 22, 1 << 23)


def _power_of_two_above(need: int) -> int:
    return 1 << max(20, (need - 1).bit_length())


def no_reuse_capacity(trace: Trace | TraceFacts) -> int:
    """An address space in which every request of `trace` gets fresh memory, none reused.

    Sum of every request rounded up to 16 B plus 64 B of slack per request, doubled, plus 1 MiB, rounded up to
    a power of two.  What an allocator that never reuses freed memory needs (linear, region, Go without GC).
    """
    return _power_of_two_above(as_facts(trace).granule_sum(per_request=SLACK_PER_OBJECT) * 2 + (1 << 20))


def default_capacity(trace: Trace | TraceFacts, scale: float = 1.0) -> int:
    """The address space an allocator that reuses freed memory replays `trace` in when the user gives none.

    LIVE_MARGIN (4) x (the peak live bytes + 64 B per object live at the peak) + 2 x the largest request
    + 16 MiB, rounded up to a power of two (`scale` multiplies the margin), and never more than
    `no_reuse_capacity`: a short trace gets room for all of its requests, a long one room for what is live
    (a long realloc chain with 1 MiB live does not get a 256 GiB address space).  This is address space, not
    memory: models touch metadata only for what they use.
    """
    facts = as_facts(trace)
    live = facts.peak_live_bytes + SLACK_PER_OBJECT * facts.peak_live_objects
    need = int(LIVE_MARGIN * scale * live) + 2 * facts.max_request + BASE_CAPACITY
    return min(_power_of_two_above(need), no_reuse_capacity(facts))


def state_nbytes(state: Any) -> int:
    """Bytes of the numpy arrays in a state (a tuple of arrays and nested tuples)."""
    if isinstance(state, np.ndarray):
        return int(state.nbytes)
    if isinstance(state, tuple | list):
        return sum(state_nbytes(item) for item in state)
    return 0


class Allocator:
    """Base class: the protocol, argument validation and status handling."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: Named parameter sets, e.g. {"glibc": {...}}; chosen with preset="glibc".
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Extra parameter strings the conformance suite also tests, e.g. ("policy=best",).
    variants: ClassVar[tuple[str, ...]] = ()
    #: Parameters and their defaults (besides capacity_bytes and max_threads).
    defaults: ClassVar[dict[str, Any]] = {}
    #: Whether deallocate() of single blocks is supported at all.
    supports_deallocate: ClassVar[bool] = True
    #: Whether blocks may only be deallocated newest-first (a stack allocator).
    lifo_only: ClassVar[bool] = False
    #: Whether freed memory is ever handed out again (False: a bump allocator; its default capacity is then
    #: `no_reuse_capacity`, room for every request).
    reuses_freed_memory: ClassVar[bool] = True
    #: Whether freed blocks are held back from reuse (a quarantine; set per instance): the conformance suite then
    #: does not ask that a block freed and requested again be served from the freed memory at once.
    delays_reuse: bool = False
    #: Whether the allocator can stand in for malloc: any size, any number of objects, freed in any order,
    #: memory reused object by object.  False for special-purpose designs (a bump pointer, fixed-size
    #: blocks, a LIFO stack, whole-region frees): the report marks them as such and keeps them out of its
    #: verdicts and of the Pareto front (`general_purpose_with` for a spec's parameters).
    general_purpose: ClassVar[bool] = True
    #: Alignment every granted address honours.
    alignment: ClassVar[int] = 16
    #: What else shrinks the model's capacity-sized tables, for the message that refuses them (", or ...").
    state_hint: ClassVar[str] = ""
    counter_names: ClassVar[tuple[str, ...]] = ()
    #: Counters that count operations on a structure shared by all threads, i.e. what would take a
    #: lock (or a contended atomic) in a real allocator; their sum per 1000 trace rows is the metric
    #: `shared_ops_per_kop`.  None: not declared (the metric is NaN).
    shared_counters: ClassVar[tuple[str, ...] | None] = None

    #: Parameters that are checks or hardening, with the value that switches each off (the unhardened baseline
    #: a safety report compares an allocator's speed and footprint with).
    hardening_params: ClassVar[dict[str, Any]] = {}
    #: free_checked and write_bytes for safety replays (`allocators.detections`); None: the allocator has no
    #: checks, and a safety replay records every fault as not detected without running it.
    safety_kernels: ClassVar[SafetyKernels | None] = None

    #: Called with each new instance right after check_params, or None: a per-instance set-up that may give the
    #: instance its own kernels, replay_kernel, safety_kernels and make_state (`allocators.hardening.harden`).
    configure_instance: ClassVar[Callable[[Allocator], None] | None] = None

    #: The allocator's kernels; a subclass names them once, `kernels = Kernels(...)`.
    kernels: ClassVar[driver.Kernels]
    #: The replay loop bound to `kernels`, built when a class that names kernels is defined.
    replay_kernel: ClassVar[Callable]

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        if "kernels" in cls.__dict__:
            if not isinstance(cls.kernels, driver.Kernels):
                raise TypeError(f"{cls.__name__}.kernels must be an allocators.replay.Kernels")
            module_file = getattr(sys.modules.get(cls.__module__), "__file__", None) or __file__
            cls.replay_kernel = staticmethod(
                driver.build_replay_kernel(cls.name or cls.__name__, module_file, cls.kernels)
            )

    def __init__(self, capacity_bytes: int, max_threads: int = 64, **params: Any) -> None:
        if not isinstance(capacity_bytes, (int, np.integer)) or isinstance(capacity_bytes, bool):
            raise BadParameter(f"{self.name}: capacity_bytes must be an integer, got {capacity_bytes!r}")
        if not MIN_CAPACITY <= int(capacity_bytes) <= MAX_CAPACITY:
            raise BadParameter(
                f"{self.name}: capacity_bytes {capacity_bytes} outside {MIN_CAPACITY}..{MAX_CAPACITY}"
            )
        if not isinstance(max_threads, (int, np.integer)) or not 1 <= int(max_threads) <= 1024:
            raise BadParameter(f"{self.name}: max_threads must be in 1..1024, got {max_threads!r}")
        self.capacity = int(capacity_bytes)
        self.max_threads = int(max_threads)
        self.params = self._resolve_params(params)
        self.check_params()
        if type(self).configure_instance is not None:
            type(self).configure_instance(self)
        self._check_state_fits(params)
        self.state = self.make_state()
        self._live: dict[int, int] = {}

    # ---------------------------------------------------------------- params
    def _resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        given = dict(given)
        resolved = dict(self.defaults)
        preset = given.pop("preset", None)
        if preset is not None:
            if preset not in self.presets:
                known = ", ".join(sorted(self.presets)) or "none"
                raise BadParameter(f"{self.name}: unknown preset '{preset}' (known: {known})")
            resolved.update(self.presets[preset])
            resolved["preset"] = preset
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise BadParameter(f"{self.name}: unknown parameter(s) {', '.join(unknown)} (known: {known})")
        resolved.update(given)
        return resolved

    def check_params(self) -> None:
        """Subclasses raise BadParameter for values their kernels cannot take."""

    def _check_state_fits(self, params: dict[str, Any]) -> None:
        """BadParameter, before anything is reserved, when this capacity's tables would not fit this machine."""
        need = type(self).estimate_state_bytes(self.capacity, max_threads=self.max_threads, **params)
        try:
            check_fits(f"{self.name} with capacity {format_bytes(self.capacity)}", need,
                       "give a smaller capacity (--capacity), or leave it to the trace" + self.state_hint)
        except NotEnoughMemory as error:
            raise BadParameter(str(error)) from None

    @classmethod
    def estimate_state_bytes(cls, capacity: int, **params: Any) -> int:
        """Bytes of the state an instance of this capacity reserves, without making it.

        Every model's tables are linear in the capacity (a fixed part plus so many bytes per page, granule or
        block), so the estimate is the line through two small instances (`PROBE_CAPACITIES`), plus 3 % and 64 KiB
        for tables rounded up to a power of two or a page; at
        or below the larger probe it is 0 (not estimated).  The conformance suite checks it against a third
        instance.  0 too when the parameters are not valid at the probes' size (the instance then checks them).
        """
        small, large = PROBE_CAPACITIES
        if capacity <= large:
            return 0
        key = (cls, tuple(sorted((name, repr(value)) for name, value in params.items())))
        if key not in _PROBES:
            try:
                _PROBES[key] = (state_nbytes(cls(small, **params).state), state_nbytes(cls(large, **params).state))
            except (BadParameter, MemoryError):
                _PROBES[key] = None
        if _PROBES[key] is None:
            return 0
        at_small, at_large = _PROBES[key]
        per_byte = max(at_large - at_small, 0) / (large - small)
        return int((at_large + per_byte * (capacity - large)) * 1.03) + (64 << 10)  # tables rounded up

    @classmethod
    def fit_capacity(cls, capacity: int, params: dict[str, Any], limit: int = DEFAULT_STATE_LIMIT) -> int:
        """`capacity`, halved until the tables for it fit in `limit` bytes (not below the probes' size)."""
        while capacity > PROBE_CAPACITIES[1] and cls.estimate_state_bytes(capacity, **params) > limit:
            capacity //= 2
        return capacity

    def make_state(self) -> tuple:
        raise NotImplementedError

    @classmethod
    def create(cls, capacity_bytes: int, **params: Any) -> Allocator:
        return cls(capacity_bytes, **params)

    @classmethod
    def general_purpose_with(cls, params: dict[str, Any]) -> bool:
        """Whether the allocator with these (spec) parameters is general purpose; the class attribute unless a
        parameter decides it (an object pool is as general as the allocator behind it)."""
        del params
        return bool(cls.general_purpose)

    @classmethod
    def params_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters to fill in from a trace (or its facts) when the user left them unset (a pool's block size)."""
        return {}

    @classmethod
    def capacity_for_trace(cls, trace: Trace | TraceFacts, params: dict[str, Any]) -> int:
        """Address space to replay `trace` (or a trace with these facts) in when the user gives none."""
        return default_capacity(trace) if cls.reuses_freed_memory else no_reuse_capacity(trace)

    # ------------------------------------------------------------- protocol
    def allocate(self, size: int, thread: int = 0) -> int:
        """Allocate `size` bytes for `thread`; return the block's address."""
        size = self._check_int("size", size, 1, MAX_REQUEST_SIZE)
        thread = self._check_int("thread", thread, 0, self.max_threads - 1)
        addr, granted = self.kernels.alloc_block(self.state, size, thread)
        if addr < 0:
            raise error_for(int(addr), f"{self.name}: allocate({size}, thread={thread}) {self._state_text()}")
        self._live[int(addr)] = int(granted)
        return int(addr)

    def deallocate(self, addr: int, thread: int = 0) -> None:
        """Return the block at `addr` to the allocator."""
        if not self.supports_deallocate:
            raise UnsupportedOperation(f"{self.name}: deallocate is not supported; use free() to release everything")
        addr = self._check_int("addr", addr, 0, self.capacity - 1)
        thread = self._check_int("thread", thread, 0, self.max_threads - 1)
        if addr not in self._live:
            raise InvalidAddress(f"{self.name}: deallocate({addr}): not a live block")
        status, _ = self.kernels.free_block(self.state, addr, thread)
        if status < 0:
            raise error_for(int(status), f"{self.name}: deallocate({addr}, thread={thread})")
        del self._live[addr]

    def free(self) -> None:
        """Release every block at once; the memory taken so far stays with the allocator."""
        self.kernels.reset_state(self.state)
        self._live.clear()

    def replay(self, trace: Trace, sample_every: int | None = None) -> AllocLog:
        """Run `trace` on a fresh heap in one kernel call and return its AllocLog."""
        log, _ = self.replay_timed(trace, sample_every)
        return log

    def replay_timed(self, trace: Trace, sample_every: int | None = None) -> tuple[AllocLog, float]:
        """Like replay(), also returning the kernel's wall time in seconds (arrays prepared outside it)."""
        job = self.prepare_replay(trace, sample_every)
        elapsed = job.run_timed()
        return job.finish(), elapsed

    def prepare_replay(
        self, trace: Trace, sample_every: int | None = None, keep_going: bool = False,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> ReplayJob:
        """Validate, reset to a fresh heap and allocate every buffer of a replay; `run()` is then only the kernel.

        keep_going: a failing row is recorded (the first `max_failures` of them, with their status) and the
        replay goes on with the next row; `finish()` then returns the log instead of raising.
        """
        if not isinstance(trace, Trace):
            raise TypeError(f"replay() needs a Trace, got {type(trace).__name__}")
        trace.require_valid()  # a Trace built with validate_on_init=False never reaches the kernel unchecked
        sample_every, max_failures = self._fresh_replay(len(trace), trace.n_threads, sample_every, max_failures)
        return ReplayJob(self, trace, sample_every, keep_going=bool(keep_going), max_failures=max_failures)

    def prepare_stream_replay(
        self, facts: TraceFacts, chunk_rows: int, sample_every: int | None = None, keep_going: bool = False,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> StreamReplay:
        """A fresh heap and the buffers to replay, chunk by chunk, a trace with these facts (`StreamReplay`)."""
        if not isinstance(facts, TraceFacts):
            raise TypeError(f"prepare_stream_replay() needs TraceFacts, got {type(facts).__name__}")
        chunk_rows = self._check_int("chunk_rows", chunk_rows, 1, 1 << 40)
        sample_every, max_failures = self._fresh_replay(facts.rows, facts.n_threads, sample_every, max_failures)
        return StreamReplay(self, facts, sample_every, chunk_rows, keep_going=bool(keep_going),
                            max_failures=max_failures)

    def _fresh_replay(self, rows: int, n_threads: int, sample_every: int | None, max_failures: int) -> tuple[int, int]:
        """Check a replay's arguments, reset to a fresh heap; (sample_every, max_failures) to build it with."""
        if rows and n_threads > self.max_threads:
            raise BadParameter(f"{self.name}: trace uses {n_threads} threads, allocator was created with "
                               f"max_threads={self.max_threads}")
        if sample_every is None:
            sample_every = max(1, rows // DEFAULT_TIMELINE_SAMPLES)
        sample_every = self._check_int("sample_every", sample_every, 1, 1 << 62)
        max_failures = self._check_int("max_failures", max_failures, 0, 1 << 40)
        self.state = self.make_state()
        self._live.clear()
        return sample_every, max_failures

    # ----------------------------------------------------------- inspection
    def live_blocks(self) -> dict[int, int]:
        """Address -> granted size of every block allocated through allocate() and not deallocated."""
        return dict(self._live)

    @property
    def footprint(self) -> int:
        """Bytes of address space the allocator has taken from its 'OS'."""
        return int(self.kernels.heap_stats(self.state)[0])

    @property
    def metadata_bytes(self) -> int:
        return int(self.kernels.heap_stats(self.state)[1])

    def counters(self) -> dict[str, int]:
        """Event counters; by convention state[0] holds them in `counter_names` order."""
        if not self.counter_names:
            return {}
        values = self.state[0]
        return {name: int(values[index]) for index, name in enumerate(self.counter_names)}

    # -------------------------------------------------------------- helpers
    def _check_int(self, what: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise BadParameter(f"{self.name}: {what} must be an integer, got {value!r}")
        if not low <= int(value) <= high:
            raise BadParameter(f"{self.name}: {what} {value} outside {low}..{high}")
        return int(value)

    def _state_text(self, live_blocks: int | None = None) -> str:
        """The heap's state for an error message; `live_blocks`: the replay's count (default: the protocol's)."""
        footprint, metadata = self.kernels.heap_stats(self.state)
        live = len(self._live) if live_blocks is None else live_blocks
        return f"[footprint {int(footprint)} B of capacity {self.capacity} B, {live} live blocks]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity_bytes={self.capacity}, params={self.params})"
