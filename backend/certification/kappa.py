"""Agreement between two assessors: Cohen's weighted kappa with quadratic weights (pure)."""

from __future__ import annotations

from collections.abc import Sequence


def weighted_kappa(a: Sequence[int], b: Sequence[int], categories: int = 5) -> float | None:
    """Quadratic weighted kappa of two raters' ratings (0..categories-1) of the same items.

    1 is perfect agreement, 0 what chance would give, below 0 worse than chance. None when
    there are no pairs, or when both raters used one and the same category throughout
    (the expected disagreement is 0: kappa is undefined).
    """
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    n = len(a)
    if n == 0:
        return None
    k = categories
    for x in (*a, *b):
        if not 0 <= x < k:
            raise ValueError(f"rating {x} outside 0..{k - 1}")
    observed = [[0.0] * k for _ in range(k)]
    for x, y in zip(a, b, strict=True):
        observed[x][y] += 1
    row = [sum(observed[i]) for i in range(k)]
    col = [sum(observed[i][j] for i in range(k)) for j in range(k)]
    weight = [[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)]
    seen = sum(weight[i][j] * observed[i][j] for i in range(k) for j in range(k))
    chance = sum(weight[i][j] * row[i] * col[j] / n for i in range(k) for j in range(k))
    if chance == 0:
        return None
    return 1.0 - seen / chance
