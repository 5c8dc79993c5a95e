"""Meta-train a loss on your own tasks: a task family built from real data.

Each task predicts diabetes progression (scikit-learn's bundled data set: 442 patients, 10
features, no download) from a random subset of 4 features, with 64 patients to train on and
64 held-out patients to score. The family is the ~20 lines of `DiabetesSubsets`; the rest
is the library. It meta-trains a loss that starts as exactly MSE, then compares it with MSE,
each at its own tuned learning rate, on held-out tasks.

    python examples/custom_tasks.py [--outer-steps 100]
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_diabetes
from torch import nn

from learnedloss import LearnedLoss, MetaTrainer
from learnedloss.evaluation.baselines import standard_losses
from learnedloss.evaluation.protocol import evaluate, lr_grid
from learnedloss.starts import mse_start_config
from learnedloss.tasks import TaskBatch, TaskFamily


class DiabetesSubsets(TaskFamily):
    """Regress standardized diabetes progression on 4 random features of 128 patients."""

    def __init__(self, n_features: int = 4, n_train: int = 64, n_query: int = 64):
        x, y = load_diabetes(return_X_y=True)
        self.x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
        self.y = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32).unsqueeze(-1)
        self.n_features, self.n_train, self.n_query = n_features, n_train, n_query

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        n = self.n_train + self.n_query
        rows = torch.rand(n_tasks, len(self.x), generator=generator).argsort(1)[:, :n]
        cols = torch.rand(n_tasks, self.x.shape[1], generator=generator).argsort(1)
        cols = cols[:, : self.n_features]
        x = self.x[rows.unsqueeze(-1), cols.unsqueeze(1)]  # (T, n, n_features)
        y = self.y[rows]  # (T, n, 1)
        k = self.n_train
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def make_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.n_features, 32), nn.ReLU(), nn.Linear(32, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outer-steps", type=int, default=100)
    parser.add_argument("--inner-steps", type=int, default=20)
    parser.add_argument("--out", help="save the meta-trained loss here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    tasks = DiabetesSubsets()
    torch.manual_seed(0)
    loss = LearnedLoss(mse_start_config(hidden=(32, 32)))
    trainer = MetaTrainer(
        loss,
        tasks,
        inner_steps=args.inner_steps,
        inner_lr=0.05,
        meta_batch_size=16,
        aggregate="log-mean",
        validate_every=10,
    )
    learned = trainer.fit(args.outer_steps)
    print(
        f"best meta-validation {trainer.best_score:.4f} (log-mean MSE) at step "
        f"{trainer.best_step}; the loss started as MSE"
    )

    losses = {"MSE": nn.MSELoss(), "learned": learned, **standard_losses()}
    result = evaluate(
        losses,
        tasks,
        steps=args.inner_steps,
        n_tasks=50,
        n_inits=2,
        lrs=lr_grid(1e-3, 1.0),
        tune_tasks=16,
    )
    print(result.table())
    if args.out:
        learned.save_pretrained(args.out)
        print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
