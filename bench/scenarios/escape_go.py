"""The Go compiler as the judge of the lab's escape rules: each rule case rendered as Go, compiled with -m.

What it checks.  `workloads.escape_rules.decide` is the lab's statement of
Go's escape analysis.  Here every site of `RULE_CASES` (or any given sites)
is *rendered* as a small Go function, one site per function, so that the
Go program and the lab's description of its sites come from one table and
cannot drift; `go build -gcflags=-m` compiles them (Debian's Go 1.19
toolchain), and its diagnostics are parsed per source line:

- `moved to heap: x`            an explicit variable on the heap;
- `EXPR escapes to heap`        new(T), &T{}, make(...), interface{}(v) on the heap;
- `EXPR does not escape`        the same on the stack;
- an explicit variable with no diagnostic at its declaration is on the stack
  (the compiler names only the variables it moves).

`check_sites` returns one `SiteVerdict` per site (the lab's answer, the
compiler's, its message); a site whose line has no allocation diagnostic when
one is expected, or two, is an error, never a silent match.

Rendering (`render`).  T is `[size]byte` (a struct `{a int64; b [size-8]byte}`
when the part is a field); make's element type is byte, int64 or
`[elem]byte`.  Allocation: `x := new(T)`, `x := &T{}`, `x := make([]E, count)`,
`x := make([]E, n)` with n a parameter, `var x T`, `x := interface{}(v)`.
The pointer p is x, &x (var), &x.a (field) or &x[last] (element).  Flows:
local (`p[0]++` and the like), call (a `//go:noinline` callee that only
reads and writes through it), returned, global (a package-level variable of
p's type), leak (a callee that stores it to such a variable), stored (into
the field of a holder `new(H)` that is returned: the holder is a site of its
own, `holder_site`, and is checked too).  Every function is `//go:noinline`,
so no site is analysed twice through inlining.

Costs: one `go build` of a ~400-line program, a few seconds with a warm Go
build cache (kept under ~/.cache/allocator-lab/gocache, like bench.real.go).
State: none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workloads.escape_rules import RULE_CASES, Site, decide

CACHE_ROOT = Path.home() / ".cache" / "allocator-lab"
_DIAGNOSTIC = re.compile(r"^\./main\.go:(\d+):(\d+): (.*)$")


class GoMissing(RuntimeError):
    """The Go toolchain is not installed (the message names the Debian package)."""


@dataclass(frozen=True)
class SiteVerdict:
    name: str
    site: Site
    lab_escapes: bool
    lab_reason: str
    go_escapes: bool
    go_message: str
    line: int

    @property
    def agrees(self) -> bool:
        return self.lab_escapes == self.go_escapes


@dataclass(frozen=True)
class _Rendered:
    source: str
    lines: dict[str, int]  # site name -> line of its allocation
    sites: dict[str, Site]  # every site checked: the given ones and the holders of `stored` flows
    variables: dict[str, str]  # site name -> variable name, for explicit `var` sites


def holder_site(site: Site) -> Site:
    """The holder a `stored` flow stores the pointer in: new(H), returned (so it escapes), H one pointer-sized
    field (8 B; 24 B for a slice, 16 B for an interface)."""
    field = 24 if site.kind in ("make_const", "make_var") and site.part == "whole" else (
        16 if site.kind == "iface" else 8)
    return Site("new", field, "returned")


def _types(site: Site) -> tuple[str, str, str, int]:
    """(declared type T or the slice type, element type, pointer type of p, element count)."""
    if site.kind in ("make_const", "make_var"):
        elem = {1: "byte", 8: "int64"}.get(site.elem, f"[{site.elem}]byte")
        count = site.size // site.elem
        return f"[]{elem}", elem, (f"[]{elem}" if site.part == "whole" else f"*{elem}"), count
    if site.part == "field":
        return "T", "", "*int64", 1
    if site.kind == "iface":
        return f"[{site.size}]byte", "", "interface{}", 1
    return f"[{site.size}]byte", "", ("*byte" if site.part == "elem" else f"*[{site.size}]byte"), 1


def _use(expr: str, pointer: str, value_type: str) -> str:
    """A statement that reads and writes through `expr` (of type `pointer`) and keeps it in the frame."""
    if pointer == "interface{}":
        return f"if _, ok := {expr}.({value_type}); ok {{ counter++ }}"
    if pointer in ("*byte", "*int64"):
        return f"*{expr}++"
    if pointer.startswith("[]["):  # a slice of byte arrays
        return f"{expr}[0][0]++"
    return f"{expr}[0]++"  # *[N]byte, *[K]byte, []byte, []int64


def _function(name: str, site: Site, lines: list[str], rendered: dict[str, int], variables: dict[str, str],
              extra: dict[str, Site]) -> None:
    declared, elem, pointer, count = _types(site)
    if site.part == "field":
        lines.append(f"type {name}_T struct {{ a int64; b [{site.size - 8}]byte }}")
        declared = f"{name}_T"
        pointer = "*int64"
    holder = f"{name}_H"
    if site.flow == "stored":
        lines.append(f"type {holder} struct {{ f {pointer} }}")
    if site.flow in ("global", "leak"):
        lines.append(f"var g_{name} {pointer}")
    if site.flow == "call":
        lines += ["//go:noinline", f"func use_{name}(q {pointer}) {{ {_use('q', pointer, declared)} }}"]
    if site.flow == "leak":
        lines += ["//go:noinline", f"func leak_{name}(q {pointer}) {{ g_{name} = q }}"]
    result = {"returned": f" {pointer}", "stored": f" *{holder}"}.get(site.flow, "")
    lines += ["//go:noinline", f"func {name}(n int){result} {{"]
    if site.kind == "var":
        variables[name] = "x"
        rendered[name] = len(lines) + 1
        lines.append(f"\tvar x {declared}")
        base = "x"
        whole = "&x"
    elif site.kind == "iface":
        lines.append(f"\tvar v {declared}")
        lines.append("\tv[0] = byte(n)")
        rendered[name] = len(lines) + 1
        lines.append("\tx := interface{}(v)")
        base = whole = "x"
    else:
        allocation = {"new": f"new({declared})", "ptrlit": f"&{declared}{{}}",
                      "make_const": f"make({declared}, {count})", "make_var": f"make({declared}, n)"}[site.kind]
        rendered[name] = len(lines) + 1
        lines.append(f"\tx := {allocation}")
        base = whole = "x"
    if site.part == "field":
        lines.append(f"\tp := &{base}.a")
    elif site.part == "elem":
        last = count - 1 if site.kind in ("make_const", "make_var") else site.size - 1
        lines.append(f"\tp := &{base}[{last}]" if site.kind != "make_var" else f"\tp := &{base}[n-1]")
    else:
        lines.append(f"\tp := {whole}")
    flow = site.flow
    if flow == "local":
        lines.append(f"\t{_use('p', pointer, declared)}")
    elif flow == "call":
        lines.append(f"\tuse_{name}(p)")
    elif flow == "global":
        lines.append(f"\tg_{name} = p")
    elif flow == "leak":
        lines.append(f"\tleak_{name}(p)")
    if flow == "returned":
        lines.append("\treturn p")
    elif flow == "stored":
        extra[f"{name}_holder"] = holder_site(site)
        rendered[f"{name}_holder"] = len(lines) + 1
        lines.append(f"\th := new({holder})")
        lines.append("\th.f = p")
        lines.append("\treturn h")
    lines.append("}")
    lines.append("")


def render(sites: dict[str, Site]) -> _Rendered:
    """The Go program of `sites` (name -> Site; names are Go identifiers), with the line of every site."""
    for name, site in sites.items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(f"site name '{name}' is not a Go identifier")
        site.codes()  # a site outside the model: ValueError naming the feature
    lines = ["// Generated by bench/scenarios/escape_go.py from workloads/escape_rules.py: one site per function.",
             "package main", "", "var counter int", ""]
    rendered: dict[str, int] = {}
    variables: dict[str, str] = {}
    extra: dict[str, Site] = {}
    for name, site in sites.items():
        _function(name, site, lines, rendered, variables, extra)
    lines.append("func main() {")
    for name, site in sites.items():
        count = site.size // site.elem if site.kind in ("make_const", "make_var") else 1
        lines.append(f"\t_ = {name}({count})" if site.flow in ("returned", "stored") else f"\t{name}({count})")
    lines.append("}")
    return _Rendered("\n".join(lines) + "\n", rendered, {**sites, **extra}, variables)


def compiler_diagnostics(source: str, timeout: float = 300.0) -> dict[int, list[str]]:
    """`go build -gcflags=-m` of a one-file program: the diagnostics by line (GoMissing without go)."""
    go = shutil.which("go")
    if go is None:
        raise GoMissing("the Go compiler check needs the go toolchain; install the Debian package: "
                        "apt-get install -y golang-go")
    env = {**os.environ, "GOCACHE": str(CACHE_ROOT / "gocache"), "GO111MODULE": "on", "CGO_ENABLED": "0",
           "GOFLAGS": "-mod=mod"}
    env.setdefault("HOME", str(Path.home()))
    with tempfile.TemporaryDirectory(prefix="alloclab-escape-") as build:
        (Path(build) / "main.go").write_text(source)
        (Path(build) / "go.mod").write_text("module escapecheck\n\ngo 1.19\n")
        # A compile served from the Go build cache replays its -m diagnostics, so a warm check takes < 1 s.
        done = subprocess.run([go, "build", "-gcflags=-m", "-o", os.devnull, "."], cwd=build, env=env,
                              capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"go build -gcflags=-m failed: {done.stderr.strip()[-2000:]}")
    found: dict[int, list[str]] = {}
    for line in done.stderr.splitlines():
        match = _DIAGNOSTIC.match(line.strip())
        if match:
            found.setdefault(int(match.group(1)), []).append(match.group(3))
    return found


def _allocation_messages(messages: list[str]) -> list[str]:
    return [text for text in messages if text.startswith("moved to heap: ")
            or (text.endswith(" escapes to heap") or text.endswith(" does not escape"))
            and not text.startswith("leaking param")]


def check_sites(sites: dict[str, Site] | None = None, timeout: float = 300.0) -> list[SiteVerdict]:
    """Compile the sites (default: every rule case) and compare each with `decide` (module docstring)."""
    program = render(dict(RULE_CASES) if sites is None else sites)
    diagnostics = compiler_diagnostics(program.source, timeout)
    verdicts = []
    for name, site in program.sites.items():
        line = program.lines[name]
        messages = _allocation_messages(diagnostics.get(line, []))
        if name in program.variables:
            moved = [text for text in messages if text == f"moved to heap: {program.variables[name]}"]
            go_escapes, message = bool(moved), (moved[0] if moved else "(no diagnostic: on the stack)")
        elif len(messages) != 1:
            raise RuntimeError(f"site {name} (line {line}): expected one allocation diagnostic, got {messages}")
        else:
            message = messages[0]
            go_escapes = message.endswith(" escapes to heap")
        escapes, reason = decide(site)
        verdicts.append(SiteVerdict(name, site, escapes, reason, go_escapes, message, line))
    return verdicts
