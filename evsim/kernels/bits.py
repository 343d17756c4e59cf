"""Bit operations for the compiled loops: a block's neurons at threshold as a bit mask, and the
index of a mask's lowest set bit.

The threshold scan of the event engine (``evsim.sim.engine._deliver_uniform``) turns one
vectorised comparison of a block of neurons into a bit mask and visits its set bits, lowest
(first neuron) first, instead of testing the neurons one by one.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# index of the lowest set bit of a 32-bit value from its isolated bit times a de Bruijn constant
_DEBRUIJN32 = 0x077CB531
_DEBRUIJN32_INDEX = np.array([0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
                              31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9], dtype=np.int64)


@njit(cache=True, _nrt=False, inline="always")
def at_level_mask(values, level):
    """Bit k set when ``values[k]`` ≥ ``level`` (at most 64 values): one vectorised comparison."""
    mask = 0
    for k in range(values.shape[0]):
        mask |= (1 if values[k] >= level else 0) << k
    return mask


@njit(cache=True, inline="always")
def lowest_set_bit_portable(mask):
    """Index of the lowest set bit of ``mask`` (0 < mask < 2**32), without a machine instruction."""
    isolated = mask & -mask
    return _DEBRUIJN32_INDEX[((isolated * _DEBRUIJN32) & 0xFFFFFFFF) >> 27]


try:  # LLVM's count-trailing-zeros (one instruction, tzcnt), from numba's internal intrinsics
    from numba.cpython.unsafe.numbers import trailing_zeros as lowest_set_bit
except ImportError:  # pragma: no cover - a numba without it: the portable version, same results
    lowest_set_bit = lowest_set_bit_portable
