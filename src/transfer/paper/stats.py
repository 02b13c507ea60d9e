"""The paper's statistics, from scipy: Wilson's score interval and McNemar's exact test."""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import binomtest


def wilson_interval(correct: int, count: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (`confidence`: 95% by default)."""
    if count == 0:
        return 0.0, 1.0
    ci = binomtest(correct, count).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value of b vs c discordant pairs: Binomial(b + c, 1/2)."""
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def discordant(first: Sequence[bool], second: Sequence[bool]) -> tuple[list[int], list[int]]:
    """McNemar's discordant pairs of two models scored on the same images (True: right): the
    indices only the first gets right, and those only the second gets right."""
    pairs = list(zip(first, second, strict=True))
    return ([i for i, (x, y) in enumerate(pairs) if x and not y],
            [i for i, (x, y) in enumerate(pairs) if y and not x])
