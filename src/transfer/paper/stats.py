"""The paper's statistics, from scipy: Wilson's score interval and McNemar's exact test."""

from __future__ import annotations

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
