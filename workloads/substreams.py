"""Random sub-streams: one numpy Generator's draws, read in pieces and out of order.

The in-memory generator draws everything from one `Generator(PCG64(seed))`
in a fixed order of bulk calls ("S doubles for the step uniforms, then S
doubles for the picks, then one size per object, ...").  Each bulk call is a
*sub-stream*.  Streaming generation needs many of them at once (row r uses
step[r], pick[r] and, later, the size of the object it allocates), so every
sub-stream gets its own Generator, positioned where the bulk call would have
started, and is read chunk by chunk:

- Consecutive calls on one Generator give exactly the bulk call's values and
  end in the same state for `random`, `standard_normal`, `lognormal`,
  `pareto`, `exponential` and `integers` with int32/int64 (the 32-bit draws
  share the bit generator's persistent `has_uint32` buffer, which is part of
  `bit_generator.state`).  So a `Reader` at a sub-stream's start reproduces
  it in any chunking.
- Where a sub-stream starts follows from the previous one's consumption.
  A `Part` says how a call consumes: `DOUBLE` parts (`random()`) take exactly
  one uint64 per value, so the end is `advanced(start, count)` (PCG64's
  jump-ahead; it clears the 32-bit buffer, which doubles never touch, so
  `advanced` restores it).  Other parts (ziggurat normals and exponentials,
  Lemire's bounded integers) consume a variable number of words: their end is
  found by a *dry pass* (`skip`): draw in chunks of `DRY_ROWS`, discard.
- `integers(..., dtype=int16)` cannot be read in pieces (its 16-bit buffer
  lives inside one call), so `LabelStream` emulates it: the uint16 draws are
  the bit generator's raw words viewed as uint16 (after the two halves of a
  buffered uint32, if any), each label is Lemire's method on them
  (`_labels_kernel`), and the state after j uint16 draws is computed from j:
  ceil(j/2) 32-bit draws, so ceil(ceil(j/2)/2) raw words, with the buffer
  flag set when ceil(j/2) is odd.

States are the plain dicts of `bit_generator.state`; nothing here keeps more
than one chunk of draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from labcore.jitcache import holds_kernels

holds_kernels(__file__)

State = dict
#: Values drawn per call by a dry pass (bounded memory, few calls).
DRY_ROWS = 1 << 16


def fresh_state(seed: int) -> State:
    return np.random.PCG64(seed).state


def generator_at(state: State) -> np.random.Generator:
    bit_generator = np.random.PCG64(0)
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def advanced(state: State, words: int) -> State:
    """The state after `words` uint64 draws that leave the 32-bit buffer alone (doubles)."""
    if words == 0:
        return state
    bit_generator = np.random.PCG64(0)
    bit_generator.state = state
    bit_generator.advance(int(words))
    moved = bit_generator.state
    moved["has_uint32"], moved["uinteger"] = state["has_uint32"], state["uinteger"]
    return moved


@dataclass(frozen=True)
class Part:
    """How one bulk call draws `count` values: `draw(generator, count)`; `double` = one uint64 per value."""

    draw: Callable[[np.random.Generator, int], np.ndarray]
    double: bool = False


DOUBLE = Part(lambda generator, count: generator.random(count), double=True)


def skip(state: State, part: Part, count: int) -> State:
    """The state after `count` values of `part` drawn from `state`."""
    if part.double:
        return advanced(state, count)
    generator = generator_at(state)
    for start in range(0, count, DRY_ROWS):
        part.draw(generator, min(DRY_ROWS, count - start))
    return generator.bit_generator.state


def lay_out(state: State, parts: list[tuple[Part, int]]) -> tuple[list[State], State]:
    """Start states of consecutive bulk calls (part, count) from `state`, and the state after the last."""
    starts = []
    for part, count in parts:
        starts.append(state)
        state = skip(state, part, count)
    return starts, state


class Reader:
    """A sub-stream read from its start in pieces: `read(count)` gives the next `count` values."""

    def __init__(self, part: Part, start: State) -> None:
        self.part = part
        self.start = start
        self.generator = generator_at(start)
        self.consumed = 0

    def read(self, count: int) -> np.ndarray:
        self.consumed += count
        return self.part.draw(self.generator, count)

    def end(self, total: int) -> State:
        """The state after the sub-stream's `total` values (a dry pass over the ones not read yet)."""
        if self.part.double:
            return advanced(self.start, total)
        remaining = total - self.consumed
        assert remaining >= 0, "read past the end of a sub-stream"
        for start in range(0, remaining, DRY_ROWS):
            self.read(min(DRY_ROWS, remaining - start))
        return self.generator.bit_generator.state


# --------------------------------------------------------------------------- int16 labels
@njit(cache=True)
def _labels_kernel(u16, pos, n_labels, bound, out):
    """numpy's Lemire method for `integers(0, bound, dtype=int16)` on the uint16 draws `u16[pos:]`.

    Writes up to `n_labels` labels; stops early (before a label) when the
    draws run out.  Returns (labels written, position after them).
    """
    threshold = (65536 - bound) % bound
    end = u16.shape[0]
    done = 0
    while done < n_labels:
        at = pos
        if at >= end:
            break
        product = np.int64(u16[at]) * bound
        at += 1
        leftover = product & 0xFFFF
        complete = True
        if leftover < bound:
            while leftover < threshold:
                if at >= end:
                    complete = False
                    break
                product = np.int64(u16[at]) * bound
                at += 1
                leftover = product & 0xFFFF
        if not complete:
            break
        out[done] = product >> 16
        done += 1
        pos = at
    return done, pos


class LabelStream:
    """`Generator.integers(0, bound, size=n, dtype=np.int16)` from `start`, read in pieces (as int32)."""

    def __init__(self, start: State, bound: int) -> None:
        self.start = start
        self.bound = int(bound)
        self.bit_generator = np.random.PCG64(0)
        self.bit_generator.state = {**start, "has_uint32": 0}
        if start["has_uint32"]:  # the buffered 32 bits come first, low half first
            held = int(start["uinteger"])
            self.u16 = np.array([held & 0xFFFF, held >> 16], np.uint16)
        else:
            self.u16 = np.empty(0, np.uint16)
        self.pos = 0
        self.used = 0  # uint16 draws consumed by the labels read so far

    def read(self, count: int) -> np.ndarray:
        out = np.empty(count, np.int32)
        done = 0
        while done < count:
            written, self.pos = _labels_kernel(self.u16, self.pos, count - done, self.bound, out[done:])
            done += written
            if done < count:
                words = self.bit_generator.random_raw((count - done) // 4 + 16)
                self.used += self.pos
                self.u16 = np.concatenate([self.u16[self.pos:], words.view(np.uint16)])
                self.pos = 0
        return out

    def end(self) -> State:
        """The state of the Generator after the labels read so far."""
        used = self.used + self.pos
        calls = (used + 1) // 2  # 32-bit draws
        start = self.start
        if calls == 0:
            return start
        if start["has_uint32"]:
            calls -= 1  # the buffered half came first
            if calls == 0:
                return {**start, "has_uint32": 0}
        words = (calls + 1) // 2
        state = advanced({**start, "has_uint32": 0}, words - 1)
        last = generator_at(state).bit_generator.random_raw(1)
        bit_generator = np.random.PCG64(0)
        bit_generator.state = state
        bit_generator.advance(1)
        end = bit_generator.state
        end["has_uint32"] = calls % 2
        end["uinteger"] = int(last[0]) >> 32
        return end
