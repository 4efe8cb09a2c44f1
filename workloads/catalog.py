"""Named workloads for the CLI: `names()`, `describe(name)`, `make(spec, n_ops, seed)`, `make_chunks(...)`.

A workload is a flat dict of parameters: the component names (`sizes`,
`lifetime`, `threading`, and `base` for `lifetime=longlived`), the fields of
the chosen components (e.g. `mu`, `sigma`, `live`, `threads`) and the generic
keys below.  A *spec* is a name or `name:key=value,key=value`, e.g.
`lognormal:threads=4,lifetime=fifo` or `pareto:alpha=1.5,max_size=64KiB`.

- Keys that select components are applied first; then only the fields of the
  selected components and the generic keys are valid.  Parameters of the
  named workload that no longer apply (e.g. `mu` after `sizes=uniform`) are
  dropped; a key given in the spec that does not apply raises ValueError
  naming the key and listing the valid ones.
- Values: integers accept `_`, `0x` and the binary units K/KiB, M/MiB, G/GiB;
  booleans true/false/yes/no/on/off/1/0; lists (`values`, `weights` of the
  empirical distribution) are `/`-separated, e.g. `values=16/32/64`;
  `histogram=PATH` (empirical only) loads `size,weight` rows from a CSV.

A workload may also have keys of its own (`Workload.keys`, a dataclass): `churn`'s `request_bytes` and
`temps` (`workloads.churn.ChurnKeys`) are resolved into its components' `mu` and `batch`, which its spec
may then not give; the trace's meta records them beside the components' parameters.

Generic keys:

| key | meaning |
|---|---|
| `touch` | ACCESS row after every ALLOC (whole object) |
| `scan_every`, `scan_count`, `scan_bytes` | every `scan_every` rows, ACCESS rows for up to `scan_count` live |
| | objects, `scan_bytes` each (0 = whole object) |
| `realloc` | share of REALLOC rows (grow a random live object x1.5..2) |
| `drain` | free every live object at the end (default true) |
| `faults`, `fault_rate` | a fault trace: the named mix of `workloads.faults.FAULT_MIXES` (`all`, `frees`, |
| | `writes`) injected at `fault_rate` faults per row and kind (default 0.0005, at least one each where a |
| | row can anchor it), seeded with the trace's seed; ordinary replays ignore the faults, `bench safety` runs them |

A workload may instead be a *program* with a generator of its own
(`Workload.program`, the hook in workloads/programs.py): `goescape`
(workloads/escape.py) and the classic benchmarks of mimalloc-bench (larson,
mstress, rptest, alloc-test, sh6bench, xmalloc-test and its alias xmalloc,
cache-scratch, cache-thrash, glibc-simple, malloc-large: workloads/classics/;
glibc-thread is a composition).  Its keys are its own; the generic keys above
do not apply.

Every catalog trace caps requests at 1 MiB (`max_size`) unless the spec says
otherwise, so every allocator model can replay it, but malloc-large, whose
5..25 MiB buffers are the point (`Workload.request_cap`); the default size is
`DEFAULT_N_OPS` rows.  `make_chunks` gives the same trace chunk by chunk, in
memory bounded by the chunk and the live objects (for traces too large for
memory).
"""

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from labcore.units import parse_bytes
from workloads import classics
from workloads.access import Access
from workloads.churn import ChurnKeys
from workloads.escape import GOESCAPE
from workloads.generator import DEFAULT_CHUNK_ROWS, GeneratedChunks, generate, generate_chunks
from workloads.lifetimes import LIFETIME_MODELS, LongLived
from workloads.sizes import SIZE_DISTRIBUTIONS, load_histogram
from workloads.threads import THREAD_MODELS
from workloads.trace import Trace, check_rows_fit

DEFAULT_N_OPS = 200_000
#: The largest request of a catalog trace unless its spec says otherwise (so every allocator model replays it).
DEFAULT_REQUEST_CAP = 1 << 20

