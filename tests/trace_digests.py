"""Digests of generated traces, to prove that a change to the generators changes no trace.

`python -m tests.trace_digests` rewrites tests/data/trace_digests.json from the current generators
(do that only when a change to the traces is intended, and refresh the CI baseline in the same commit);
tests/test_generator_digests.py checks the generators against it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from workloads import catalog

PATH = Path(__file__).resolve().parent / "data" / "trace_digests.json"
EXTRA_SPECS = (
    "lognormal:lifetime=exponential,threads=3",
    "lognormal:lifetime=lifo,threads=5",
    "lognormal:lifetime=fifo,threads=2,touch=true",
    "bimodal:lifetime=longlived,base=exponential",
    "adversarial:lifetime=longlived,base=lifo,threads=2",
    "uniform:threading=producer-consumer,producers=3,consumers=2,lifetime=random",
    "phased:order=random,threads=2",
    "phased:order=lifo,touch=true,scan_every=100,scan_count=8",
    "empirical:lifetime=exponential,mean_lifetime=50,realloc=0.2",
    "pareto:realloc=0.3,scan_every=7,scan_count=3,scan_bytes=16,threads=2",
    "exponential:lifetime=fifo,drain=false",
    "fixed:lifetime=random,live=3,threads=7,realloc=0.05,touch=true",
    "lognormal:lifetime=longlived,long_fraction=1.0",
    "lognormal:lifetime=longlived,base=phased,batch=50",
    "lognormal:threading=producer-consumer,producers=1,consumers=1,lifetime=lifo",
    "uniform:threads=3,lifetime=phased,order=halves,batch=7",
    "bimodal:spread=0,threads=2,lifetime=fifo,live=40",
    "lognormal:scan_every=3,scan_count=500,live=20",
    "churn:temps=10,request_bytes=4KiB,threads=2,order=random",
    "churn:temps=7,lifetime=longlived,long_fraction=0.1,touch=true",
)
SIZES = (0, 1, 2, 3, 17, 1000, 30_000)
SEEDS = (0, 5)


def specs() -> list[str]:
    return list(catalog.names()) + list(EXTRA_SPECS)


def generator_specs() -> list[str]:
    """The specs made by `workloads.generator` (sizes x lifetimes x threads): all but the program workloads
    (`goescape`, the classics: workloads/programs.py), which have a generator of their own."""
    return [spec for spec in specs() if catalog.CATALOG[spec.partition(":")[0]].program is None]


def stream_specs() -> list[str]:
    """The specs `catalog.make_chunks` generates: all but the fault workloads (their table needs the whole trace)."""
    return [spec for spec in specs() if catalog.parameters(spec).get("faults", "none") == "none"]


def digest(trace) -> str:
    hasher = hashlib.sha256()
    for column in ("op", "obj", "size", "thread"):
        array = np.ascontiguousarray(getattr(trace, column))
        hasher.update(column.encode() + str(array.dtype).encode() + array.tobytes())
    hasher.update(json.dumps(trace.meta, sort_keys=True).encode())
    return hasher.hexdigest()[:24]


def key(spec: str, n_ops: int, seed: int) -> str:
    return f"{spec}|{n_ops}|{seed}"


def compute() -> dict[str, str]:
    return {key(spec, n_ops, seed): digest(catalog.make(spec, n_ops=n_ops, seed=seed))
            for spec in specs() for n_ops in SIZES for seed in SEEDS}


if __name__ == "__main__":
    PATH.write_text(json.dumps(compute(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {PATH}")
