"""Size distributions: how many bytes each allocation asks for.

A size distribution is a small frozen dataclass whose fields are its
parameters.  `sample(rng, count)` draws `count` request sizes from a
`numpy.random.Generator` in vectorized calls and returns an int64 array;
every size is at least 1 and at most the distribution's `max_size` (default
`DEFAULT_MAX_SIZE` = 1 MiB, so every allocator model can replay the trace).
Continuous draws are turned into whole bytes as documented per class and
then clipped into `[1, max_size]`, so a heavy tail piles up at `max_size`
instead of growing without bound.

A distribution is written as its draws and a transformation: `parts()` lists
the bulk calls `sample(rng, count)` makes, in order, each drawing `count`
values (`workloads.substreams.Part`; e.g. bimodal: `count` uniforms, then
`count` normals), and `combine(values, count)` turns them into sizes, value i
of every part giving size i.  So `sample` is `combine` of the parts drawn one
after the other, and `SizeStream` gives the same sizes in chunks: one
`Reader` per part, part k starting where the bulk call would (after k * n
doubles for uniform parts, so a distribution with several parts needs the
total count n up front).

`params()` gives the JSON-able description recorded in a trace's meta:
`{"name": ..., field: value, ...}`.  `SIZE_DISTRIBUTIONS` maps each name to
its class (the catalog builds distributions from it).

Field names are unique across size distributions and lifetime models, so a
catalog spec can name any parameter with a flat `key=value`.
"""

import csv
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workloads.substreams import DOUBLE, Part, Reader, State, skip
from workloads.trace import MAX_REQUEST_SIZE

#: Default cap on a request: 1 MiB (sizes above are clipped to it).
DEFAULT_MAX_SIZE = 1 << 20


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _clip_to_bytes(values: np.ndarray, max_size: int) -> np.ndarray:
    """Float sizes (already rounded as wanted, possibly inf) -> int64 in [1, max_size]."""
    return np.clip(np.minimum(values, float(max_size)), 1.0, None).astype(np.int64)


