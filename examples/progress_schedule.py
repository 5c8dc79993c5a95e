"""A loss that changes over training: meta-train one, then train with it in plain PyTorch, with
and without the one-line schedule (docs/progress.md).

The loss is monotone in the size of the error at every progress (sane by construction) and
reads the training progress as its second input: one influence curve at progress 0, 0.5
and 1, blended in between, each starting as exactly MSE. It is meta-trained by CMA-ES on the
robust-regression family (real and synthetic tables, 0-40% corrupted targets), whose inner
loops set the progress at every step. Then fresh MLPs train on a table the loss never saw
(sklearn's diabetes, 20% of the training targets replaced by outliers), in an ordinary
training loop, with:

- ``nn.MSELoss()`` and ``nn.HuberLoss()`` (δ = 1, in standardized units);
- the learned loss with no extra line (its default progress, the shape a run ends with);
- the learned loss with ``loss_fn.progress(step, total)`` before each step.

Each row is the clean query MSE, mean ± std over seeds, all at the same Adam lr (not tuned per
loss: `benchmarks/adaptive_losses.py` makes the tuned comparison).

    python examples/progress_schedule.py                       # about 3 minutes on one core
    python examples/progress_schedule.py --loss runs/rr-p      # a progress loss you have
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn

from learnedloss import LearnedLoss
from learnedloss.families.recipe import meta_train
from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe
from learnedloss.families.robust_regression.transfer import held_out_tasks


def meta_trained_loss(outer_steps: int, seed: int) -> LearnedLoss:
    """A monotone loss over (scaled_residual, progress), meta-trained on the engine by CMA-ES."""
    recipe = RobustRegressionRecipe(
        parameterization="monotone",
        inputs=("scaled_residual", "progress"),
        grid_knots=(9, 3),
        grid_range=((0.0, 8.0), (0.0, 1.0)),
        meta_gradient="cmaes",
        cmaes_population=8,
        cmaes_sigma=0.3,
        path="engine",
        meta_batch_size=8,
        outer_steps=outer_steps,
        inner_lr_range=(0.002, 0.05),
        validate_every=max(1, outer_steps // 4),
        validation_size=8,
        keep="best",
        seed=seed,
    )
    with tempfile.TemporaryDirectory() as run_dir:
        loss, _ = meta_train(recipe, run_dir=run_dir, progress=False)
    return loss.freeze()


def train(make_model, loss_fn, data, steps: int, lr: float, schedule: bool) -> float:
    """An ordinary training loop; the clean query MSE after ``steps`` Adam steps."""
    x_train, y_train, x_query, y_query = data
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        if schedule:
            loss_fn.progress(step, steps)  # the one line
        loss = loss_fn(model(x_train), y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(x_query), y_query))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", help="a progress loss to use (name, path or Hub id)")
    parser.add_argument("--outer-steps", type=int, default=40, help="CMA-ES generations")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--outliers", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.loss:
        learned = LearnedLoss.from_pretrained(args.loss)
    else:
        learned = meta_trained_loss(args.outer_steps, seed=0)
    if not learned.config.reads_progress:
        parser.error(f"{args.loss} does not read training progress")
    tasks = held_out_tasks("diabetes", args.outliers)
    rows = {
        "nn.MSELoss()": (nn.MSELoss(), False),
        "nn.HuberLoss()": (nn.HuberLoss(), False),
        "learned, no extra line": (learned, False),
        "learned, loss_fn.progress(step, total)": (learned, True),
    }
    scores: dict[str, list[float]] = {name: [] for name in rows}
    for seed in range(args.seeds):
        batch = tasks.sample(1, torch.Generator().manual_seed(seed))
        data = (batch.x_train[0], batch.y_train[0], batch.x_query[0], batch.y_query[0])
        for name, (loss_fn, schedule) in rows.items():
            learned.progress(1, 1)  # the row without the line starts where a new loss does
            torch.manual_seed(seed)  # every loss trains the same initializations
            scores[name].append(
                train(tasks.make_model, loss_fn, data, args.steps, args.lr, schedule)
            )
    print(
        f"diabetes, {args.outliers:.0%} outlier targets, {args.steps} Adam steps at lr "
        f"{args.lr:g}, clean query MSE over {args.seeds} seeds (standardized units)\n"
    )
    print(f"| {'loss':<40} | query MSE |\n|{'-' * 42}|-----------|")
    for name, values in scores.items():
        t = torch.tensor(values)
        print(f"| {name:<40} | {t.mean():.3f} ± {t.std():.3f} |")


if __name__ == "__main__":
    main()
