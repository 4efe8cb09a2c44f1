import numpy as np

import allocators
from bench import heapmap
from workloads.trace import from_rows


def test_occupancy_of_a_hand_made_trace():
    # pool of 64 B blocks: block 0 at [0, 64), block 1 at [64, 128); block 0 freed halfway.
    trace = from_rows([(0, 0, 64, 0), (0, 1, 64, 0), (1, 0, 0, 0), (0, 2, 32, 0)])
    log = allocators.create("pool", 1 << 20, block_size=64).replay(trace)
    image, footprint, address_max = heapmap.occupancy(trace, log, time_bins=4, address_bins=2)
    assert address_max == 128
    # one row per time bin; address bins are [0, 64) and [64, 128)
    assert np.allclose(image, [[1, 0], [1, 1], [0, 1], [1, 1]])
    assert footprint.tolist() == [64, 128, 128, 128]


def test_realloc_moves_coverage():
    trace = from_rows([(0, 0, 16, 0), (0, 1, 16, 0), (2, 0, 64, 0)])
    log = allocators.create("linear", 1 << 20).replay(trace)
    image, _, address_max = heapmap.occupancy(trace, log, time_bins=3, address_bins=6)
    assert address_max == 96  # the realloc moved object 0 to [32, 96)
    assert np.allclose(image[-1] * 16, [0, 16, 16, 16, 16, 16])
