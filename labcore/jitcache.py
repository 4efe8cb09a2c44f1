"""Where numba keeps the lab's compiled kernels, keyed by the lab's own source code.

numba's on-disk cache (`cache=True`) checks only the source file of the
function it compiled.  A replay kernel inlines kernels from other modules
(shared free lists, size classes, the trace constants), so editing one of those
would leave stale machine code in the cache, and a run with
`NUMBA_BOUNDSCHECK=1` would load (or leave behind) code compiled without (or
with) bounds checks.  Both would give silently wrong or slow figures.

So before any of the lab's kernels is defined, `configure()` points numba's
cache at a directory named by a fingerprint of: every source file that holds
kernels or constants compiled into them, the numba and Python versions, and the
bounds-check setting.  Any change there means a fresh directory; the eight most
recently used fingerprints are kept, older ones are deleted.

Registration.  A module that holds kernels, or constants that kernels compile
in, says so on a line of its own, after its imports:

    holds_kernels(__file__)

The fingerprint covers every file of the lab's packages (`LAB_PACKAGES`) with
that line; it is found by reading the sources, because numba binds a kernel's
cache directory when the kernel is *defined*, so the fingerprint must be known
before the first kernel module is imported.  The call itself checks, at import,
that its file is covered (a call the scan could not see, e.g. indented, raises).
`tests/test_jitcache.py` checks that every module using numba, and every lab
module such a module imports, registers.

Importing this module configures the cache (each package of the lab imports
`labcore` first).  The root is `$ALLOCLAB_CACHE_DIR`, else
`$NUMBA_CACHE_DIR/allocator-lab`, else `$XDG_CACHE_HOME/allocator-lab/numba`
(`~/.cache/...`).

Saying so when it compiles.  A cold cache (a fresh install, a change to a
kernel source, a first `NUMBA_BOUNDSCHECK=1` run) costs seconds to a minute of
compiling before the first figure; a warm one loads in well under a second.
`compile_notice(say)` (the command line holds one for the whole command) tells
the two apart the way numba does: it listens to numba's `"numba:compile"`
event, which numba broadcasts only when it compiles (a cache miss), never when
it loads a kernel from the cache.  The first compile says "compiling kernels
(first run only, cached in DIR) ..." and `compile_done()`, called where the
warm-up ends (`bench.harness`, the sweep's warm-up), says how long it took
("compiled in 12.3 s", wall time since that line); a later compile burst says
so again.  Without a notice, or with nothing compiled, both are silent.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

KEEP_FINGERPRINTS = 8
#: The lab's packages, searched for modules that register themselves.
LAB_PACKAGES = ("labcore", "workloads", "allocators", "bench")
#: The registration line (at the start of a line, after the module's imports).
MARKER = re.compile(r"^holds_kernels\(__file__\)", re.MULTILINE)

ROOT = Path(__file__).resolve().parent.parent
_configured: Path | None = None
_sources: frozenset[Path] | None = None


def kernel_sources(root: Path = ROOT) -> list[Path]:
    """Every module of the lab's packages that registers itself with `holds_kernels(__file__)`, sorted."""
    found: list[Path] = []
    for package in LAB_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if MARKER.search(text):
                found.append(path.resolve())
    return found


def _fingerprint(sources: list[Path]) -> str:
    import numba

    digest = hashlib.sha256()
    digest.update(f"{numba.__version__}|{sys.version}|{os.environ.get('NUMBA_BOUNDSCHECK', '')}".encode())
    for path in sources:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_root() -> Path:
    if os.environ.get("ALLOCLAB_CACHE_DIR"):
        return Path(os.environ["ALLOCLAB_CACHE_DIR"])
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / "allocator-lab"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "allocator-lab" / "numba"


def _prune(root: Path, keep: Path) -> None:
    try:
        siblings = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for stale in siblings[KEEP_FINGERPRINTS:]:
        if stale != keep:
            shutil.rmtree(stale, ignore_errors=True)


def configure() -> Path:
    """Point numba's cache at this source tree's fingerprint directory (idempotent); return it."""
    global _configured, _sources
    if _configured is not None:
        return _configured
    from numba.core import config

    sources = kernel_sources()
    _sources = frozenset(sources)
    directory = _cache_root() / _fingerprint(sources)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.utime(directory)
    except OSError:
        _configured = Path(config.CACHE_DIR or ".")  # unwritable: numba falls back to its own rules
        return _configured
    config.CACHE_DIR = str(directory)
    _prune(directory.parent, directory)
    _configured = directory
    return directory


def holds_kernels(module_file: str) -> None:
    """Register the calling module as one whose kernels (or constants in them) the cache fingerprint covers."""
    configure()
    assert _sources is not None
    if Path(module_file).resolve() not in _sources:
        raise RuntimeError(
            f"{module_file}: holds_kernels(__file__) must stand at the start of a line of a module in the lab's "
            f"packages ({', '.join(LAB_PACKAGES)}), so that the compiled-kernel fingerprint sees it"
        )


class _Notice:
    """The state of one `compile_notice`: whether it announced a compile, since when, and how deep numba is."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.depth = 0
        self.announced_at: float | None = None

    def on_start(self, event: object) -> None:
        if self.depth == 0 and self.announced_at is None:
            self.announced_at = time.perf_counter()
            self.say(f"compiling kernels (first run only, cached in {configure()}) ...")
        self.depth += 1

    def on_end(self, event: object) -> None:
        self.depth = max(0, self.depth - 1)

    def done(self) -> float | None:
        if self.announced_at is None or self.depth:
            return None
        elapsed = time.perf_counter() - self.announced_at
        self.announced_at = None
        self.say(f"compiled in {elapsed:.1f} s")
        return elapsed


_notice: _Notice | None = None


@contextmanager
def compile_notice(say: Callable[[str], None]) -> Iterator[None]:
    """While active, numba compiling a kernel (not loading it from the cache) is said through `say`, once per
    burst: "compiling kernels (first run only, cached in DIR) ..." at its start, "compiled in T s" at the
    next `compile_done()` or at the end of the block."""
    global _notice
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, numba_event: object) -> None:
            notice.on_start(numba_event)

        def on_end(self, numba_event: object) -> None:
            notice.on_end(numba_event)

    outer, notice, listener = _notice, _Notice(say), Listener()
    _notice = notice
    event.register("numba:compile", listener)
    try:
        yield
    finally:
        event.unregister("numba:compile", listener)
        _notice = outer
        notice.done()


def compile_done() -> float | None:
    """The end of a warm-up: if the active `compile_notice` announced a compile, say how long it took (seconds
    since the announcement, returned); else nothing (None)."""
    return _notice.done() if _notice is not None else None


configure()
