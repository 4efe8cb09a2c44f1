"""What every classic's kernel is made of (numba, cache=True): registers, rows, draws, the holding table, the drain.

A classic is a *step machine* (workloads/classics/machine.py runs it): its
kernel performs steps, each one small piece of one simulated thread's work
(allocate an object and write it, free one, hand a batch over, ...), until
it must pause, and keeps everything it needs to go on in arrays, so a later
call resumes exactly where it stopped.  That is what lets a classic stream:
where the kernel pauses (a full output buffer, used-up uniforms) changes
nothing in the rows it writes.

Registers (`reg`, int64), shared by every classic; a classic's own start at
`OWN`:

| register | meaning |
|---|---|
| `AT` | rows written into the current output buffer |
| `DRAW` | the next uniform of the draw buffer to read |
| `ROWS` | rows of the trace so far |
| `LIVE` | objects live |
| `NEXT_ID` | the id the next ALLOC takes (ids in allocation order) |
| `N_OPS` | the trace's row budget |
| `DRAINED` | the holding-table cell the drain has reached |

A kernel returns a status: `FULL` (the buffer holds `stop_at` rows or
more), `NEED_DRAWS` (fewer than `MAX_DRAWS` uniforms left), `DRAIN` (the
next step does not fit the budget) or, from `drain`, `DONE`.  `pause` is the
check at the top of every step.

Budget.  Before it writes anything, a step (or each part of one: `put`,
`drop`) asks `fits(reg, rows, live_change)`: do its rows, plus one FREE for
every object live after it, still fit `n_ops`?  No step writes more than
`MAX_STEP_ROWS` rows, and no check has rows + live_change above 3, so a
refused one leaves at most two rows of the budget unused: the trace has
n_ops, n_ops - 1 or n_ops - 2 rows.

The holding table (`hold_obj`, `hold_thread`): every live object sits in one
cell, with the thread that holds it (whose array, queue or batch points at
it; `EMPTY` cells hold nothing).  A classic lays its structures out over the
cells and keeps the holders right as objects move; `put` (ALLOC into a cell,
and its write) and `drop` (the read, and FREE of a cell's object) are the
steps most classics are made of.  The drain frees the occupied cells in cell
order, each on its holder's thread, which is how the programs end: every
thread frees what it holds.

Draws.  Uniforms in [0, 1) from the draw buffer (`uniform`, `below`), which
the driver refills from one `numpy.random.Generator`, so the trace depends
only on the seed and on how many uniforms each step reads.
"""

from __future__ import annotations

from numba import njit

from labcore.jitcache import holds_kernels
from workloads.trace import OP_ACCESS, OP_ALLOC, OP_FREE

holds_kernels(__file__)

AT, DRAW, ROWS, LIVE, NEXT_ID, N_OPS, DRAINED = range(7)
#: The first register a classic may use for itself.
OWN = 8

FULL, NEED_DRAWS, DRAIN, DONE = range(4)
#: Rows one step writes at most (the output buffer has this much room past `stop_at`).
MAX_STEP_ROWS = 3
#: Uniforms one step reads at most (a step starts only with this many left).
MAX_DRAWS = 64
#: A holding-table cell (or a slot of a classic's own) that holds no object.
EMPTY = -1


@njit(cache=True)
def pause(reg, u, stop_at):
    """The status to return before the next step (FULL, NEED_DRAWS), or -1 to take it."""
    if reg[AT] >= stop_at:
        return FULL
    if reg[DRAW] + MAX_DRAWS > u.shape[0]:
        return NEED_DRAWS
    return -1


@njit(cache=True)
def fits(reg, rows, live_change):
    """Whether a step of `rows` rows that changes the live objects by `live_change` fits the budget, drain included."""
    return reg[ROWS] + rows + reg[LIVE] + live_change <= reg[N_OPS]


@njit(cache=True)
def uniform(reg, u):
    """The next uniform in [0, 1)."""
    value = u[reg[DRAW]]
    reg[DRAW] += 1
    return value


