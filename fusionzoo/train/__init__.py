"""Training: ``RunConfig``, ``FusionModel``, the loss, metrics and ``train_run``."""

from fusionzoo.train.config import RunConfig
from fusionzoo.train.inputs import FeatureData, TrainingData

__all__ = ["FeatureData", "RunConfig", "TrainingData"]
