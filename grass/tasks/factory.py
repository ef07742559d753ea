"""The task that fits a loaded dataset."""

from omegaconf import DictConfig

from grass.data.classification import ClassificationData
from grass.data.music import MusicSequences
from grass.data.text import TextBlocks
from grass.errors import GrassError
from grass.tasks.base import Task


def make_task(cfg: DictConfig, data) -> Task:
    from grass.tasks.classification import ClassificationTask
    from grass.tasks.language import LanguageTask
    from grass.tasks.music import MusicTask

    if isinstance(data, ClassificationData):
        return ClassificationTask(cfg, data)
    if isinstance(data, TextBlocks):
        return LanguageTask(cfg, data)
    if isinstance(data, MusicSequences):
        return MusicTask(cfg, data)
    raise GrassError(f"dataset={cfg.dataset.name} loaded a {type(data).__name__}; grass knows classification "
                     "data (ClassificationData), text blocks (TextBlocks) and music event windows (MusicSequences)")