@njit(cache=True)
def below(reg, u, count):
    """A uniform integer in 0..count-1 (one uniform)."""
    value = int(uniform(reg, u) * count)
    return value if value < count else count - 1


@njit(cache=True)
def chance(reg, u, probability):
    """True with `probability` (one uniform)."""
    return uniform(reg, u) < probability


@njit(cache=True)
def _row(reg, out, code, ident, nbytes, thread):
    at = reg[AT]
    out[0][at] = code
    out[1][at] = ident
    out[2][at] = nbytes
    out[3][at] = thread
    reg[AT] = at + 1
    reg[ROWS] += 1


@njit(cache=True)
def alloc(reg, out, nbytes, thread):
    """Write an ALLOC row of `nbytes` on `thread`; return the new object's id."""
    ident = reg[NEXT_ID]
    reg[NEXT_ID] = ident + 1
    reg[LIVE] += 1
    _row(reg, out, OP_ALLOC, ident, nbytes, thread)
    return ident


@njit(cache=True)
def free(reg, out, ident, thread):
    """Write the FREE row of object `ident` on `thread`."""
    reg[LIVE] -= 1
    _row(reg, out, OP_FREE, ident, 0, thread)


@njit(cache=True)
def access(reg, out, ident, nbytes, thread):
    """Write an ACCESS row: `thread` touches the first `nbytes` of object `ident` (0 = all of it)."""
    _row(reg, out, OP_ACCESS, ident, nbytes, thread)


@njit(cache=True)
def hold(hold_obj, hold_thread, cell, ident, thread):
    """Put object `ident` in holding cell `cell`, held by `thread`."""
    hold_obj[cell] = ident
    hold_thread[cell] = thread


@njit(cache=True)
def take(hold_obj, cell):
    """The object in holding cell `cell` (EMPTY if none); the cell is left empty."""
    ident = hold_obj[cell]
    hold_obj[cell] = EMPTY
    return ident


@njit(cache=True)
def hand_over(hold_thread, first, count, thread):
    """Cells first..first+count-1 are held by `thread` from now on."""
    for cell in range(first, first + count):
        hold_thread[cell] = thread


@njit(cache=True)
def put(reg, out, hold_obj, hold_thread, cell, nbytes, thread, holder, write):
    """ALLOC `nbytes` on `thread` into holding cell `cell` (held by `holder`), then, unless `write` < 0, an ACCESS
    of its first `write` bytes (0: all of it).  The new object's id, or EMPTY (nothing written) if that does not
    fit the budget."""
    if not fits(reg, 1 if write < 0 else 2, 1):
        return EMPTY
    ident = alloc(reg, out, nbytes, thread)
    hold(hold_obj, hold_thread, cell, ident, holder)
    if write >= 0:
        access(reg, out, ident, write, thread)
    return ident


@njit(cache=True)
def drop(reg, out, hold_obj, cell, thread, read):
    """FREE the object of holding cell `cell` on `thread`, after an ACCESS of all of it if `read`; nothing for an
    empty cell.  False (nothing written) if that does not fit the budget."""
    if hold_obj[cell] == EMPTY:
        return True
    if not fits(reg, 2 if read else 1, -1):
        return False
    ident = take(hold_obj, cell)
    if read:
        access(reg, out, ident, 0, thread)
    free(reg, out, ident, thread)
    return True


@njit(cache=True)
def drain(reg, out, stop_at, hold_obj, hold_thread):
    """Free every occupied holding cell, in cell order, on its holder's thread: FULL (resumable) or DONE."""
    cell = reg[DRAINED]
    while cell < hold_obj.shape[0]:
        if reg[AT] >= stop_at:
            reg[DRAINED] = cell
            return FULL
        ident = take(hold_obj, cell)
        if ident != EMPTY:
            free(reg, out, ident, hold_thread[cell])
        cell += 1
    reg[DRAINED] = cell
    return DONE
