"""Online loss learning under the fair protocol of issue 29: every method early-stopped on the
validation split the online learner adapts on, tuned, 5 seeds, last- and best-epoch scores.

    nice -n 10 python benchmarks/online_fair.py --data diabetes            # regression
    nice -n 10 python benchmarks/online_fair.py --data digits              # classification
    python benchmarks/online_fair.py --data diabetes --seeds 2 --steps 200 --optimizers sgd \\
        --online shape --shapes shapes.png                                  # a quick look

Data (scikit-learn's bundled sets, no download): ``diabetes`` (442 patients, 10 features;
a fraction ``--corruption`` (default 0.2) of the *training* targets replaced by N(0, 5²)
draws; examples/online_regression.py) or ``digits`` (1797 8×8 images, 10 classes; a fraction
``--corruption`` (default 0.4) of the training labels flipped to another class;
benchmarks/online_classification.py). Validation and test targets are clean; each seed
draws its own split, corruption, initialization and batch order, so rows are paired by seed.

Protocol, for each optimizer (SGD, Adam):

- every run is checked on the whole validation split every ``--eval-every`` steps and at the
  end; its *best-epoch* score is the test score at its best validation check (early
  stopping), its *last-epoch* score the test score at the end;
- each method is tuned over its grid (lr, and a shape parameter where it has one) by the
  mean best validation score over seeds; the row reports the test scores of that setting,
  mean ± std over seeds;
- baselines: the standard loss (MSE or cross-entropy) at a constant lr and with a cosine lr
  schedule (lr tuned for each), the rescaled control 1.5 × the standard loss (its gap to the
  standard loss is the noise of tuning: the "control band"), and the tuned robust losses
  (Huber and L1; GCE and SCE);
- the online learner (`OnlineLossTrainer`) in the forms named by ``--online``, at the lrs of
  ``--online-lrs`` (default: the tuned standard loss's lr and, unless
  ``--online-lr-count 1``, the next one up) × meta-lrs
  {1e-3, 1e-2}, adapting every ``--adapt-every`` steps on ``--val-batch`` rows drawn from the
  same validation split.

The time column is each row's mean wall time per run at its tuned setting (validation checks
included) over that of the early-stopped standard loss, one process, one thread.
``--shapes FILE`` saves the learned regression losses over the residual during one run of
each online form (SGD and Adam, seed 0, at its tuned setting).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import online_classification as digits
import online_regression as diabetes

from learnedloss.evaluation.baselines import (
    generalized_cross_entropy,
    symmetric_cross_entropy,
)
from learnedloss.online import OnlineLossTrainer, ShapeRecorder

LRS = {
    "diabetes": {"sgd": [0.003, 0.01, 0.03, 0.1], "adam": [3e-4, 1e-3, 3e-3, 1e-2]},
    "digits": {"sgd": [0.03, 0.1, 0.3, 1.0], "adam": [1e-3, 3e-3, 1e-2, 3e-2]},
}
META_LRS = (1e-3, 1e-2)
BATCH = 32
ONLINE_FORMS = {  # name -> OnlineLossTrainer keyword arguments (the start is set per data set)
    "loss": {"form": "loss"},
    "shape": {"form": "shape"},
    "shape, k=2": {"form": "shape", "lookahead_steps": 2},
    "sample-weights": {"form": "sample-weights"},
    "shape, bundled start": {"form": "shape", "bundled": True},
}
BUNDLED_STARTS = {"diabetes": "robust-regression", "digits": "noisy-labels"}


@dataclass
class Setup:
    """One data set: its loader, model, score (lower is better) and fixed-loss methods."""

    name: str
    kind: str
    corruption: float

    def data(self, seed: int) -> dict:
        if self.kind == "regression":
            return diabetes.load_data(seed, outliers=self.corruption)
        return digits.load_data(seed, noise=self.corruption)

    def model(self, seed: int) -> nn.Module:
        if self.kind == "regression":
            return diabetes.make_model(seed)
        return digits.make_model("mlp", seed)

    def score(self, model: nn.Module, x, y) -> float:
        """Test MSE, or classification error (1 - accuracy); non-finite counts as worst."""
        if self.kind == "regression":
            value = diabetes.mse(model, x, y)
            return value if value == value else float("inf")
        return 1.0 - digits.accuracy(model, x, y)

    def fixed_methods(self) -> dict:
        """name -> [(setting label, make_loss, cosine schedule)]."""
        if self.kind == "regression":
            standard, robust = (
                nn.MSELoss,
                {
                    "L1": [("", nn.L1Loss)],
                    "Huber (tuned d)": [
                        (f"d {d:g}", lambda d=d: lambda p, t: F.huber_loss(p, t, delta=d))
                        for d in (0.25, 0.5, 1.0)
                    ],
                },
            )
            label = "MSE"
        else:
            standard, robust = (
                nn.CrossEntropyLoss,
                {
                    "GCE (tuned q)": [
                        (f"q {q:g}", lambda q=q: generalized_cross_entropy(q)) for q in (0.3, 0.7)
                    ],
                    "SCE (tuned a, b=1)": [
                        (f"a {a:g}", lambda a=a: symmetric_cross_entropy(a, 1.0))
                        for a in (0.1, 1.0)
                    ],
                },
            )
            label = "CE"
        methods = {
            label: [("", standard, False)],
            f"{label}, cosine lr": [("", standard, True)],
            f"1.5 x {label} (control)": [("", lambda: _scaled(standard(), 1.5), False)],
        }
        for name, grid in robust.items():
            methods[name] = [(setting, make, False) for setting, make in grid]
        return methods


def _scaled(loss_fn, factor):
    return lambda p, t: factor * loss_fn(p, t)


@dataclass
class Run:
    best_val: float
    best_test: float
    last_test: float
    seconds: float


class EarlyStopping:
    """Checks a model on the validation split and keeps the test score of its best check."""

    def __init__(self, setup: Setup, model: nn.Module, data: dict) -> None:
        self.setup, self.model, self.data = setup, model, data
        self.best_val, self.best_test = float("inf"), float("inf")

    def check(self) -> None:
        val = self.setup.score(self.model, *self.data["val"])
        if val < self.best_val:
            self.best_val = val
            self.best_test = self.setup.score(self.model, *self.data["test"])

    def result(self, start: float) -> Run:
        self.check()
        last = self.setup.score(self.model, *self.data["test"])
        return Run(self.best_val, self.best_test, last, time.perf_counter() - start)


def stream(setup: Setup, data: dict, seed: int):
    return diabetes.batches(*data["train"], BATCH, seed)


def run_fixed(setup, make_loss, cosine, data, lr, seed, steps, optimizer, eval_every) -> Run:
    start = time.perf_counter()
    model = setup.model(seed)
    loss_fn = make_loss()
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    batches, stopper = stream(setup, data, seed), EarlyStopping(setup, model, data)
    for step in range(1, steps + 1):
        x, y = next(batches)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            break  # diverged: scored as it stands
        loss.backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        if step % eval_every == 0:
            stopper.check()
    return stopper.result(start)


def validation_batches(data: dict, rows: int, seed: int) -> list:
    """The validation split as shuffled batches of ``rows`` (all of it when rows is 0)."""
    x, y = data["val"]
    if not rows or rows >= len(x):
        return [(x, y)]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + 1000))
    return [(x[order[i : i + rows]], y[order[i : i + rows]]) for i in range(0, len(x), rows)]


def run_online(setup, options, data, lr, meta_lr, seed, steps, optimizer, args, callbacks=()):
    start = time.perf_counter()
    model = setup.model(seed)
    options = dict(options)
    standard = "mse" if setup.kind == "regression" else "cross-entropy"
    loss = BUNDLED_STARTS[setup.name] if options.pop("bundled", False) else standard
    trainer = OnlineLossTrainer(
        model,
        loss,
        optimizer=optimizer,
        lr=lr,
        meta_lr=meta_lr,
        adapt_every=args.adapt_every,
        validation=validation_batches(data, args.val_batch, seed),
        callbacks=callbacks,
        seed=seed,
        **options,
    )
    batches, stopper = stream(setup, data, seed), EarlyStopping(setup, model, data)
    with warnings.catch_warnings():  # a diverging setting skips loss updates; never picked
        warnings.simplefilter("ignore", RuntimeWarning)
        for step in range(1, steps + 1):
            trainer.step(*next(batches))
            if step % args.eval_every == 0:
                stopper.check()
    return stopper.result(start), trainer


def tune(run, grid, datasets):
    """(setting, runs) of the setting with the best mean best-validation score."""
    best = None
    for setting in grid:
        runs = [run(setting, seed, data) for seed, data in enumerate(datasets)]
        val = statistics.fmean(r.best_val for r in runs)
        val = float("inf") if val != val else val
        if best is None or val < best[0]:
            best = (val, setting, runs)
    return best[1], best[2]


def fmt(setup: Setup, values: list[float]) -> str:
    if setup.kind == "classification":
        values = [100 * (1 - v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    digits_ = 1 if setup.kind == "classification" else 4
    return f"{statistics.fmean(values):.{digits_}f} ± {std:.{digits_}f}"


def compare(setup: Setup, mine: list[Run], best: list[Run]) -> str:
    """Regression: ratio of mean best-epoch test MSEs; classification: accuracy points."""
    a = statistics.fmean(r.best_test for r in mine)
    b = statistics.fmean(r.best_test for r in best)
    return f"{a / b:.3f}×" if setup.kind == "regression" else f"{100 * (b - a):+.1f}"


def table(setup: Setup, optimizer: str, rows: dict, reference: str, seconds: float, args):
    baselines = [n for n in rows if not n.startswith("online") and "control" not in n]
    best = min(baselines, key=lambda n: statistics.fmean(r.best_test for r in rows[n][1]))
    metric = "test MSE" if setup.kind == "regression" else "test accuracy %"
    versus = "vs best" if setup.kind == "regression" else "vs best (points)"
    print(
        f"\n#### {setup.name}, {optimizer.upper()}, {setup.corruption:.0%} corrupted training "
        f"{'targets' if setup.kind == 'regression' else 'labels'} ({args.seeds} seeds, "
        f"{args.steps} steps of {BATCH}; {seconds:.0f} s)\n"
    )
    print(
        f"| method | tuned setting | best-epoch {metric} | last-epoch {metric} | {versus} | time |"
    )
    print("|---|---|---|---|---|---|")
    plain = statistics.fmean(r.seconds for r in rows[reference][1])
    for name, (setting, runs) in rows.items():
        mark = " **(best baseline)**" if name == best else ""
        cost = statistics.fmean(r.seconds for r in runs) / plain
        print(
            f"| {name}{mark} | {setting} | {fmt(setup, [r.best_test for r in runs])} | "
            f"{fmt(setup, [r.last_test for r in runs])} | {compare(setup, runs, rows[best][1])} "
            f"| {cost:.1f}× |"
        )
    sys.stdout.flush()


def label(lr, extra="", meta=None):
    text = f"lr {lr:g}" + (f", {extra}" if extra else "")
    return text + (f", meta {meta:g}" if meta is not None else "")


def one_optimizer(setup, optimizer, args) -> dict:
    start = time.perf_counter()
    datasets = [setup.data(seed) for seed in range(args.seeds)]
    lrs = LRS[setup.name][optimizer]
    rows = {}
    for name, grid in setup.fixed_methods().items():
        settings = [(lr, extra, make, cosine) for lr in lrs for extra, make, cosine in grid]
        setting, runs = tune(
            lambda s, seed, data: run_fixed(
                setup, s[2], s[3], data, s[0], seed, args.steps, optimizer, args.eval_every
            ),
            settings,
            datasets,
        )
        rows[name] = (label(setting[0], setting[1]), runs)
    reference = next(iter(rows))
    tuned_lr = float(rows[reference][0].split(",")[0].removeprefix("lr "))
    above = lrs[min(lrs.index(tuned_lr) + 1, len(lrs) - 1)]
    online_lrs = args.online_lrs or [tuned_lr, above][: args.online_lr_count]
    online_lrs = list(dict.fromkeys(online_lrs))
    for form in args.online:
        grid = [(lr, m) for lr in online_lrs for m in META_LRS]
        setting, runs = tune(
            lambda s, seed, data, f=form: run_online(
                setup, ONLINE_FORMS[f], data, s[0], s[1], seed, args.steps, optimizer, args
            )[0],
            grid,
            datasets,
        )
        rows[f"online, {form}"] = (label(setting[0], meta=setting[1]), runs)
    table(setup, optimizer, rows, reference, time.perf_counter() - start, args)
    return rows


def save_shapes(setup, tuned: dict, args) -> None:
    """The learned regression losses over the residual during one run of each online form,
    scaled to MSE's value at residual ±1 (the "shape" form's scale is not used in training)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    residuals = torch.linspace(-3, 3, 121)
    forms = [f for f in args.online if f != "sample-weights"]
    fig, axes = plt.subplots(len(tuned), len(forms), figsize=(3.2 * len(forms), 3 * len(tuned)))
    axes = [[axes]] if len(tuned) * len(forms) == 1 else axes
    at = sorted({args.steps // 10, args.steps // 2, args.steps})
    for row, (optimizer, rows) in enumerate(tuned.items()):
        for col, form in enumerate(forms):
            lr, meta = (float(v.split()[-1]) for v in rows[f"online, {form}"][0].split(", "))
            recorder = ShapeRecorder(residuals, at=at)
            run_online(
                setup, ONLINE_FORMS[form], setup.data(0), lr, meta, 0, args.steps, optimizer,
                args, callbacks=[recorder],
            )  # fmt: skip
            ax = axes[row][col] if len(tuned) > 1 or len(forms) > 1 else axes[0][0]
            ax.plot(residuals, residuals**2, "k--", label="MSE")
            for step, shape in sorted(recorder.shapes.items()):
                shape = shape - shape[60]
                unit = (shape[40] + shape[80]) / 2  # residual ±1
                ax.plot(residuals, shape / unit if unit > 0 else shape, label=f"step {step}")
            ax.set_title(f"{form}, {optimizer.upper()}", fontsize=9)
            ax.set_ylim(-0.5, 9)
            ax.set_xlabel("residual")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.shapes, dpi=110)
    print(f"\nshapes saved to {args.shapes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("diabetes", "digits"), default="diabetes")
    parser.add_argument("--corruption", type=float, help="default: 0.2 diabetes, 0.4 digits")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    parser.add_argument("--online", nargs="*", default=list(ONLINE_FORMS), choices=ONLINE_FORMS)
    parser.add_argument("--online-lrs", type=float, nargs="+")
    parser.add_argument(
        "--online-lr-count", type=int, default=2, choices=(1, 2),
        help="without --online-lrs: the tuned standard lr (1), and the next one up (2)",
    )  # fmt: skip
    parser.add_argument("--adapt-every", type=int, default=5)
    parser.add_argument("--val-batch", type=int, default=64, help="0: the whole split")
    parser.add_argument("--shapes", help="save a picture of the learned shapes (diabetes)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    kind = "regression" if args.data == "diabetes" else "classification"
    corruption = (
        args.corruption if args.corruption is not None else (0.2 if kind == "regression" else 0.4)
    )
    setup = Setup(args.data, kind, corruption)
    start = time.perf_counter()
    tuned = {optimizer: one_optimizer(setup, optimizer, args) for optimizer in args.optimizers}
    if args.shapes and kind == "regression":
        save_shapes(setup, tuned, args)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