#: Keys every workload accepts, with their types and defaults.
GENERIC_KEYS: dict[str, tuple[type, Any]] = {
    "sizes": (str, "lognormal"),
    "lifetime": (str, "random"),
    "threading": (str, "independent"),
    "touch": (bool, False),
    "scan_every": (int, 0),
    "scan_count": (int, 0),
    "scan_bytes": (int, 0),
    "realloc": (float, 0.0),
    "drain": (bool, True),
    "faults": (str, "none"),
    "fault_rate": (float, 0.0005),
}
SELECTOR_KEYS = ("sizes", "lifetime", "base", "threading")


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    params: dict[str, Any]
    #: a dataclass of the workload's own keys (fields, with their defaults) that `apply(merged)` resolves into
    #: component parameters (those in its `sets`, which a spec may then not give): `workloads.churn.ChurnKeys`
    keys: type | None = None
    #: a generator of its own instead of sizes x lifetime x threads (`workloads.programs.Program`): `params` are
    #: then its defaults, and its keys are its own
    program: Any = None
    #: the largest request its trace makes with the default keys (every catalog trace but malloc-large's: 1 MiB)
    request_cap: int = DEFAULT_REQUEST_CAP


_LOGNORMAL = {"sizes": "lognormal", "mu": 4.0, "sigma": 1.0}
_RANDOM_10K = {"lifetime": "random", "live": 10_000}

