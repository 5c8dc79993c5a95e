"""Online loss learning: adapt a `LearnedLoss` during the user's own training run.

After AdaLFL (Raymond, Chen, Xue and Zhang, "Online Loss Function Learning", arXiv
2301.13247; "Meta-Learning Adaptive Loss Functions", TMLR 2025): after every update of the
model, the loss network is updated by the gradient of the task objective of the model one
optimizer step ahead. See docs/online.md.

- `OnlineLossTrainer`: the trainer a training loop calls once per minibatch.
- `learnedloss.online.lookahead`: the step as pure functions (look-ahead, validation
  objective, meta-gradient).
- `learnedloss.online.forms`: how the loss enters the model's update (``form=``):
  `ScaleNormalizedLoss` (the shape only) and `SampleWeightedLoss` (Meta-Weight-Net).
- `loss_shape`, `ShapeRecorder`: the loss's shape over the residual, during training.
"""

from learnedloss.online.forms import SampleWeightedLoss, ScaleNormalizedLoss
from learnedloss.online.shapes import ShapeRecorder, loss_shape
from learnedloss.online.trainer import OnlineLossTrainer

__all__ = [
    "OnlineLossTrainer",
    "SampleWeightedLoss",
    "ScaleNormalizedLoss",
    "ShapeRecorder",
    "loss_shape",
]
