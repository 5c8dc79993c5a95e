"""Online loss learning against tuned standard and robust losses on the diabetes data.

    python benchmarks/online_results.py                       # ~25 min on one CPU core
    python benchmarks/online_results.py --seeds 3 --steps 500 --optimizers sgd --outliers 0.2
    python benchmarks/online_results.py --seeds 3 --methods MSE robust-regression-20 \
        --adapt-every 5                                       # only these rows (and MSE)

For each optimizer (SGD, Adam) and each fraction of outlier training targets (0%, 20%;
validation and test targets stay clean), every method is trained at each learning rate of
its grid on every seed, the learning rate is picked by the mean *validation* MSE over the
seeds, and the row reports the clean *test* MSE at that lr: mean ± std over seeds. Each
seed draws its own train / validation / test split and outliers (`load_data` in
examples/online_regression.py), so the comparison across methods is paired per seed.

Methods:

- MSE, and 1.5 x MSE: the rescaled control (the same loss at another lr); its gap to MSE
  is the noise of lr tuning on this grid.
- L1; Huber at several δ (each its own row); Barron's adaptive robust loss (α and c trained
  with the model by the same optimizer), when `learnedloss.evaluation.baselines` has
  `AdaptiveRobustLoss`.
- MSE + early stopping: MSE, keeping the parameters with the best validation MSE (checked
  every 25 steps). The online method sees the validation split through its meta-objective;
  this control sees it too, in the simplest way.
- offline bundled losses as plain drop-ins for ``nn.MSELoss()``: ``robust-regression-20``
  and ``sine-outliers-40`` (meta-trained offline on sine tasks with 20% / 40% outlier
  targets; see their model cards), each at its own tuned lr, when they are bundled.
- online: `OnlineLossTrainer` from exactly MSE, adapting every step (and with
  ``--adapt-every``, at other rates too), meta-lr tuned with the lr.

``--methods`` runs only the named fixed-loss rows (MSE, the reference, always runs); every
run is deterministic per seed, so rows from separate invocations are comparable, paired by
seed, and a row reproduces its earlier numbers on the same machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from online_regression import batches, load_data, make_model, mse

from learnedloss import LearnedLoss, bundled_names
from learnedloss.online import OnlineLossTrainer

try:  # added by another issue; used when present
    from learnedloss.evaluation.baselines import AdaptiveRobustLoss
except ImportError:  # pragma: no cover
    AdaptiveRobustLoss = None

LRS = {"sgd": [0.003, 0.01, 0.03, 0.1, 0.3], "adam": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]}
META_LRS = [1e-3, 1e-2]
BATCH = 32
BUNDLED = ("robust-regression-20", "sine-outliers-40")


def huber(delta):
    return lambda p, t: F.huber_loss(p, t, delta=delta)


def standard_methods() -> dict:
    """name -> (make_loss, early_stopping)."""
    methods = {
        "MSE": (nn.MSELoss, False),
        "1.5 x MSE (control)": (lambda: lambda p, t: 1.5 * F.mse_loss(p, t), False),
        "MSE + early stopping (control)": (nn.MSELoss, True),
        "L1": (nn.L1Loss, False),
    }
    for delta in (0.25, 0.5, 1.0, 2.0):
        methods[f"Huber d={delta:g}"] = (lambda d=delta: huber(d), False)
    if AdaptiveRobustLoss is not None:
        methods["Adaptive robust (Barron)"] = (AdaptiveRobustLoss, False)
    for name in BUNDLED:
        if name in bundled_names():
            methods[f"{name} (offline, drop-in)"] = (
                lambda n=name: LearnedLoss.from_pretrained(n),
                False,
            )
    return methods


def row_names(methods: dict, wanted: list[str] | None, first: str = "MSE") -> list[str]:
    """The rows of ``methods`` to run: ``first`` (the standard loss), then those named in
    ``wanted`` (a bundled loss may be named without its " (offline, drop-in)" suffix); all
    when ``wanted`` is None. benchmarks/online_classification.py uses it with ``"CE"``."""
    if wanted is None:
        return list(methods)
    short = {name.removesuffix(" (offline, drop-in)"): name for name in methods}
    unknown = [w for w in wanted if w not in short]
    if unknown:
        raise SystemExit(f"unknown --methods {unknown}; choose from {list(short)}")
    return [first, *(short[w] for w in wanted if short[w] != first)]


def run_standard(make_loss, early, data, lr, seed, steps, optimizer):
    model = make_model(seed)
    loss_fn = make_loss()
    params = [*model.parameters()]
    if isinstance(loss_fn, nn.Module):
        params += [*loss_fn.parameters()]  # Barron's alpha and scale train with the model
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(params, lr=lr)
    stream = batches(*data["train"], BATCH, seed)
    best = (mse(model, *data["val"]), copy.deepcopy(model.state_dict()))
    for step in range(1, steps + 1):
        x, y = next(stream)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        if early and step % 25 == 0:
            val = mse(model, *data["val"])
            if val < best[0]:
                best = (val, copy.deepcopy(model.state_dict()))
    if early:
        model.load_state_dict(best[1])
    return mse(model, *data["val"]), mse(model, *data["test"])


def run_online(data, lr, meta_lr, seed, steps, optimizer, adapt_every):
    model = make_model(seed)
    trainer = OnlineLossTrainer(
        model,
        "mse",
        optimizer=optimizer,
        lr=lr,
        meta_lr=meta_lr,
        adapt_every=adapt_every,
        validation=[data["val"]],
        seed=seed,
    )
    stream = batches(*data["train"], BATCH, seed)
    with warnings.catch_warnings():  # a diverging lr skips loss updates; it is never picked
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(steps):
            trainer.step(*next(stream))
    val, test = mse(model, *data["val"]), mse(model, *data["test"])
    if val != val:  # a diverged run scores inf, so it is never picked
        return float("inf"), float("inf")
    return val, test


def tune(run, grid, datasets):
    """(setting, tests) of the setting with the best mean validation MSE."""
    best = None
    for setting in grid:
        results = [run(setting, seed, data) for seed, data in enumerate(datasets)]
        val = statistics.fmean(r[0] for r in results)
        if val != val:
            val = float("inf")
        if best is None or val < best[0]:
            best = (val, setting, [r[1] for r in results])
    return best[1], best[2]


def fmt(values):
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    parser.add_argument("--outliers", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--adapt-every", type=int, nargs="*", default=[1])
    parser.add_argument(
        "--methods",
        nargs="+",
        help="only these fixed-loss rows (MSE always runs), e.g. MSE robust-regression-20",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    for optimizer in args.optimizers:
        lrs = LRS[optimizer]
        for fraction in args.outliers:
            start = time.perf_counter()
            datasets = [load_data(seed, outliers=fraction) for seed in range(args.seeds)]
            rows = {}
            methods = standard_methods()
            for name in row_names(methods, args.methods):
                make_loss, early = methods[name]
                rows[name] = tune(
                    lambda lr, seed, data, m=make_loss, e=early, o=optimizer: run_standard(
                        m, e, data, lr, seed, args.steps, o
                    ),
                    lrs,
                    datasets,
                )
            for k in args.adapt_every:
                rows[f"online, adapt every {k}"] = tune(
                    lambda s, seed, data, k=k, o=optimizer: run_online(
                        data, s[0], s[1], seed, args.steps, o, k
                    ),
                    [(lr, m) for lr in lrs for m in META_LRS],
                    datasets,
                )
            reference = rows["MSE"][1]
            print(
                f"\n### {optimizer.upper()}, {fraction:.0%} outlier training targets "
                f"({args.seeds} seeds, {args.steps} steps of {BATCH}; "
                f"{time.perf_counter() - start:.0f} s)\n"
            )
            print("| method | tuned lr | clean test MSE | vs MSE | seeds better than MSE |")
            print("|---|---|---|---|---|")
            for name, (setting, tests) in rows.items():
                lr = setting if not isinstance(setting, tuple) else setting[0]
                label = f"{lr:g}" + ("" if lr not in (lrs[0], lrs[-1]) else " (edge)")
                if isinstance(setting, tuple):
                    label += f", meta {setting[1]:g}"
                ratio = statistics.fmean(tests) / statistics.fmean(reference)
                wins = sum(t < r for t, r in zip(tests, reference, strict=True))
                better = "" if name == "MSE" else f"{wins}/{len(tests)}"
                print(f"| {name} | {label} | {fmt(tests)} | {ratio:.3f} | {better} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