_WORKLOADS = [
    Workload("fixed", "fixed 64 B requests, random frees, ~10k live", {"sizes": "fixed", "size": 64, **_RANDOM_10K}),
    Workload("uniform", "uniform 8..1000 B requests, random frees, ~10k live",
             {"sizes": "uniform", "lo": 8, "hi": 1000, **_RANDOM_10K}),
    Workload("lognormal", "THE benchmark: log-normal sizes (mu=4, sigma=1: median ~55 B), random frees, ~10k live",
             {**_LOGNORMAL, **_RANDOM_10K}),
    Workload("pareto", "power-law sizes from 16 B (alpha=1.2, capped at 1 MiB), random frees, ~10k live",
             {"sizes": "pareto", "alpha": 1.2, "minimum": 16, **_RANDOM_10K}),
    Workload("bimodal", "90 % ~32 B and 10 % ~4 KiB requests, random frees, ~10k live",
             {"sizes": "bimodal", "small": 32, "large": 4096, "large_fraction": 0.1, "spread": 0.1, **_RANDOM_10K}),
    Workload("exponential", "exponential sizes (mean 256 B), random frees, ~10k live",
             {"sizes": "exponential", "mean": 256.0, **_RANDOM_10K}),
    Workload("adversarial", "sizes one byte above size-class boundaries (2^k+1, 16j+1), random frees",
             {"sizes": "adversarial", **_RANDOM_10K}),
    Workload("empirical", "sizes from a small-object histogram (16 B..64 KiB), random frees, ~10k live",
             {"sizes": "empirical", **_RANDOM_10K}),
    Workload("lifo", "log-normal sizes, stack (LIFO) frees, ~1000 live",
             {**_LOGNORMAL, "lifetime": "lifo", "live": 1000}),
    Workload("fifo", "log-normal sizes, queue (FIFO) frees, ~1000 live",
             {**_LOGNORMAL, "lifetime": "fifo", "live": 1000}),
    Workload("explifetime", "log-normal sizes, exponential lifetimes (mean 2000 rows, ~1000 live)",
             {**_LOGNORMAL, "lifetime": "exponential", "mean_lifetime": 2000.0}),
    Workload("phased", "log-normal sizes, batches of 1000 allocated then freed all at once",
             {**_LOGNORMAL, "lifetime": "phased", "batch": 1000, "order": "fifo"}),
    Workload("longlived", "log-normal sizes, 5 % of objects live to the end, the rest random frees (~10k live)",
             {**_LOGNORMAL, "lifetime": "longlived", "long_fraction": 0.05, "base": "random", "live": 10_000}),
    Workload("producer-consumer", "log-normal sizes, 2 producers allocate, 2 consumers free (FIFO hand-off, remote)",
             {**_LOGNORMAL, "lifetime": "fifo", "live": 1000, "threading": "producer-consumer", "producers": 2,
              "consumers": 2}),
    Workload("threads4", "log-normal sizes, 4 independent threads, random frees (~2500 live each)",
             {**_LOGNORMAL, "lifetime": "random", "live": 2500, "threads": 4}),
    Workload("scan", "log-normal sizes, random frees, touch on allocation, 256-object scan every 1000 rows",
             {**_LOGNORMAL, **_RANDOM_10K, "touch": True, "scan_every": 1000, "scan_count": 256}),
    Workload("realloc", "log-normal sizes, random frees, 10 % REALLOC rows growing a live object x1.5..2",
             {**_LOGNORMAL, **_RANDOM_10K, "realloc": 0.1}),
    Workload("misuse", "lognormal as a fault trace: every fault class (double/invalid/foreign/stale frees, writes "
             "after free, overflows, underflows), 0.05 % of rows each", {**_LOGNORMAL, **_RANDOM_10K, "faults": "all"}),
    Workload("misuse-frees", "lognormal as a fault trace: double, invalid, foreign and stale frees",
             {**_LOGNORMAL, **_RANDOM_10K, "faults": "frees"}),
    Workload("misuse-writes", "lognormal as a fault trace: writes after free, overflows, underflows",
             {**_LOGNORMAL, **_RANDOM_10K, "faults": "writes"}),
    # The classic benchmarks of mimalloc-bench (shared/reference/production-allocators.md section 5): programs of
    # their own (workloads/classics/, one module each), but glibc-thread, a composition.
    Workload("larson", "mimalloc-bench larson (Larson's server test): 4 threads x 250 slots, 8..1000 B replaced at "
             "random; threads replaced on their slots (remote frees)", {}, program=classics.LARSON),
    Workload("mstress", "mimalloc-bench mstress: rounds of 4 threads, 8..512 B + 2 % large, pointers swapped through a "
             "global 1000-slot transfer array (remote frees)", {}, program=classics.MSTRESS),
    Workload("rptest", "mimalloc-bench rptest (rpmalloc): 4 threads, 8..16000 B linear drop-off, scattered "
             "replacement; every 2nd loop a batch freed by the next thread", {}, program=classics.RPTEST),
    Workload("alloc-test", "mimalloc-bench alloc-test (OLogN): 4 independent threads, Pareto 80/20 slot choice, "
             "5..1024 B (half 5..8 B), written and read whole", {}, program=classics.ALLOC_TEST),
    Workload("sh6bench", "mimalloc-bench sh6bench (SmartHeap): 8 threads sweep 1..709 B into rings, freed half FIFO "
             "half LIFO, a fifth kept each pass", {}, program=classics.SH6BENCH),
    Workload("xmalloc-test", "mimalloc-bench xmalloc-test (Lever & Boreham): 4 producers fill batches of 4096 x 64 B, "
             "4 consumers free them: every free remote", {}, program=classics.XMALLOC_TEST),
    Workload("xmalloc", "alias of xmalloc-test", {}, program=classics.XMALLOC_TEST),
    Workload("cache-scratch", "mimalloc-bench cache-scratch (Hoard): 1 B objects handed from the main thread to 4 "
             "threads, then allocated and written (passive false sharing)", {}, program=classics.CACHE_SCRATCH),
    Workload("cache-thrash", "mimalloc-bench cache-thrash (Hoard): 4 threads allocate 1 B objects and write each 16 "
             "times (active false sharing)", {}, program=classics.CACHE_THRASH),
    Workload("glibc-simple", "glibc bench-malloc-simple (mimalloc-bench): 16/32/64 B batches of 25..1600 freed half "
             "FIFO half LIFO, on the main thread and a second one", {}, program=classics.GLIBC_SIMPLE),
    Workload("glibc-thread", "glibc bench-malloc-thread (mimalloc-bench): 4..32768 B inverse-square, 2 independent "
             "threads x ~1024 live, written whole",
             {"sizes": "pareto", "alpha": 1.0, "minimum": 4, "max_size": 32768, "lifetime": "random", "live": 1024,
              "threads": 2, "touch": True}),
    Workload("malloc-large", "mimalloc-bench malloc-large: 5..25 MiB zero-filled buffers replacing one of 20, over the "
             "1 MiB cap: hardened pool/freelist run out of memory", {}, program=classics.MALLOC_LARGE,
             request_cap=25 << 20),
    # A program model of its own (workloads/escape.py): keys `escape`, `escape_analysis`, `allocs`, ... + sizes.
    Workload("goescape", "a Go-like program after escape analysis: its heap side (escape=0.5 of the sites escape; "
             "the stack frames in meta), workloads/escape.py", {}, program=GOESCAPE),
    # Request churn for pools, regions and arenas (workloads/churn.py).
    Workload("churn", "requests of 100 temporaries totalling ~64 KiB (log-normal), all freed newest-first when the "
             "request ends; keys request_bytes, temps", {"sizes": "lognormal", "sigma": 1.0, "lifetime": "phased",
                                                         "order": "lifo", "base": "phased"}, keys=ChurnKeys),
]
CATALOG: dict[str, Workload] = {workload.name: workload for workload in _WORKLOADS}


