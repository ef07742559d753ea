"""Build the configured model for a dataset and load trained weights."""

from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from grass.data.classification import ClassificationData
from grass.instantiate import instantiate_node
from grass.io import load_checked


def build_classifier(model_cfg: DictConfig, data: ClassificationData) -> nn.Module:
    """The model with its input and class counts taken from the data."""
    return instantiate_node(model_cfg, "model", in_features=data.num_features, num_classes=data.num_classes)


def load_classifier(model_cfg: DictConfig, data: ClassificationData, path: Path) -> nn.Module:
    model = build_classifier(model_cfg, data)
    model.load_state_dict(load_checked(path, hint="run stage=finetune (or stage=all) first"))
    return model.eval()
