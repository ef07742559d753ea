"""What a kind of data needs from the shared stages: how to train, load and evaluate a model on it.

`make_task(cfg, data)` picks the task from the loaded dataset's type, so stages never switch on names.
"""

from grass.tasks.base import Task
from grass.tasks.factory import make_task

__all__ = ["Task", "make_task"]
