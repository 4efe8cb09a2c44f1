"""The compiled-kernel cache: every module whose code or constants end up in a kernel registers itself."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from numba.core.dispatcher import Dispatcher

from labcore import jitcache

ROOT = jitcache.ROOT
CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")


def lab_modules() -> dict[str, Path]:
    modules = {}
    for package in jitcache.LAB_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path.resolve()
    return modules


MODULES = lab_modules()
REGISTERED = set(jitcache.kernel_sources())


def _uses_numba(tree: ast.Module) -> bool:
    """Module-level imports of numba or of the lab's kernel helpers (a version lookup inside a function is not)."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module in ("numba", "labcore.kernels", "numba.extending"):
            return True
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "numba" for alias in node.names):
            return True
    return False


def test_every_module_that_defines_kernels_registers():
    unregistered = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        if _uses_numba(tree) and path not in REGISTERED and name not in ("labcore.kernels", "labcore.jitcache"):
            unregistered.append(name)
    assert not unregistered, f"modules using numba without holds_kernels(__file__): {unregistered}"


def test_constants_and_kernels_that_kernels_use_are_covered():
    """A registered module's imported constants (UPPER_CASE) and kernels come from registered modules."""
    missing = set()
    for name, path in MODULES.items():
        if path not in REGISTERED:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module in MODULES:
                source = MODULES[node.module]
                if source not in REGISTERED and any(CONSTANT.match(alias.name) for alias in node.names):
                    missing.add(f"{node.module} (constants imported by {name})")
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, Dispatcher):
                origin = Path(value.py_func.__code__.co_filename).resolve()
                if origin.is_relative_to(ROOT) and origin not in REGISTERED:
                    missing.add(f"{origin.relative_to(ROOT)} (kernel {value.py_func.__name__} used by {name})")
    assert not missing, f"not covered by the kernel fingerprint: {sorted(missing)}"


def test_the_fingerprint_changes_with_a_registered_source(tmp_path, monkeypatch):
    sources = jitcache.kernel_sources()
    assert sources and all(path in REGISTERED for path in sources)
    before = jitcache._fingerprint(sources)
    copy = tmp_path / "changed.py"
    copy.write_text(sources[0].read_text() + "\n# a change\n")
    monkeypatch.setattr(jitcache, "ROOT", tmp_path)
    assert jitcache._fingerprint([copy]) != before


def test_registering_outside_the_lab_packages_is_refused(tmp_path):
    stray = tmp_path / "stray.py"
    stray.write_text("holds_kernels(__file__)\n")
    with pytest.raises(RuntimeError, match="holds_kernels"):
        jitcache.holds_kernels(str(stray))


def test_compile_notice_says_when_numba_compiles_and_how_long():
    from numba import njit

    said: list[str] = []
    with jitcache.compile_notice(said.append):
        assert jitcache.compile_done() is None and said == []  # nothing compiled yet: silent

        @njit
        def twice(x):
            return 2 * x

        assert twice(21) == 42 and twice(1) == 2  # one compile (int64), then the compiled code
        assert len(said) == 1 and said[0].startswith("compiling kernels (first run only, cached in ")
        assert str(jitcache.configure()) in said[0]
        assert jitcache.compile_done() is not None and re.fullmatch(r"compiled in \d+\.\d s", said[1])
        assert twice(2.5) == 5.0  # a new signature is a new burst, reported at the end of the block
        assert len(said) == 3
    assert re.fullmatch(r"compiled in \d+\.\d s", said[3]) and len(said) == 4
    assert jitcache.compile_done() is None  # no notice active: silent


def test_cold_start_is_said_once_on_stderr_and_warm_start_is_silent(tmp_path):
    """A fresh cache directory compiles (said on stderr, --json stdout stays JSON); the second run loads it."""
    import json
    import os
    import subprocess
    import sys

    environment = dict(os.environ, ALLOCLAB_CACHE_DIR=str(tmp_path))
    command = [sys.executable, "-m", "bench", "run", "-a", "linear", "--ops", "1000", "--repeats", "1", "--json"]
    runs = [subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["status"] == "ok"
    cold, warm = runs[0].stderr, runs[1].stderr
    directory = next(path for path in tmp_path.iterdir() if path.is_dir())
    assert f"compiling kernels (first run only, cached in {directory}) ..." in cold
    assert re.search(r"^compiled in \d+\.\d s$", cold, re.MULTILINE)
    assert cold.count("compiling kernels") == 1
    assert "compiling" not in warm and "compiled" not in warm
