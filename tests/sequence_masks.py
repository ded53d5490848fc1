"""The step masks the recurrent tests share: 4 rows of 6 steps, padded on either side."""

from __future__ import annotations

import numpy as np

BATCH, TIMESTEPS = 4, 6


def right_padded_mask():
    mask = np.ones((BATCH, TIMESTEPS), dtype=bool)
    mask[1, 4:] = False
    mask[2, 1:] = False
    return mask


def left_padded_mask():
    mask = np.ones((BATCH, TIMESTEPS), dtype=bool)
    mask[0, :2] = False
    mask[1, :] = False  # a fully masked row
    mask[3, :5] = False
    return mask
