"""The `report` section: the paper's front matter and the accuracy it is judged against."""

from __future__ import annotations

import re
from typing import Self

from pydantic import StrictInt, StrictStr, model_validator

from transfer.params.fields import Number, Section, rule
from transfer.runtime.errors import ParamError


class ReportParams(Section):
    """`report`: the paper's front matter and the accuracy target it is judged against."""

    title: StrictStr = ""
    author: StrictStr = "Anonymous"
    affiliation: StrictStr = ""
    date: StrictStr = ""
    target_accuracy: Number | None = rule(None, "null (no target) or a number in (0, 1]", gt=0,
                                          le=1)
    examples: StrictInt = rule(24, "an integer in [1, 100]", ge=1, le=100)
    description: StrictStr = ""
    tags: StrictStr = "machinelearning, keras, tensorflow, python"
    site_url: StrictStr = ""
    cover_image: StrictStr = ""
    repository: StrictStr = ""

    @model_validator(mode="after")
    def _publishable(self) -> Self:
        """dev.to's tag rule; absolute http(s) URLs."""
        tags = [t.strip() for t in self.tags.split(",") if t.strip()]
        if len(tags) > 4 or not all(re.fullmatch(r"[a-z0-9]+", t) for t in tags):
            raise ParamError(f"report.tags={self.tags!r} is not allowed: at most 4 comma-"
                             "separated tags of lowercase letters and digits (dev.to's rule)")
        for key in ("site_url", "cover_image", "repository"):
            value = getattr(self, key)
            if value and not re.match(r"https?://", value):
                raise ParamError(f"report.{key}={value!r} is not allowed: '' or an absolute "
                                 "http(s) URL")
        return self
