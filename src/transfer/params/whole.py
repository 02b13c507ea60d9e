"""The whole of params.yaml, for what reads every section: the report, the study, the tests."""

from __future__ import annotations

from pathlib import Path

from transfer.params.audit import AuditParams
from transfer.params.data import DataParams
from transfer.params.evaluation import EvaluateParams
from transfer.params.features import FeaturesParams
from transfer.params.fields import StageParams
from transfer.params.fields import load_params as load
from transfer.params.fields import parse_params as parse
from transfer.params.model import ModelParams
from transfer.params.report import ReportParams
from transfer.params.training import FinetuneParams, TrainParams
from transfer.runtime.paths import PARAMS


class Params(StageParams):
    """The whole of params.yaml."""

    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    features: FeaturesParams = FeaturesParams()
    audit: AuditParams = AuditParams()
    train: TrainParams = TrainParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()


def load_params(path: Path = PARAMS) -> Params:
    """Read, type-check and validate all of params.yaml; raise ParamError on the first problem."""
    return load(Params, path)


def parse_params(raw: dict) -> Params:
    """All of params.yaml given as a mapping, validated; ParamError on the first problem."""
    return parse(Params, raw)
