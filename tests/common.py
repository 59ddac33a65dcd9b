"""What several test packages share: where the repository is, and float32 tolerances."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
"""The repository root."""

# The same value computed in another float32 evaluation (another batch or chunk, context
# order, thread split, cached context): the math is equal, but float32 kernels block their
# sums by the tensors' shapes (AVX2 vs AVX-512 tails, thread splits), so each op may round
# differently, by <= 1 ulp = eps * |value| with eps = 2**-23 = 1.19e-7. Activations are O(1)
# after every norm and a logit passes a handful of reductions per layer, so logits differ by
# a few eps (measured on AVX-512: <= 5 eps * max|logit|, |logit| < 1 for the small random
# models of the tests); the float64 softmax only shrinks that (|dp| <= |d logit| / 2 for two
# classes). 16 eps leaves a >3x margin for any CPU's blocking and stays ~1,000x below what
# a leak between rows or episodes changes (> 1e-4), so such a bug still fails.
FLOAT32_EPS = float(np.finfo(np.float32).eps)
BATCHING_ATOL = 16 * FLOAT32_EPS  # 1.9e-6