def names() -> list[str]:
    """Workload names in catalog order."""
    return list(CATALOG)


def _workload(name: str) -> Workload:
    try:
        return CATALOG[name]
    except KeyError:
        from workloads.callgen import CALLDEPTH

        if name in CALLDEPTH:
            raise ValueError(f"'{name}' is a call-depth workload, not a heap workload: run it on the goroutine "
                             f"stack models with python -m bench stacks -w {name}") from None
        raise ValueError(f"unknown workload '{name}' (known: {', '.join(CATALOG)})") from None


def describe(name: str) -> str:
    """One line about a workload (a spec's parameters after ':' are ignored)."""
    return _workload(name.partition(":")[0].strip()).description


# --------------------------------------------------------------------------- spec parsing
def _parse_int(text: str) -> int:
    return parse_bytes(text)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(text)


def _convert(key: str, kind: Any, text: str) -> Any:
    """Parse the spec text of `key` as `kind` (int, float, bool, str, tuple[int|float, ...])."""
    described = {int: "an integer", float: "a number", bool: "true or false"}
    try:
        if kind is bool:
            return _parse_bool(text)
        if kind is int:
            return _parse_int(text)
        if kind is float:
            return float(text)
        if typing.get_origin(kind) is tuple:
            item_kind = typing.get_args(kind)[0]
            return tuple(_convert(key, item_kind, part) for part in text.split("/") if part.strip())
        return text.strip()
    except ValueError:
        raise ValueError(f"key '{key}': expected {described.get(kind, 'a value')}, got '{text}'") from None


def _parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty workload spec")
    name, _, rest = spec.partition(":")
    name = name.strip()
    _workload(name)
    given: dict[str, str] = {}
    for item in (part.strip() for part in rest.split(",")):
        if not item:
            continue
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ValueError(f"workload spec '{spec}': '{item}' is not key=value")
        if key in given:
            raise ValueError(f"workload spec '{spec}': key '{key}' given twice")
        given[key] = value.strip()
    return name, given


def _fields(cls: type) -> dict[str, Any]:
    return {item.name: item.type for item in dataclasses.fields(cls)}


def _pick(registry: dict[str, type], kind: str, key: str, merged: dict[str, Any]) -> type:
    chosen = merged.get(key, GENERIC_KEYS[key][1] if key in GENERIC_KEYS else "random")
    if chosen not in registry:
        raise ValueError(f"key '{key}': unknown {kind} '{chosen}' (known: {', '.join(registry)})")
    return registry[chosen]


@dataclass
class _Resolved:
    name: str
    params: dict[str, Any]  # flat, every parameter in force (defaults included), JSON-able
    components: dict[str, Any]


