"""churn: request churn, batches of temporaries allocated per request and freed when the request ends.

What it models.  A server handles requests one after another; each request
allocates `temps` temporary objects (buffers, decoded fields, intermediate
slices) totalling about `request_bytes`, uses them, and drops them all when
the request ends.  This is the load that object pools (`sync.Pool`), regions
and Go's arena experiment are meant for: many short-lived objects whose death
is known in batches (seed-notes, "methods of reducing allocations").

Design.  The workload is a composition of the generator's existing parts, so
it streams, validates and replays like every catalog workload:

- sizes: log-normal (`sigma`, default 1) with its mean set to
  request_bytes / temps, i.e. mu = ln(request_bytes / temps - 0.5) -
  sigma^2 / 2 (the sizes are floor(exp(N(mu, sigma))) + 1), so the
  temporaries of one request total request_bytes *on average* (a request's
  total varies by about sigma / sqrt(temps) relative; sizes are capped at
  `max_size`, 1 MiB, which trims the mean a little for few large temporaries);
- lifetime: `phased` with batch = temps: each thread allocates the `temps`
  objects of one request, then frees all of them, in `order` (`lifo`, the
  default: reverse order, as deferred cleanups unwind; `fifo`, `random`,
  `halves`), then the next request; `lifetime=longlived,long_fraction=F`
  keeps a fraction F of the objects alive to the end (state that outlives its
  request: caches, sessions), the rest follow the requests (base `phased`);
- threads: `threads=T` runs T independent request streams, randomly
  interleaved row by row (T requests in flight at once); frees are local;
- use: `touch=true` adds an ACCESS row (the whole object) after each ALLOC.
  Off by default: ACCESS rows do not change what the allocators do, and
  they would count as rows in the replay speed.

The two churn keys, `request_bytes` (default 64 KiB) and `temps` (default
100), are resolved into the components' `mu` and `batch` (`ChurnKeys.apply`)
before the catalog builds them, so `mu` and `batch` cannot be given beside
them, and the size model must stay log-normal and the request lifetime
phased.  The trace's meta records both keys with every component parameter.

Costs.  Those of the generator's phased lifetime: O(1) per row, memory O(temps
x threads) for the requests in flight.

State: none of its own; `ChurnKeys` is the validated pair of keys.
"""

import math
from dataclasses import dataclass
from typing import Any, ClassVar

#: Defaults of the churn keys: a 64 KiB request of 100 temporaries (mean ~655 B each).
DEFAULT_REQUEST_BYTES = 64 << 10
DEFAULT_TEMPS = 100
MAX_TEMPS = 1 << 20
#: Requests up to 1 GiB; a temporary must average at least 2 B (the smallest log-normal size is 1 B).
MAX_REQUEST_BYTES = 1 << 30
MIN_MEAN_TEMP_BYTES = 2


@dataclass(frozen=True)
class ChurnKeys:
    """The churn workload's own keys; `apply` turns them into the size and lifetime components' parameters."""

    #: component parameters these keys decide (a spec may not give them too)
    sets: ClassVar[tuple[str, ...]] = ("mu", "batch")
    request_bytes: int = DEFAULT_REQUEST_BYTES
    temps: int = DEFAULT_TEMPS

    def __post_init__(self) -> None:
        if isinstance(self.temps, bool) or not isinstance(self.temps, int) or not 1 <= self.temps <= MAX_TEMPS:
            raise ValueError(f"temps must be an integer in 1..{MAX_TEMPS} (got {self.temps})")
        low = MIN_MEAN_TEMP_BYTES * self.temps
        if (isinstance(self.request_bytes, bool) or not isinstance(self.request_bytes, int)
                or not low <= self.request_bytes <= MAX_REQUEST_BYTES):
            raise ValueError(f"request_bytes must be an integer in {low}..{MAX_REQUEST_BYTES} "
                             f"({MIN_MEAN_TEMP_BYTES} B per temporary; got {self.request_bytes})")

    @property
    def mean_temp_bytes(self) -> float:
        return self.request_bytes / self.temps

    def apply(self, merged: dict[str, Any]) -> dict[str, Any]:
        """The component parameters (`mu`, `batch`) for the workload's other parameters in force (`merged`)."""
        if merged.get("sizes") != "lognormal":
            raise ValueError(f"churn sizes must stay lognormal (request_bytes sets its mean), got "
                             f"'{merged.get('sizes')}'")
        lifetime = merged.get("lifetime")
        batch_holder = merged.get("base") if lifetime == "longlived" else lifetime
        if batch_holder != "phased":
            raise ValueError("churn requests are a phased lifetime (lifetime=phased, or lifetime=longlived with "
                             f"base=phased), got lifetime={lifetime}" + (f", base={batch_holder}"
                                                                           if lifetime == "longlived" else ""))
        sigma = float(merged.get("sigma", 1.0))
        mu = math.log(self.mean_temp_bytes - 0.5) - sigma * sigma / 2.0
        return {"mu": mu, "batch": self.temps}
