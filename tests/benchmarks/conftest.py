"""Print replay throughput in Mops/s after a benchmark run (pytest-benchmark reports seconds per round)."""

from __future__ import annotations

THROUGHPUT: dict[str, tuple[int, float, float]] = {}


def record(name: str, rows: int, median_s: float, min_s: float) -> None:
    THROUGHPUT[name] = (rows, median_s, min_s)


def pytest_terminal_summary(terminalreporter):
    if not THROUGHPUT:
        return
    terminalreporter.section("throughput (Mops/s = trace rows / seconds of the timed kernel)")
    for name, (rows, median_s, min_s) in sorted(THROUGHPUT.items(), key=lambda item: item[1][1]):
        terminalreporter.write_line(
            f"{name:<28} median {rows / median_s / 1e6:8.1f}   best {rows / min_s / 1e6:8.1f}   ({rows:,} rows)"
        )