def _resolve(spec: str) -> _Resolved:
    name, given = _parse_spec(spec)
    program = CATALOG[name].program
    if program is not None:  # a program workload (workloads/programs.py): its own keys
        try:
            params, parsed = program.resolve(given, CATALOG[name].params, _convert)
        except (ValueError, TypeError) as error:
            raise ValueError(f"workload spec '{spec}': {error}") from None
        return _Resolved(name, params, {"program": parsed})
    own_keys = CATALOG[name].keys
    own_fields = _fields(own_keys) if own_keys is not None else {}
    for key in given:
        if own_keys is not None and key in own_keys.sets:
            raise ValueError(f"workload spec '{spec}': key '{key}' is set by {'/'.join(own_fields)} in {name}; "
                             "give those instead")
    merged: dict[str, Any] = dict(CATALOG[name].params)
    for key in SELECTOR_KEYS:
        if key in given:
            merged[key] = given[key]
    try:
        sizes_cls = _pick(SIZE_DISTRIBUTIONS, "size distribution", "sizes", merged)
        lifetime_cls = _pick(LIFETIME_MODELS, "lifetime model", "lifetime", merged)
        base_cls = _pick(LIFETIME_MODELS, "lifetime model", "base", merged) if lifetime_cls is LongLived else None
        if base_cls is LongLived:
            raise ValueError("key 'base': the base of longlived cannot be longlived")
        thread_cls = _pick(THREAD_MODELS, "threading", "threading", merged)
    except ValueError as error:
        raise ValueError(f"workload spec '{spec}': {error}") from None

    valid: dict[str, Any] = {key: kind for key, (kind, _) in GENERIC_KEYS.items()}
    sizes_fields = _fields(sizes_cls)
    lifetime_fields = {key: kind for key, kind in _fields(lifetime_cls).items() if key != "base"}
    base_fields = _fields(base_cls) if base_cls is not None else {}
    thread_fields = _fields(thread_cls)
    for group in (sizes_fields, lifetime_fields, base_fields, thread_fields):
        valid.update(group)
    if base_cls is not None:
        valid["base"] = str
    if sizes_cls.name == "empirical":
        valid["histogram"] = str
    valid.update(own_fields)
    for key in own_keys.sets if own_keys is not None else ():
        valid.pop(key, None)
    unknown = [key for key in given if key not in valid]
    if unknown:
        raise ValueError(
            f"workload spec '{spec}': unknown key '{unknown[0]}' for sizes={sizes_cls.name}, "
            f"lifetime={lifetime_cls.name}{f' (base={base_cls.name})' if base_cls else ''}, "
            f"threading={thread_cls.name}; valid keys: {', '.join(sorted(valid))}")
    try:
        for key, text in given.items():
            merged[key] = _convert(key, valid[key], text)
        if own_keys is not None:  # the workload's own keys decide some component parameters
            own = own_keys(**{key: merged[key] for key in own_fields if key in merged})
            merged.update(own.apply(merged))
    except ValueError as error:
        raise ValueError(f"workload spec '{spec}': {error}") from None

    params = {key: merged.get(key, default) for key, (_, default) in GENERIC_KEYS.items()}
    for group in (sizes_fields, lifetime_fields, base_fields, thread_fields):
        params.update({key: merged[key] for key in group if key in merged})
    if base_cls is not None:
        params["base"] = base_cls.name
    if "histogram" in merged and sizes_cls.name == "empirical":
        params["histogram"] = merged["histogram"]

    def build(cls: type, fields: dict[str, Any]) -> Any:
        return cls(**{key: params[key] for key in fields if key in params})

    try:
        if "histogram" in params:
            sizes = load_histogram(params["histogram"], max_size=params.get("max_size", sizes_cls().max_size))
        else:
            sizes = build(sizes_cls, sizes_fields)
        if base_cls is not None:
            lifetime = lifetime_cls(**{key: params[key] for key in lifetime_fields if key in params},
                                    base=build(base_cls, base_fields))
        else:
            lifetime = build(lifetime_cls, lifetime_fields)
        threads = build(thread_cls, thread_fields)
        access = Access(touch=params["touch"], scan_every=params["scan_every"], scan_count=params["scan_count"],
                        scan_bytes=params["scan_bytes"])
        if not 0.0 <= params["realloc"] < 1.0:
            raise ValueError(f"realloc must be in [0, 1) (got {params['realloc']})")
    except (ValueError, TypeError, OSError) as error:
        raise ValueError(f"workload spec '{spec}': {error}") from None
    components = {"sizes": sizes, "lifetime": lifetime, "threads": threads, "access": access}
    # Report every parameter in force, defaults included, as the components hold them.
    resolved = {key: params[key] for key in GENERIC_KEYS}
    if resolved["faults"] == "none":  # an ordinary workload: its meta as before fault workloads existed
        del resolved["faults"], resolved["fault_rate"]
    resolved["threading"] = threads.name
    for part in (sizes, lifetime, threads):
        described = part.params()
        described.pop("name")
        nested_base = described.pop("base", None)
        resolved.update(described)
        if nested_base is not None:
            resolved["base"] = nested_base.pop("name")
            resolved.update(nested_base)
    if "histogram" in params:
        resolved["histogram"] = params["histogram"]
    if own_keys is not None:
        resolved.update(dataclasses.asdict(own))
    return _Resolved(name, resolved, components)


def parameters(spec: str) -> dict[str, Any]:
    """Every flat parameter in force for a spec (what `make` uses, defaults included), JSON-able."""
    return dict(_resolve(spec).params)


def _arguments(spec: str, n_ops: int, seed: int) -> dict[str, Any]:
    """The generator arguments of a workload spec."""
    resolved = _resolve(spec)
    parts = resolved.components
    return {"sizes": parts["sizes"], "lifetime": parts["lifetime"], "threads": parts["threads"], "n_ops": n_ops,
            "seed": seed, "access": parts["access"], "realloc_fraction": resolved.params["realloc"],
            "drain": resolved.params["drain"],
            "extra_meta": {"workload": resolved.name, "spec": spec, "params": resolved.params}}


