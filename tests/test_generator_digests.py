"""Generated traces are exactly those of tests/data/trace_digests.json (recorded before streaming generation)."""

from __future__ import annotations

import json

import pytest

from tests import trace_digests
from workloads import catalog

EXPECTED = json.loads(trace_digests.PATH.read_text())


@pytest.mark.parametrize("spec", trace_digests.specs())
def test_generated_traces_are_unchanged(spec):
    for n_ops in trace_digests.SIZES:
        for seed in trace_digests.SEEDS:
            key = trace_digests.key(spec, n_ops, seed)
            trace = catalog.make(spec, n_ops=n_ops, seed=seed)
            assert trace_digests.digest(trace) == EXPECTED[key], f"{key}: the trace changed"
