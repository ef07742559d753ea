"""The task that fits a loaded dataset."""

from omegaconf import DictConfig

from grass.data.classification import ClassificationData
from grass.data.text import TextBlocks
from grass.errors import GrassError
from grass.tasks.base import Task


def make_task(cfg: DictConfig, data) -> Task:
    from grass.tasks.classification import ClassificationTask
    from grass.tasks.language import LanguageTask

    if isinstance(data, ClassificationData):
        return ClassificationTask(cfg, data)
    if isinstance(data, TextBlocks):
        return LanguageTask(cfg, data)
    raise GrassError(f"dataset={cfg.dataset.name} loaded a {type(data).__name__}; grass knows classification "
                     "data (ClassificationData) and text blocks (TextBlocks)")
