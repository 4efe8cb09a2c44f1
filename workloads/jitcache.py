"""Where numba keeps the lab's compiled kernels, keyed by the lab's own source code.

numba's on-disk cache (`cache=True`) checks only the source file of the
function it compiled.  A replay kernel inlines kernels from other modules
(shared free lists, size classes, the trace constants), so editing one of those
would leave stale machine code in the cache, and a run with
`NUMBA_BOUNDSCHECK=1` would load (or leave behind) code compiled without (or
with) bounds checks.  Both would give silently wrong or slow figures.

So before any of the lab's kernels is defined, `configure()` points numba's
cache at a directory named by a fingerprint of: every `.py` file that holds
kernels or constants compiled into them, the numba and Python versions, and the
bounds-check setting (`KERNEL_SOURCES`).  Any change there means a fresh directory; the eight
most recently used fingerprints are kept, older ones are deleted.

The root is `$ALLOCLAB_CACHE_DIR`, else `$NUMBA_CACHE_DIR/allocator-lab`, else
`$XDG_CACHE_HOME/allocator-lab/numba` (`~/.cache/...`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

KEEP_FINGERPRINTS = 8
_configured: Path | None = None


def _fingerprint() -> str:
    import numba

    digest = hashlib.sha256()
    digest.update(f"{numba.__version__}|{sys.version}|{os.environ.get('NUMBA_BOUNDSCHECK', '')}".encode())
    root = Path(__file__).resolve().parent.parent
    for path in sorted(kernel_sources(root)):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


#: Where the lab's kernels and every constant they compile in live (the CLI, sweep and plots do not count).
KERNEL_SOURCES = ("allocators", "workloads", "bench/metrics", "bench/heapmap.py", "bench/calibrate.py")


def kernel_sources(root: Path) -> list[Path]:
    found: list[Path] = []
    for entry in KERNEL_SOURCES:
        path = root / entry
        found.extend(path.rglob("*.py") if path.is_dir() else [path] if path.exists() else [])
    return found


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
    global _configured
    if _configured is not None:
        return _configured
    from numba.core import config

    directory = _cache_root() / _fingerprint()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.utime(directory)
    except OSError:
        return Path(config.CACHE_DIR or ".")  # unwritable: numba falls back to its own rules
    config.CACHE_DIR = str(directory)
    _prune(directory.parent, directory)
    _configured = directory
    return directory


configure()
