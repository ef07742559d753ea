"""grass's Python API (README "Python API"): ClassifierTask / CausalLMTask, then
Attributor(task, compressor, proj_dim, tda, damping).cache(train_loader).attribute(query_loader)."""

from grass.api.attributor import Attributor
from grass.api.tasks import AttributionTask, CausalLMTask, ClassifierTask
from grass.targets import Target

__all__ = ["Attributor", "AttributionTask", "CausalLMTask", "ClassifierTask", "Target"]
