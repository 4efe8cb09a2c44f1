"""The malformed-input corpus (tests/data/malformed, written by its make_corpus.py) replayed through the CLI.

Every entry of `expected.json` names a file (or chunked directory), the command
that reads it and a substring of the error.  Each is run in-process through
`bench.cli.main` and must end in exit 2 with exactly one line on stderr (the
cold-cache compile notice aside) that names the file and says what is wrong,
no traceback, nothing on stdout and no output file left behind.  A new entry
point is one more function in `ENTRY_POINTS` (`trace inject` is one).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from allocators.replayjob import _Replay
from bench.cli import main
from workloads.chunked import ChunkedTrace
from workloads.trace import TraceError

CORPUS = Path(__file__).parent / "data" / "malformed"
EXPECTED: dict[str, dict[str, str]] = json.loads((CORPUS / "expected.json").read_text())
COMPILE_NOTICE = ("compiling kernels (first run only", "compiled in ")
#: Wall-clock bound of one refusal (they take milliseconds warm; a cold kernel cache compiles the validation
#: kernels once, which the first case pays).
CASE_SECONDS = 60.0


def _replay(path: Path, entry: dict[str, str], out: Path) -> list[str]:
    return ["replay", "--trace", str(path), "-a", entry.get("allocator", "pool"), "--repeats", "1"]


def _info(path: Path, entry: dict[str, str], out: Path) -> list[str]:
    return ["trace", "info", str(path)]


def _import(path: Path, entry: dict[str, str], out: Path) -> list[str]:
    return ["trace", "import", "-f", entry["format"], str(path), "-o", str(out)]


def _inject(path: Path, entry: dict[str, str], out: Path) -> list[str]:
    return ["trace", "inject", str(path), "-o", str(out), "--faults", entry.get("faults", "double_free=0.01")]


def _no_kernel(*args: object, **kwargs: object) -> int:
    raise AssertionError("a replay kernel ran on a malformed input")


#: command name in expected.json -> argv builder (file, its entry, the output path a command may write).
ENTRY_POINTS: dict[str, Callable[[Path, dict[str, str], Path], list[str]]] = {
    "replay": _replay, "info": _info, "import": _import, "inject": _inject,
}


def test_the_corpus_is_complete_and_small() -> None:
    on_disk = {path.name + ("/" if path.is_dir() else "") for path in CORPUS.iterdir()
               if path.name not in ("make_corpus.py", "expected.json", "__pycache__")}
    assert on_disk == set(EXPECTED), on_disk ^ set(EXPECTED)
    assert len(EXPECTED) >= 30
    assert {entry["command"] for entry in EXPECTED.values()} <= set(ENTRY_POINTS)
    sizes = [path.stat().st_size for path in CORPUS.rglob("*")
             if path.is_file() and path.name not in ("make_corpus.py", "expected.json")]
    assert max(sizes) <= 8192 and sum(sizes) <= 200_000
    suffixes = {Path(name.rstrip("/")).suffix for name in EXPECTED}
    for suffix in (".npz", ".csv", ".log", ".raw", ".gz", ".zst", ".rep", ".txt"):
        assert suffix in suffixes and any(
            name.endswith(suffix) and (CORPUS / name).stat().st_size == 0 for name in EXPECTED), suffix


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_malformed_input_is_one_line_and_exit_2(name: str, tmp_path: Path, capsys, monkeypatch) -> None:
    entry = EXPECTED[name]
    if name.endswith(".zst") and shutil.which("zstd") is None:
        pytest.skip("reading .zst needs the zstd program")
    path = CORPUS / name.rstrip("/")
    if not path.is_dir():  # a file is refused whole, before any replay kernel runs (even a warm-up's)
        monkeypatch.setattr(_Replay, "_kernel", _no_kernel)
    out = tmp_path / "out.npz"
    before = sorted(p.name for p in tmp_path.iterdir())
    started = time.perf_counter()
    code = main(ENTRY_POINTS[entry["command"]](path, entry, out))
    elapsed = time.perf_counter() - started
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip() and not line.startswith(COMPILE_NOTICE)]
    assert code == 2, captured
    assert "Traceback" not in captured.err and len(lines) == 1, captured.err
    assert lines[0].startswith("bench: error: ") and str(path) in lines[0], lines[0]
    assert entry["expect"] in lines[0], lines[0]
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not out.exists()
    assert elapsed < CASE_SECONDS


@pytest.mark.parametrize("name", sorted(name for name, entry in EXPECTED.items()
                                        if name.endswith("/") and not entry.get("after_replay")))
def test_a_lying_directory_is_refused_before_its_first_chunk_is_handed_on(name: str) -> None:
    """A chunked directory is replayed as it is read: the refusal must come before the bad chunk is yielded
    (to the replay kernel), so the kernel never sees rows that disagree with what it was sized by."""
    with pytest.raises(TraceError, match=re.escape(EXPECTED[name]["expect"])):
        next(iter(ChunkedTrace(CORPUS / name.rstrip("/")).chunks()))