def make(spec: str, n_ops: int = DEFAULT_N_OPS, seed: int = 0) -> Trace:
    """Generate the trace of a workload spec (`name` or `name:key=value,...`); bad specs raise ValueError, and so
    does a trace too long to hold in this machine's memory (`labcore.memory.NotEnoughMemory`)."""
    resolved = _resolve(spec)
    if "program" in resolved.components:
        return _program_call(resolved, spec, n_ops, seed, "make")
    arguments = _arguments(spec, n_ops, seed)
    check_rows_fit(int(n_ops), f"generating {spec}",
                   "generate it chunk by chunk into a trace directory (trace gen -o DIR/), or give a smaller --ops")
    trace = generate(**arguments)
    params = arguments["extra_meta"]["params"]
    if params.get("faults", "none") == "none":
        return trace
    from workloads.faults import inject, mix_spec, parse_faults

    rate = max(float(params["fault_rate"]), 1.0 / max(len(trace), 1))
    try:
        return inject(trace, parse_faults(mix_spec(params["faults"], min(rate, 1.0))), seed, strict=False)
    except ValueError as error:
        raise ValueError(f"workload spec '{spec}': {error}") from None


def make_chunks(spec: str, n_ops: int = DEFAULT_N_OPS, seed: int = 0,
                chunk_rows: int = DEFAULT_CHUNK_ROWS) -> GeneratedChunks:
    """`make(spec, n_ops, seed)`'s trace in chunks of at most `chunk_rows` rows, generated in bounded memory.
    A fault workload (`faults=MIX`) is not: its fault table needs the whole trace (ValueError); a program
    workload streams if it can (the classics, workloads/classics/) and is otherwise generated in memory and
    handed out in chunks (`goescape`).

    The result has `meta` (that of `make`) and is iterated once for
    (op, obj, size, thread) chunks (`workloads.generator.generate_chunks`).
    """
    resolved = _resolve(spec)
    if "program" in resolved.components:
        return _program_call(resolved, spec, n_ops, seed, "make_chunks", chunk_rows)
    arguments = _arguments(spec, n_ops, seed)
    if arguments["extra_meta"]["params"].get("faults", "none") != "none":
        raise ValueError(f"workload spec '{spec}': a fault workload is generated in memory (its fault table needs "
                         "the whole trace); give fewer rows")
    return generate_chunks(**arguments, chunk_rows=chunk_rows)


def program(spec: str, n_ops: int = DEFAULT_N_OPS, seed: int = 0) -> Any:
    """A program workload's run beyond its heap trace (`workloads.escape.Program`: the heap trace, which `make`
    returns, and its frame table and sites); ValueError for a spec whose workload has no such run."""
    resolved = _resolve(spec)
    if not hasattr(CATALOG[resolved.name].program, "run"):
        raise ValueError(f"workload spec '{spec}': not a program workload with a run of its own (known: "
                         f"{', '.join(name for name, item in CATALOG.items() if hasattr(item.program, 'run'))})")
    return _program_call(resolved, spec, n_ops, seed, "run")


def _program_call(resolved: _Resolved, spec: str, n_ops: int, seed: int, method: str, *extra: Any) -> Any:
    """A program workload's `make`, `make_chunks` or `run` (workloads/programs.py), with the catalog's meta keys;
    `make` and `run` first check that the rows fit in memory."""
    program_model = CATALOG[resolved.name].program
    parsed = resolved.components["program"]
    meta = {"workload": resolved.name, "spec": spec, "params": resolved.params}
    try:
        if method != "make_chunks":
            check_rows_fit(program_model.rows(parsed, n_ops), f"generating {spec}", "give a smaller --ops")
        return getattr(program_model, method)(parsed, n_ops, seed, meta, *extra)
    except ValueError as error:
        if str(error).startswith(f"workload spec '{spec}'") or type(error) is not ValueError:
            raise
        raise ValueError(f"workload spec '{spec}': {error}") from None


def benchmark_trace(n_ops: int = 1_000_000, seed: int = 0) -> Trace:
    """The allocator throughput benchmark trace: log-normal sizes, random lifetimes (the `lognormal` workload)."""
    return make("lognormal", n_ops=n_ops, seed=seed)
