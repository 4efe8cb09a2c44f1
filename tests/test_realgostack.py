"""Real Go's goroutine stacks against the contiguous model (bench.real.gostacks, bench/real/gostack/main.go)."""

from __future__ import annotations

import shutil

import pytest

from bench.real.gostacks import first_growth_depths, frames_of, gostack_binary, measure_real_stacks

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="go not installed (apt-get install -y golang-go)")


def test_frame_sizes_come_from_the_compiler():
    _, frames = gostack_binary()
    assert frames["recSmall"] <= 128 < frames["recMedium"] <= 4096 < frames["recLarge"]
    assert frames_of("\t0x0000 00000 (x.go:1)\tTEXT\tmain.f(SB), ABIInternal, $96-8\n") == {"f": 96}


def test_the_contiguous_model_sizes_the_stack_as_real_go_does():
    edges = first_growth_depths()
    assert set(edges) == {"small", "medium"}  # the large frame grows the stack at depth 0 already
    rows = []
    for variant in ("small", "medium", "large"):
        edge = edges.get(variant, 1)
        rows += measure_real_stacks(sorted({0, edge - 1, edge, 40, 700}), variants=[variant])
    assert len(rows) >= 13
    for row in rows:
        where = f"{row['variant']} depth {row['depth']}"
        assert row["real_stack_bytes"] == row["model_stack_bytes"], where
        assert row["real_used_at_probe"] == row["model_used_at_probe"], where  # the frames add up, byte for byte
        if row["real_stack_bytes"] >= 32 << 10:  # a stack with a span of its own: the runtime's metric agrees
            assert row["stackinuse_delta"] == row["real_stack_bytes"], where
    by_depth = {(row["variant"], row["depth"]): row["real_stack_bytes"] for row in rows}
    for variant, edge in edges.items():  # the first doubling happens exactly where the model says
        assert (by_depth[variant, edge - 1], by_depth[variant, edge]) == (2048, 4096)


def test_bad_depths_are_refused():
    with pytest.raises(ValueError, match="depth must be an integer"):
        measure_real_stacks([-1])