def json_value(value: Any) -> Any:
    """Turn dataclass field values (tuples, numpy scalars, nested components) into JSON-able values."""
    if hasattr(value, "params") and callable(value.params):
        return value.params()
    if isinstance(value, tuple | list):
        return [json_value(item) for item in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


class SizeDistribution:
    """Base class: subclasses are frozen dataclasses with a `name` and `sample()`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    max_size: int

    def parts(self) -> list[Part]:
        """The bulk draws of `sample(rng, count)`, in order, `count` values each."""
        raise NotImplementedError

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        """Sizes (int64) from the values drawn by each part."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return self.combine([part.draw(rng, count) for part in self.parts()], count)

    def params(self) -> dict[str, Any]:
        described: dict[str, Any] = {"name": self.name}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            described[item.name] = json_value(getattr(self, item.name))
        return described

    def _check_max(self) -> None:
        _check(isinstance(self.max_size, int) and 1 <= self.max_size <= MAX_REQUEST_SIZE,
               f"max_size must be an integer in 1..{MAX_REQUEST_SIZE} (got {self.max_size})")


@dataclass(frozen=True)
class Fixed(SizeDistribution):
    """Every request has the same size."""

    name: ClassVar[str] = "fixed"
    summary: ClassVar[str] = "every request is `size` bytes"
    size: int = 64
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        self._check_max()
        _check(1 <= self.size <= self.max_size, f"size must be in 1..max_size={self.max_size} (got {self.size})")

    def parts(self) -> list[Part]:
        return []

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        return np.full(count, self.size, np.int64)


@dataclass(frozen=True)
class Uniform(SizeDistribution):
    """Uniform integer sizes in [lo, hi], both ends included."""

    name: ClassVar[str] = "uniform"
    summary: ClassVar[str] = "uniform integer sizes in [lo, hi]"
    lo: int = 8
    hi: int = 1000
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        self._check_max()
        _check(1 <= self.lo, f"lo must be >= 1 (got {self.lo})")
        _check(self.lo <= self.hi <= self.max_size,
               f"hi must be in lo={self.lo}..max_size={self.max_size} (got {self.hi})")

    def parts(self) -> list[Part]:
        lo, hi = self.lo, self.hi
        return [Part(lambda generator, count: generator.integers(lo, hi + 1, size=count, dtype=np.int64))]

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        return values[0]


@dataclass(frozen=True)
class LogNormal(SizeDistribution):
    """floor(exp(N(mu, sigma))) + 1 bytes: median about e^mu, mean about e^(mu + sigma^2/2) + 0.5."""

    name: ClassVar[str] = "lognormal"
    summary: ClassVar[str] = "floor(exp(N(mu, sigma))) + 1 bytes"
    mu: float = 4.0
    sigma: float = 1.0
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        self._check_max()
        _check(math.isfinite(self.mu) and -10 <= self.mu <= 40, f"mu must be a number in -10..40 (got {self.mu})")
        _check(math.isfinite(self.sigma) and 0 <= self.sigma <= 10, f"sigma must be in 0..10 (got {self.sigma})")

    def parts(self) -> list[Part]:
        mu, sigma = self.mu, self.sigma
        return [Part(lambda generator, count: generator.lognormal(mu, sigma, count))]

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        return _clip_to_bytes(np.floor(values[0]) + 1.0, self.max_size)


@dataclass(frozen=True)
class Pareto(SizeDistribution):
    """Power law: floor(minimum * X) with X classical Pareto(alpha), X >= 1, so P(size > s) ~ (minimum/s)^alpha."""

    name: ClassVar[str] = "pareto"
    summary: ClassVar[str] = "power law from `minimum` bytes with tail exponent alpha"
    alpha: float = 1.2
    minimum: int = 16
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        self._check_max()
        _check(math.isfinite(self.alpha) and 0.1 <= self.alpha <= 100, f"alpha must be in 0.1..100 (got {self.alpha})")
        _check(1 <= self.minimum <= self.max_size,
               f"minimum must be in 1..max_size={self.max_size} (got {self.minimum})")

    def parts(self) -> list[Part]:
        alpha = self.alpha
        return [Part(lambda generator, count: generator.pareto(alpha, count))]

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        # numpy's pareto() is the Lomax form (X - 1); add 1 for the classical Pareto.
        return _clip_to_bytes(np.floor(self.minimum * (1.0 + values[0])), self.max_size)


@dataclass(frozen=True)
class Bimodal(SizeDistribution):
    """Two modes: `small` or (with probability `large_fraction`) `large`, each spread log-normally.

    A draw is round(mode * exp(spread * N(0, 1))): `spread` = 0 gives exactly
    the two sizes, 0.1 gives about +-10 % around each mode.
    """

    name: ClassVar[str] = "bimodal"
    summary: ClassVar[str] = "`small` or, with probability large_fraction, `large` bytes (log-normal spread)"
    small: int = 32
    large: int = 4096
    large_fraction: float = 0.1
    spread: float = 0.1
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        self._check_max()
        _check(1 <= self.small <= self.max_size, f"small must be in 1..max_size={self.max_size} (got {self.small})")
        _check(1 <= self.large <= self.max_size, f"large must be in 1..max_size={self.max_size} (got {self.large})")
        _check(0.0 <= self.large_fraction <= 1.0, f"large_fraction must be in 0..1 (got {self.large_fraction})")
        _check(0.0 <= self.spread <= 5.0, f"spread must be in 0..5 (got {self.spread})")

    def parts(self) -> list[Part]:
        normals = Part(lambda generator, count: generator.standard_normal(count))
        return [DOUBLE, normals] if self.spread > 0 else [DOUBLE]

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        is_large = values[0] < self.large_fraction
        modes = np.where(is_large, float(self.large), float(self.small))
        if self.spread > 0:
            modes = modes * np.exp(self.spread * values[1])
        return _clip_to_bytes(np.rint(modes), self.max_size)


@dataclass(frozen=True)
class Exponential(SizeDistribution):
    """ceil(Exp(mean)) bytes: mean about `mean` + 0.5, many small requests, a thin tail."""

    name: ClassVar[str] = "exponential"
    summary: ClassVar[str] = "ceil(Exp(mean)) bytes"
    mean: float = 256.0
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        self._check_max()
        _check(math.isfinite(self.mean) and 0 < self.mean <= self.max_size,
               f"mean must be in (0, max_size={self.max_size}] (got {self.mean})")

    def parts(self) -> list[Part]:
        mean = self.mean
        return [Part(lambda generator, count: generator.exponential(mean, count))]

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        return _clip_to_bytes(np.ceil(values[0]), self.max_size)


@dataclass(frozen=True)
class Adversarial(SizeDistribution):
    """Sizes one byte above common size-class boundaries, so class-based allocators waste the most.

    Two boundary sets, chosen with probability `pow2_fraction` / 1 - `pow2_fraction`,
    each drawn uniformly from its set:
    - powers of two plus one: 2^k + 1 for k in min_exp..max_exp (a buddy or
      power-of-two class allocator grants 2^(k+1): ~50 % waste);
    - granule multiples plus one: granule*j + 1 up to `granule_limit` (a
      16 B-granular allocator rounds 17 to 32, 33 to 48, ...).
    """

    name: ClassVar[str] = "adversarial"
    summary: ClassVar[str] = "2^k+1 and 16*j+1 sizes, just above size-class boundaries"
    min_exp: int = 3
    max_exp: int = 16
    granule: int = 16
    granule_limit: int = 1024
    pow2_fraction: float = 0.5
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        self._check_max()
        _check(0 <= self.min_exp <= self.max_exp, f"max_exp must be >= min_exp={self.min_exp} (got {self.max_exp})")
        _check(0 <= self.min_exp, f"min_exp must be >= 0 (got {self.min_exp})")
        _check((1 << self.max_exp) + 1 <= self.max_size,
               f"max_exp={self.max_exp}: 2^max_exp + 1 must be <= max_size={self.max_size}")
        _check(1 <= self.granule, f"granule must be >= 1 (got {self.granule})")
        _check(self.granule + 1 <= self.granule_limit <= self.max_size,
               f"granule_limit must be in granule+1..max_size={self.max_size} (got {self.granule_limit})")
        _check(0.0 <= self.pow2_fraction <= 1.0, f"pow2_fraction must be in 0..1 (got {self.pow2_fraction})")

    def boundaries(self) -> tuple[np.ndarray, np.ndarray]:
        """The two candidate sets: (2^k + 1, granule*j + 1)."""
        powers = (np.int64(1) << np.arange(self.min_exp, self.max_exp + 1, dtype=np.int64)) + 1
        multiples = np.arange(self.granule, self.granule_limit, self.granule, dtype=np.int64) + 1
        return powers, multiples

    def parts(self) -> list[Part]:
        return [DOUBLE, DOUBLE]  # which set, then which member

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        powers, multiples = self.boundaries()
        use_power = values[0] < self.pow2_fraction
        pick = values[1]
        from_powers = powers[(pick * powers.size).astype(np.int64)]
        from_multiples = multiples[(pick * multiples.size).astype(np.int64)]
        return np.where(use_power, from_powers, from_multiples)


#: An illustrative small-object histogram (size: weight), not measured from a program.
DEFAULT_HISTOGRAM = ((16, 30), (24, 10), (32, 20), (48, 8), (64, 10), (96, 4), (128, 6), (256, 5), (512, 3),
                     (1024, 2), (4096, 1.5), (65536, 0.5))


@dataclass(frozen=True)
class Empirical(SizeDistribution):
    """An empirical histogram: size `values[i]` with probability weights[i] / sum(weights)."""

    name: ClassVar[str] = "empirical"
    summary: ClassVar[str] = "sizes drawn from a histogram (values, weights)"
    values: tuple[int, ...] = tuple(size for size, _ in DEFAULT_HISTOGRAM)
    weights: tuple[float, ...] = tuple(float(weight) for _, weight in DEFAULT_HISTOGRAM)
    max_size: int = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        self._check_max()
        object.__setattr__(self, "values", tuple(int(value) for value in self.values))
        object.__setattr__(self, "weights", tuple(float(weight) for weight in self.weights))
        _check(len(self.values) >= 1, "values must name at least one size")
        _check(len(self.values) == len(self.weights),
               f"values and weights must have the same length (got {len(self.values)} and {len(self.weights)})")
        _check(all(1 <= value <= self.max_size for value in self.values),
               f"values must be in 1..max_size={self.max_size}")
        _check(all(math.isfinite(weight) and weight >= 0 for weight in self.weights), "weights must be >= 0")
        _check(sum(self.weights) > 0, "weights must not all be 0")

    def parts(self) -> list[Part]:
        return [DOUBLE]

    def combine(self, values: list[np.ndarray], count: int) -> np.ndarray:
        cumulative = np.cumsum(np.asarray(self.weights, np.float64))
        index = np.searchsorted(cumulative, values[0] * cumulative[-1], side="right")
        return np.asarray(self.values, np.int64)[np.minimum(index, len(self.values) - 1)]


def load_histogram(path: str | Path, max_size: int = DEFAULT_MAX_SIZE) -> Empirical:
    """Read an `Empirical` from a CSV of `size,weight` rows (a header line and `#` comments are skipped)."""
    values: list[int] = []
    weights: list[float] = []
    with open(path, newline="") as source:
        for line_number, row in enumerate(csv.reader(source), start=1):
            if not row or row[0].strip().startswith("#"):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}: line {line_number}: expected 'size,weight', got {len(row)} fields")
            try:
                size, weight = int(row[0]), float(row[1])
            except ValueError:
                if line_number == 1:
                    continue  # header
                raise ValueError(f"{path}: line {line_number}: size must be an integer and weight a number") from None
            values.append(size)
            weights.append(weight)
    return Empirical(values=tuple(values), weights=tuple(weights), max_size=max_size)


