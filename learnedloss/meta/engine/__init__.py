"""The batched inner-loop engine: many small models trained as one.

Weights are stacked ``(tasks, ...)`` in one flat tensor, layers run as ``bmm``/``baddbmm``,
and SGD and Adam update all tasks in a few fused operations: no Python per task and no
``vmap`` per operation. It runs the MLPs and the small CNN the families train; anything else
raises `EngineUnsupported` with a one-line reason, and the caller falls back to the vmap path
(`learnedloss.meta.inner.InnerLoop`). `EngineExecution` is what ``MetaTrainer(path="engine")``
runs its inner loops with.
"""

from learnedloss.meta.engine.errors import EngineUnsupported
from learnedloss.meta.engine.execution import ENGINE_PATH, EngineExecution
from learnedloss.meta.engine.loop import BatchedInnerLoop, engine_refusal, minibatch_indices
from learnedloss.meta.engine.losses import stacked_loss_apply
from learnedloss.meta.engine.models import StackedModel, compile_model
from learnedloss.meta.engine.optimizers import StackedAdam, StackedSGD, stacked_optimizer

__all__ = [
    "ENGINE_PATH",
    "BatchedInnerLoop",
    "EngineExecution",
    "EngineUnsupported",
    "StackedAdam",
    "StackedModel",
    "StackedSGD",
    "compile_model",
    "engine_refusal",
    "minibatch_indices",
    "stacked_loss_apply",
    "stacked_optimizer",
]
