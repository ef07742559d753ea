"""Build the configured model for a dataset and load trained weights."""

import inspect
from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from grass.artifacts import load_artifact
from grass.data.classification import ClassificationData
from grass.errors import GrassError
from grass.instantiate import instantiate_node, plain_node

# Keys of a language-model config that describe the model to grass and are not builder arguments:
# `pretrained` (true: the builder's weights are the base; grass never pretrains one) and `tokenizer`
# (the model's own tokenizer, which text datasets use by default: `dataset.tokenizer` follows it).
LM_FRAMEWORK_KEYS = ("pretrained", "tokenizer")


# Keys of a classifier config that are not constructor arguments: `target` (model=custom: the import path that
# `_target_` interpolates).
CLASSIFIER_FRAMEWORK_KEYS = ("target",)


def build_classifier(model_cfg: DictConfig, data: ClassificationData) -> nn.Module:
    """The model with its input and class counts (in_features, num_classes) taken from the data, each passed when
    the constructor takes it (a named parameter or **kwargs); GrassError for model=custom without model.target."""
    spec = plain_node(model_cfg)
    if "target" in spec and not spec.get("target"):
        raise GrassError("model=custom needs model.target=<import path of your nn.Module class>, "
                         "e.g. model.target=mypkg.models.Net (constructor arguments as +model.<arg>=<value>)")
    spec = {k: v for k, v in spec.items() if k not in CLASSIFIER_FRAMEWORK_KEYS}
    sizes = {"in_features": data.num_features, "num_classes": data.num_classes}
    return instantiate_node(spec, "model", **{k: v for k, v in sizes.items() if _accepts(spec["_target_"], k)})


def _accepts(target: str, arg: str) -> bool:
    """Whether the callable at import path `target` takes keyword `arg` (unknown signature: assume it does)."""
    from hydra.utils import get_method

    try:
        params = inspect.signature(get_method(target)).parameters
    except Exception:  # not importable or no signature: instantiate_node reports the real problem
        return True
    return arg in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


FINETUNE_HINT = "run stage=finetune (or stage=all) to train it again"


def load_classifier(model_cfg: DictConfig, data: ClassificationData, path: Path, settings: dict | None) -> nn.Module:
    """The trained classifier at `path`, checked against its checksum and the expected models settings."""
    model = build_classifier(model_cfg, data)
    model.load_state_dict(load_artifact(path, settings, hint=FINETUNE_HINT))
    return model.eval()


def is_pretrained(model_cfg: DictConfig) -> bool:
    """True when the model config says its builder's weights are already pretrained (`pretrained: true`)."""
    return bool(model_cfg.get("pretrained", False))


def build_lm(model_cfg: DictConfig, **kwargs) -> nn.Module:
    """The configured causal LM (`_target_` called with the config's builder arguments and **kwargs)."""
    spec = {k: v for k, v in plain_node(model_cfg).items() if k not in LM_FRAMEWORK_KEYS}
    return instantiate_node(spec, "model", **kwargs)