class SizeStream:
    """`sizes.sample(rng, total)` from the Generator state `start`, read in chunks: `read(count)`, then `end()`.

    `total` (the number of sizes the bulk call drew) is needed up front only
    when the distribution has several parts; `end()` needs it always.
    """

    def __init__(self, sizes: SizeDistribution, start: State, total: int | None = None) -> None:
        self.sizes, self.start, self.total = sizes, start, total
        parts = sizes.parts()
        starts = [start] * min(len(parts), 1)
        for part in parts[:-1]:
            assert total is not None, "a size distribution with several parts needs the total count"
            starts.append(skip(starts[-1], part, total))
        self.readers = [Reader(part, at) for part, at in zip(parts, starts, strict=True)]

    def read(self, count: int) -> np.ndarray:
        return self.sizes.combine([reader.read(count) for reader in self.readers], count)

    def end(self, total: int | None = None) -> State:
        """The state after all `total` sizes (dry-drawing those not read)."""
        total = self.total if total is None else total
        assert total is not None
        return self.readers[-1].end(total) if self.readers else self.start


SIZE_DISTRIBUTIONS: dict[str, type[SizeDistribution]] = {
    cls.name: cls for cls in (Fixed, Uniform, LogNormal, Pareto, Bimodal, Exponential, Adversarial, Empirical)
}
