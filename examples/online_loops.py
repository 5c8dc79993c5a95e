"""The online learner in a plain PyTorch loop with early stopping, and in Lightning.

scikit-learn's diabetes data with 20% outlier training targets (clean validation and test
targets; examples/online_regression.py). The plain loop trains the same MLP with

- ``nn.MSELoss()`` and a ``torch.optim`` optimizer, early-stopped on the validation split;
- `OnlineLossTrainer` in the forms named by ``--forms`` (``sample-weights``: Meta-Weight-Net's
  per-sample weighting of MSE; ``shape``: a learned loss whose scale is fixed; ``loss``),
  adapting on batches of the same validation split and early-stopped on it too,

and prints the clean test MSE at the best validation check, mean ± std over ``--seeds``.
``--lightning`` also trains the online learner inside a ``LightningModule`` (manual
optimization: ``trainer.step`` is the whole training step). ``--weights PNG`` plots the
sample weights that the ``sample-weights`` form learned over the per-sample loss during the
first seed's run. Under a minute on one core:

    python examples/online_loops.py
    python examples/online_loops.py --optimizer adam --lr 0.003 --lightning
    python examples/online_loops.py --weights docs/online-sample-weights.png
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from online_regression import batches, load_data, make_model, mse
from torch import nn

from learnedloss.online import OnlineLossTrainer


def early_stopped(train_step, model, data, steps: int, check_every: int = 25) -> float:
    """Run ``train_step(x, y)`` on ``steps`` shuffled batches; return the test MSE at the best
    validation check."""
    best_val, best_test = float("inf"), float("inf")
    stream = batches(*data["train"], 32, seed=0)
    for step in range(1, steps + 1):
        train_step(*next(stream))
        if step % check_every == 0 or step == steps:
            val = mse(model, *data["val"])
            if val < best_val:
                best_val, best_test = val, mse(model, *data["test"])
    return best_test


def validation_batches(data: dict, rows: int = 64) -> list:
    x, y = data["val"]
    return [(x[i : i + rows], y[i : i + rows]) for i in range(0, len(x), rows)]


def plain_mse(data, seed, args) -> float:
    model = make_model(seed)
    make = torch.optim.SGD if args.optimizer == "sgd" else torch.optim.Adam
    optimizer, loss_fn = make(model.parameters(), lr=args.lr), nn.MSELoss()

    def step(x, y):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    return early_stopped(step, model, data, args.steps)


class WeightRecorder:
    """A callback that records the learned sample weights over ``losses`` at ``at`` steps."""

    def __init__(self, losses: torch.Tensor, at) -> None:
        self.losses, self.at, self.weights = losses, set(at), {}

    def __call__(self, trainer, record) -> None:
        if record["step"] in self.at:
            with torch.no_grad():
                self.weights[record["step"]] = trainer.loss.weights(self.losses)


def plot_weights(recorder: WeightRecorder, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for step, weights in sorted(recorder.weights.items()):
        ax.plot(recorder.losses, weights, label=f"after step {step}")
    ax.axhline(1.0, color="k", ls="--", lw=1, label="MSE (all weights 1)")
    ylabel = "relative weight (mean 1 over this range)"
    ax.set(xlabel="per-sample squared error", ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def online(data, seed, args, form: str, callbacks=()) -> float:
    model = make_model(seed)
    trainer = OnlineLossTrainer(
        model,
        "mse",
        optimizer=args.optimizer,
        lr=args.lr,
        meta_lr=1e-2,
        adapt_every=5,
        form=form,
        validation=validation_batches(data),
        callbacks=callbacks,
        seed=seed,
    )
    return early_stopped(lambda x, y: trainer.step(x, y), model, data, args.steps)


def lightning_run(data, args) -> None:
    """The online learner as a LightningModule's whole training step."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class OnlineRegressor(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False  # OnlineLossTrainer updates the model
            self.body = make_model(0)
            self.online = None

        def on_fit_start(self):  # built here, once the model is on its device
            self.online = OnlineLossTrainer(
                self.body,
                "mse",
                optimizer=args.optimizer,
                lr=args.lr,
                meta_lr=1e-2,
                adapt_every=5,
                form="sample-weights",
                validation=validation_batches(data),
            )

        def training_step(self, batch, batch_idx):
            record = self.online.step(*batch)
            self.log("train_loss", record["train_loss"], prog_bar=True)

        def validation_step(self, batch, batch_idx):
            self.log("val_mse", nn.functional.mse_loss(self.body(batch[0]), batch[1]))

        def configure_optimizers(self):
            return None  # the online learner holds the model's optimizer

    loader = DataLoader(TensorDataset(*data["train"]), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(*data["val"]), batch_size=len(data["val"][0]))
    module = OnlineRegressor()
    L.Trainer(
        max_epochs=max(1, round(args.steps / len(loader))),  # global_step counts no step here
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module, loader, val_loader)
    print(f"Lightning, online sample-weights: test MSE {mse(module.body, *data['test']):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--forms", nargs="+", default=["sample-weights", "shape"])
    parser.add_argument("--lightning", action="store_true")
    parser.add_argument("--weights", metavar="PNG", help="plot the learned sample weights here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    datasets = [load_data(seed, outliers=0.2) for seed in range(args.seeds)]
    rows = {"MSE + early stopping": [plain_mse(d, s, args) for s, d in enumerate(datasets)]}
    for form in args.forms:
        rows[f"online, {form} + early stopping"] = [
            online(d, s, args, form) for s, d in enumerate(datasets)
        ]
    print(f"| method ({args.optimizer}, lr {args.lr:g}) | clean test MSE at best validation |")
    print("|---|---|")
    for name, values in rows.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| {name} | {statistics.fmean(values):.4f} ± {std:.4f} |")
    if args.weights:
        at = sorted({args.steps // 10, args.steps // 2, args.steps})
        recorder = WeightRecorder(torch.linspace(0, 10, 101), at)
        online(datasets[0], 0, args, "sample-weights", callbacks=[recorder])
        title = f"learned sample weights, diabetes, 20% outliers ({args.optimizer} lr {args.lr:g})"
        plot_weights(recorder, args.weights, title)
    if args.lightning:
        lightning_run(datasets[0], args)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
