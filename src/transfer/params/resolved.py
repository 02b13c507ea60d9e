"""What a stage ran with: its params sections with every `auto` replaced, written once by the
stage that resolves them and read by every later reader (the next stages, the report, the
diff), which never derive them again.

`metrics/resolved/<stage>.json`, one per stage that resolves something (`fetch`, `train`,
`finetune`), declared among its outs in dvc.yaml:

    {"params": {"<section>": {"<key>": value, ...}, ...},  # the sections it owns, no `auto`
     "how": {"<fact>": value, ...}}                        # how it ran (stage-specific)

`fetch` writes `model` (its `input_size`); `train` writes `train` (its `batch_size`);
`finetune` writes `finetune` (its `layers`, `batch_size`, `learning_rate`) and, under `how`,
`cached_stride` (the recipe's cut, when `layers: auto` chose one) and `cache_bytes` (the
activation cache's size on disk, 0 without one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from transfer.runtime.files import read_json, write_json
from transfer.runtime.paths import RESOLVED


def write_resolved(stage: str, sections: Mapping[str, BaseModel], how: Mapping | None = None,
                   root: Path = Path(".")) -> None:
    """Record that `stage` ran with `sections` (each a params section, `auto` resolved)."""
    write_json(root / RESOLVED / f"{stage}.json",
               {"params": {name: section.model_dump(mode="json")
                           for name, section in sections.items()}, "how": dict(how or {})})


def read_resolved(stage: str) -> dict:
    """The record `stage` wrote (see the module's docstring)."""
    return read_json(RESOLVED / f"{stage}.json")


def with_resolved(params: BaseModel, records: list[Mapping]) -> BaseModel:
    """`params` with each section that one of `records` holds replaced by the record's."""
    sections = {name: type(getattr(params, name)).model_validate(values)
                for record in records for name, values in record["params"].items()}
    return params.model_copy(update=sections)
