"""Go's escape-analysis rules as one small table: does an allocation site's object live on the stack or the heap?

What it models.  The Go compiler decides, per allocation site, whether the
object can live in its function's stack frame or must go to the garbage-
collected heap (golang/go src/cmd/compile/internal/escape/, Go 1.19; the
founding notes, "Escape анализ").  A site here is described by its features
(`Site`), not by Go code, and `decide` gives the compiler's answer with a
reason.  The program generator (workloads.escape) draws sites and asks
`decide_codes`; the Go check (bench.scenarios.escape_go) renders each site
of `RULE_CASES` as Go code, compiles it with `go build -gcflags=-m` and
checks that the compiler decides every site as `decide` does.

A site (`Site`):

- `kind`: how the object is made: `new` (new(T)), `ptrlit` (&T{}),
  `make_const` (make([]E, n) with a constant n), `make_var` (make([]E, n)
  with n known only at run time), `var` (an explicit `var x T` whose address
  is taken), `iface` (a value of T converted to interface{});
- `size`: bytes of T (of the whole backing array for make: `elem` x count);
- `elem`: the element size of a make (1 for the other kinds);
- `flow`: what happens to the pointer: `local` (used only in the frame),
  `call` (passed to a callee that does not keep it), `returned` (returned
  to the caller), `global` (stored to a package-level variable), `leak`
  (passed to a callee that stores it somewhere that outlives the call),
  `stored` (stored in a field or element of another object that escapes);
- `part`: which part of the object the pointer points to: `whole`, `field`
  (&x.f of a struct) or `elem` (&x[i] of an array or a slice).

The rules (`decide`), in the compiler's order:

1. Size (escape.HeapAllocReason, ir/cfg.go): an explicit variable larger
   than `MAX_STACK_VAR_SIZE` = 10 MiB (`size > 10 MiB`); new(T) or &T{} with
   T larger than `MAX_IMPLICIT_STACK_VAR_SIZE` = 64 KiB (`size > 64 KiB`);
   make([]E, n) with a constant n > 64 KiB / elem (integer division, as Go
   does); make([]E, n) with a non-constant n always.  These go to the heap
   whatever the flow.
2. Flow: a pointer that outlives the frame (returned, stored to a global,
   leaked by a callee, stored in an escaping object) moves the object to the
   heap; one used only locally or passed to a callee that does not keep it
   leaves it on the stack.
3. Parts: if a field or an element escapes, the whole struct, array or slice
   does (the compiler's unit is the variable or the allocation, not a part).
4. `new`, `make` and `interface{}` decide nothing by themselves: with a
   local flow and a small size they stay on the stack like a `var`.

Outside the model (`decide` refuses with ValueError): an `interface{}` of
a value larger than 1 KiB, which Go 1.19 boxes on the heap even when it does
not escape (walk/convert.go dataWord: a stack temporary only for
non-escaping values of at most 1024 B), so the compiler's -m answer and the
allocation would differ; closures, method values, "too aligned for stack",
and values the compiler places in read-only data (constants, zero-sized
types, single bytes).  The program generator never draws those.

Costs: `decide_codes` is a few vectorised numpy comparisons per site array.
State: none (constants and tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labcore.jitcache import holds_kernels

holds_kernels(__file__)  # its constants are read by workloads.escape's kernel's caller

#: ir.MaxStackVarSize (cmd/compile/internal/ir/cfg.go, Go 1.19): the largest explicit variable kept on the stack.
MAX_STACK_VAR_SIZE = 10 * 1024 * 1024
#: ir.MaxImplicitStackVarSize: the largest new(T), &T{} or constant-length make kept on the stack.
MAX_IMPLICIT_STACK_VAR_SIZE = 64 * 1024
#: The largest value an interface{} conversion may box on the stack (walk/convert.go, dataWord).
MAX_STACK_IFACE_VALUE = 1024

KINDS = ("new", "ptrlit", "make_const", "make_var", "var", "iface")
K_NEW, K_PTRLIT, K_MAKE_CONST, K_MAKE_VAR, K_VAR, K_IFACE = range(6)
FLOWS = ("local", "call", "returned", "global", "leak", "stored")
F_LOCAL, F_CALL, F_RETURNED, F_GLOBAL, F_LEAK, F_STORED = range(6)
#: The flows that outlive the frame.
ESCAPING_FLOWS = (F_RETURNED, F_GLOBAL, F_LEAK, F_STORED)
PARTS = ("whole", "field", "elem")
P_WHOLE, P_FIELD, P_ELEM = range(3)

#: Reason codes of `decide_codes`, in order; 0 is the only stack reason.
REASONS = (
    "stack: does not outlive its frame",
    "heap: too large for stack (explicit variable > 10 MiB)",
    "heap: too large for stack (implicit new/&T{}/make > 64 KiB)",
    "heap: non-constant make size",
    "heap: returned to the caller",
    "heap: stored to a global",
    "heap: leaked by a callee",
    "heap: stored in an escaping object",
)
R_STACK, R_TOO_LARGE_EXPLICIT, R_TOO_LARGE_IMPLICIT, R_NON_CONSTANT, R_RETURNED, R_GLOBAL, R_LEAK, R_STORED = range(8)
_FLOW_REASON = np.array([R_STACK, R_STACK, R_RETURNED, R_GLOBAL, R_LEAK, R_STORED], np.int8)
#: Parts each kind can have: a struct's field (new, &T{}, var), an array's or slice's element (all but iface).
_PARTS_OF_KIND = {K_NEW: (P_WHOLE, P_FIELD, P_ELEM), K_PTRLIT: (P_WHOLE, P_FIELD, P_ELEM),
                  K_MAKE_CONST: (P_WHOLE, P_ELEM), K_MAKE_VAR: (P_WHOLE, P_ELEM),
                  K_VAR: (P_WHOLE, P_FIELD, P_ELEM), K_IFACE: (P_WHOLE,)}
#: A struct with a field to point at has at least two 8-byte fields.
MIN_STRUCT_SIZE = 16


@dataclass(frozen=True)
class Site:
    """One allocation site, by its features (module docstring)."""

    kind: str
    size: int
    flow: str = "local"
    part: str = "whole"
    elem: int = 1

    def codes(self) -> tuple[int, int, int, int, int]:
        """(kind, size, elem, flow, part) as the codes of `decide_codes`; ValueError naming a bad feature."""
        for name, value, table in (("kind", self.kind, KINDS), ("flow", self.flow, FLOWS), ("part", self.part, PARTS)):
            if value not in table:
                raise ValueError(f"site {name} '{value}' is not one of {', '.join(table)}")
        kind, flow, part = KINDS.index(self.kind), FLOWS.index(self.flow), PARTS.index(self.part)
        for name, value in (("size", self.size), ("elem", self.elem)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= value <= 1 << 40:
                raise ValueError(f"site {name} must be an integer in 1..2^40 bytes (got {value!r})")
        if kind in (K_MAKE_CONST, K_MAKE_VAR):
            if self.size % self.elem:
                raise ValueError(f"a make site's size ({self.size}) must be a multiple of its elem ({self.elem})")
        elif self.elem != 1:
            raise ValueError(f"only make sites have an element size (kind {self.kind}, elem {self.elem})")
        if part not in _PARTS_OF_KIND[kind]:
            raise ValueError(f"a {self.kind} site has no part '{self.part}'")
        if part == P_FIELD and self.size < MIN_STRUCT_SIZE:
            raise ValueError(f"a struct with a field to point at has at least {MIN_STRUCT_SIZE} B (got {self.size})")
        if kind == K_IFACE and self.size > MAX_STACK_IFACE_VALUE:
            raise ValueError(f"an interface{{}} of a value over {MAX_STACK_IFACE_VALUE} B is boxed on the heap even "
                             "when it does not escape: outside the model")
        return kind, int(self.size), int(self.elem), flow, part


def decide_codes(kind: np.ndarray, size: np.ndarray, elem: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """The rules over arrays of site codes: (escapes bool[], reason int8[]).  The part does not change the
    decision (rule 3: the whole object goes where its escaping part would)."""
    kind, size, elem, flow = (np.asarray(array, np.int64) for array in (kind, size, elem, flow))
    reason = _FLOW_REASON[flow]
    implicit = (kind == K_NEW) | (kind == K_PTRLIT)
    too_large_implicit = ((implicit & (size > MAX_IMPLICIT_STACK_VAR_SIZE))
                          | ((kind == K_MAKE_CONST) & (size // elem > MAX_IMPLICIT_STACK_VAR_SIZE // elem)))
    reason = np.where(too_large_implicit, R_TOO_LARGE_IMPLICIT, reason)
    reason = np.where((kind == K_VAR) & (size > MAX_STACK_VAR_SIZE), R_TOO_LARGE_EXPLICIT, reason)
    reason = np.where(kind == K_MAKE_VAR, R_NON_CONSTANT, reason).astype(np.int8)
    return reason != R_STACK, reason


def decide(site: Site) -> tuple[bool, str]:
    """(escapes, reason) for one site: the same rules as `decide_codes`; ValueError for a site outside the model."""
    kind, size, elem, flow, part = site.codes()
    escapes, reason = decide_codes(np.array([kind]), np.array([size]), np.array([elem]), np.array([flow]))
    text = REASONS[int(reason[0])]
    if part != P_WHOLE and escapes[0] and int(reason[0]) >= R_RETURNED:
        text += f" (through {'a field' if part == P_FIELD else 'an element'}: the whole object escapes)"
    return bool(escapes[0]), text


#: Sites that exercise each rule, below and above every limit (the Go check compiles every one).
RULE_CASES: dict[str, Site] = {
    # rule 2: the flow decides
    "new_local": Site("new", 64),
    "new_call": Site("new", 64, "call"),
    "new_returned": Site("new", 64, "returned"),
    "new_global": Site("new", 64, "global"),
    "new_leak": Site("new", 64, "leak"),
    "new_stored": Site("new", 64, "stored"),
    "ptrlit_local": Site("ptrlit", 48),
    "ptrlit_returned": Site("ptrlit", 48, "returned"),
    "make_local": Site("make_const", 256, elem=8),
    "make_returned": Site("make_const", 256, "returned", elem=8),
    "make_leak": Site("make_const", 256, "leak", elem=8),
    "var_local": Site("var", 128),
    "var_call": Site("var", 128, "call"),
    "var_returned": Site("var", 128, "returned"),
    "var_global": Site("var", 128, "global"),
    "iface_local": Site("iface", 24),
    "iface_call": Site("iface", 24, "call"),
    "iface_returned": Site("iface", 24, "returned"),
    "iface_leak": Site("iface", 24, "leak"),
    "iface_1k_local": Site("iface", MAX_STACK_IFACE_VALUE),
    # rule 3: one field or element escapes, the whole object does
    "var_field_returned": Site("var", 64, "returned", "field"),
    "var_elem_returned": Site("var", 64, "returned", "elem"),
    "var_field_local": Site("var", 64, "local", "field"),
    "new_field_global": Site("new", 64, "global", "field"),
    "make_elem_returned": Site("make_const", 64, "returned", "elem", elem=8),
    "make_elem_call": Site("make_const", 64, "call", "elem", elem=8),
    # rule 1: sizes (implicit 64 KiB, explicit 10 MiB: at and just above each limit), non-constant make
    "new_64k_local": Site("new", MAX_IMPLICIT_STACK_VAR_SIZE),
    "new_64k_plus_local": Site("new", MAX_IMPLICIT_STACK_VAR_SIZE + 1),
    "ptrlit_64k_plus_local": Site("ptrlit", MAX_IMPLICIT_STACK_VAR_SIZE + 8),
    "make_64k_local": Site("make_const", MAX_IMPLICIT_STACK_VAR_SIZE, elem=8),
    "make_64k_plus_local": Site("make_const", MAX_IMPLICIT_STACK_VAR_SIZE + 8, elem=8),
    "make_odd_elem_below": Site("make_const", 3 * (MAX_IMPLICIT_STACK_VAR_SIZE // 3), elem=3),
    "make_odd_elem_above": Site("make_const", 3 * (MAX_IMPLICIT_STACK_VAR_SIZE // 3 + 1), elem=3),
    "var_64k_plus_call": Site("var", MAX_IMPLICIT_STACK_VAR_SIZE + 1, "call"),
    "var_10m_local": Site("var", MAX_STACK_VAR_SIZE),
    "var_10m_plus_local": Site("var", MAX_STACK_VAR_SIZE + 1),
    "make_var_local": Site("make_var", 64, elem=8),
    "make_var_small_call": Site("make_var", 8, "call", elem=8),
}
