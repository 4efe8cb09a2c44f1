"""The one pairing table (bench.pairs): every real allocator has a line, and every reader uses the same table."""

from __future__ import annotations

import pytest

import allocators
from bench import fidelity, pairs
from bench.programs import predict
from bench.real import ALLOCATORS
from bench.scenarios import scaling


def test_every_real_allocator_has_one_line_and_every_model_exists():
    assert tuple(pairs.MODEL_OF_REAL) == ALLOCATORS
    for real, spec in pairs.paired():
        name, params = allocators.parse_spec(spec)
        assert name in allocators.names(), real
        allocators.create(spec, 1 << 24)  # the spec builds (its preset exists)
    assert pairs.model_of("tcmalloc") == "tcmalloc:gperftools" and pairs.model_of("scudo") is None
    with pytest.raises(ValueError, match="unknown real allocator"):
        pairs.model_of("hoard")


def test_fidelity_programs_and_scaling_read_the_same_table():
    assert tuple((pair.real, pair.model) for pair in fidelity.PAIRS) == pairs.paired()
    assert fidelity.REALS == (*(real for real, _ in pairs.paired()), "go")
    assert predict.MODEL_OF == dict(pairs.paired())
    assert scaling.MODEL_OF_REAL is pairs.MODEL_OF_REAL
