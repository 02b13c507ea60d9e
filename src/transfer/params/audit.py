"""The `audit` section: how test images are matched with near-copies among the others."""

from __future__ import annotations

from pydantic import StrictInt

from transfer.params.fields import Number, Section, StageParams, rule


class AuditParams(Section):
    """`audit`: candidates per test image and descriptor, the shifts tried, and the two
    thresholds a near copy passes (`transfer.data.near_copies`)."""

    candidates: StrictInt = rule(3, "an integer >= 1", ge=1)
    max_shift: StrictInt = rule(3, "an integer in [0, 8]", ge=0, le=8)
    min_correlation: Number = rule(0.9, "a number in (0, 1]", gt=0, le=1)
    min_cosine: Number = rule(0.8, "a number in [-1, 1]", ge=-1, le=1)


class AuditStageParams(StageParams):
    """What `audit` reads."""

    audit: AuditParams = AuditParams()
