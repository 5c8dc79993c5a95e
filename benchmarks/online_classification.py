"""Online loss learning against tuned noise-robust losses on real images: scikit-learn's digits.

    python benchmarks/online_classification.py --seeds 3                  # all conditions
    python benchmarks/online_classification.py --seeds 3 --models mlp --optimizers sgd \\
        --noise 0.4 --noisy-validation                                    # one condition

The data is ``sklearn.datasets.load_digits`` (1797 real 8×8 images, 10 classes, bundled with
scikit-learn, pixels scaled to [0, 1]). Each seed draws its own 60/20/20 train / validation /
test split and flips exactly ``round(noise × n)`` *training* labels to a uniformly drawn other
class (symmetric noise). Test labels are always clean; validation labels are clean too,
unless ``--noisy-validation``, which flips the same fraction of them (a user often has no
clean split: then the lr, every shape parameter, early stopping and the online loss's
meta-objective all see noisy labels).

For each model (an MLP 64-64-10 and the small CNN of the digits family), optimizer (SGD,
Adam) and noise level, every method is trained at each setting of its grid on every seed
(``--steps`` minibatches of 32), the setting is picked by the mean validation accuracy over
seeds (ties: the first), and the row reports the clean test accuracy at that setting, mean ±
std over seeds. Runs are paired by seed (same split, labels, initialization and batch order).

Methods: cross-entropy (CE); 1.5 × CE, the rescaled control (the same loss at another lr: its
gap to CE is the noise of lr tuning); CE + early stopping (the best validation accuracy,
checked every 25 steps: the simplest use of the validation split that the online loss sees);
label smoothing over ε, GCE over q and SCE over α (β = 1), each shape parameter tuned with
the lr; the offline bundled losses ``digits-noisy-labels`` and ``noisy-labels`` (when
bundled) as plain drop-ins for ``nn.CrossEntropyLoss()``; and `OnlineLossTrainer` from
exactly cross-entropy, adapting every 1 and every 5 steps, meta-lr tuned with the lr, the
whole validation split as its validation batch.

``--methods`` runs only the named fixed-loss rows (CE, the reference, always runs; a bundled
loss may be named without its suffix) and ``--adapt-every`` with no value no online row;
every run is deterministic per seed, so rows from separate invocations are comparable.

``--shapes`` prints what the losses learned: the gradient of each loss with respect to the
target logit, relative to cross-entropy's, at a few target-class probabilities.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings

import torch
from online_results import row_names  # the same folder: run as a script
from sklearn.datasets import load_digits
from torch import nn

from learnedloss import LearnedLoss, bundled_names
from learnedloss.evaluation.baselines import (
    generalized_cross_entropy,
    label_smoothing,
    scaled_cross_entropy,
    symmetric_cross_entropy,
)
from learnedloss.families.digits.tasks import SmallCNN
from learnedloss.online import OnlineLossTrainer

LRS = {"sgd": [0.03, 0.1, 0.3, 1.0, 3.0], "adam": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]}
META_LRS = [1e-3, 1e-2]
SMOOTHING = (0.1, 0.3)
QS = (0.3, 0.7)
SCE_ALPHAS = (0.1, 1.0)
BUNDLED = ("digits-noisy-labels", "noisy-labels")
BATCH = 32
EARLY_EVERY = 25
CLASSES = 10


# -- data and models ------------------------------------------------------------------------


def flip(labels: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """A copy of ``labels`` with exactly ``round(fraction × n)`` of them moved to a uniformly
    drawn *other* class."""
    labels = labels.clone()
    n_bad = round(fraction * len(labels))
    if n_bad:
        which = torch.randperm(len(labels), generator=generator)[:n_bad]
        shift = torch.randint(1, CLASSES, (n_bad,), generator=generator)
        labels[which] = (labels[which] + shift) % CLASSES
    return labels


def load_data(seed: int, noise: float = 0.0, noisy_validation: bool = False) -> dict:
    """``{"train": (x, y), "val": ..., "test": ...}``, float32 images (N, 64) in [0, 1] and
    int64 labels; training labels (and with ``noisy_validation`` validation labels) flipped."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    x, y = x[order], y[order]
    n_train, n_val = int(0.6 * len(x)), int(0.2 * len(x))
    y_train = flip(y[:n_train], noise, g)
    y_val = y[n_train : n_train + n_val]
    y_val = flip(y_val, noise, g) if noisy_validation else y_val
    return {
        "train": (x[:n_train], y_train),
        "val": (x[n_train : n_train + n_val], y_val),
        "test": (x[n_train + n_val :], y[n_train + n_val :]),
    }


def make_model(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, CLASSES))
    return SmallCNN(CLASSES)  # two 3×3 convolutions (8, 16 channels) and a linear head


def batches(x, y, seed: int):
    """Endless shuffled minibatches of `BATCH`."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x) - BATCH + 1, BATCH):
            index = order[start : start + BATCH]
            yield x[index], y[index]


def accuracy(model: nn.Module, x, y) -> float:
    with torch.no_grad():
        logits = model(x)
    if not torch.isfinite(logits).all():
        return 0.0
    return (logits.argmax(-1) == y).float().mean().item()


# -- methods --------------------------------------------------------------------------------


def fixed_methods() -> dict:
    """name -> (grid of (variant label, make_loss)), early_stopping)."""
    ce = [("", nn.CrossEntropyLoss)]
    methods = {
        "CE": (ce, False),
        "1.5 x CE (control)": ([("", lambda: scaled_cross_entropy(1.5))], False),
        "CE + early stopping (control)": (ce, True),
        "label smoothing (tuned eps)": (
            [(f"eps {e:g}", lambda e=e: label_smoothing(e)) for e in SMOOTHING],
            False,
        ),
        "GCE (tuned q)": (
            [(f"q {q:g}", lambda q=q: generalized_cross_entropy(q)) for q in QS],
            False,
        ),
        "SCE (tuned a, b=1)": (
            [(f"a {a:g}", lambda a=a: symmetric_cross_entropy(a, 1.0)) for a in SCE_ALPHAS],
            False,
        ),
    }
    for name in BUNDLED:
        if name in bundled_names():
            methods[f"{name} (offline, drop-in)"] = (
                [("", lambda n=name: LearnedLoss.from_pretrained(n))],
                False,
            )
    return methods


def run_fixed(make_loss, early, data, lr, seed, steps, optimizer, model_kind):
    model = make_model(model_kind, seed)
    loss_fn = make_loss()
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    stream = batches(*data["train"], seed)
    best = (accuracy(model, *data["val"]), copy.deepcopy(model.state_dict()))
    for step in range(1, steps + 1):
        x, y = next(stream)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            break  # diverged: scored as it stands (never better than chance)
        loss.backward()
        opt.step()
        if early and (step % EARLY_EVERY == 0 or step == steps):
            val = accuracy(model, *data["val"])
            if val > best[0]:
                best = (val, copy.deepcopy(model.state_dict()))
    if early:
        model.load_state_dict(best[1])
    return accuracy(model, *data["val"]), accuracy(model, *data["test"]), None


def run_online(data, lr, meta_lr, seed, steps, optimizer, model_kind, adapt_every):
    model = make_model(model_kind, seed)
    trainer = OnlineLossTrainer(
        model,
        "cross-entropy",
        optimizer=optimizer,
        lr=lr,
        meta_lr=meta_lr,
        adapt_every=adapt_every,
        validation=[data["val"]],
        description="digits (scikit-learn), benchmarks/online_classification.py",
        seed=seed,
    )
    stream = batches(*data["train"], seed)
    with warnings.catch_warnings():  # a diverging lr skips loss updates; it is never picked
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(steps):
            trainer.step(*next(stream))
    return accuracy(model, *data["val"]), accuracy(model, *data["test"]), trainer


def tune(run, grid, datasets):
    """(setting, test accuracies, trainers) of the setting with the best mean validation
    accuracy over the seeds (the first of equals)."""
    best = None
    for setting in grid:
        results = [run(setting, seed, data) for seed, data in enumerate(datasets)]
        val = statistics.fmean(r[0] for r in results)
        if best is None or val > best[0]:
            best = (val, setting, [r[1] for r in results], [r[2] for r in results])
    return best[1:]


# -- what the losses learned ----------------------------------------------------------------

PROBABILITIES = (0.02, 0.1, 0.3, 0.6, 0.9)


def relative_gradients(loss_fn, probabilities=PROBABILITIES) -> list[float]:
    """dL/dz_y of ``loss_fn`` over cross-entropy's, -(1 - p_y), for one sample whose target
    class has probability p_y and the other nine share the rest equally. Cross-entropy is 1
    everywhere; a noise-robust loss gives less weight to samples it fits badly (small p_y,
    where flipped labels end up), GCE p_y^q."""
    values = []
    for p in probabilities:
        other = (1.0 - p) / (CLASSES - 1)
        logits = torch.log(torch.tensor([p] + [other] * (CLASSES - 1))).unsqueeze(0)
        logits.requires_grad_(True)
        target = torch.zeros(1, dtype=torch.int64)
        (grad,) = torch.autograd.grad(loss_fn(logits, target), logits)
        values.append(grad[0, 0].item() / -(1.0 - p))
    return values


# -- tables ---------------------------------------------------------------------------------


def fmt(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * std:.1f}"


def condition(args, model_kind, optimizer, noise, noisy_validation) -> None:
    start = time.perf_counter()
    lrs = LRS[optimizer]
    datasets = [load_data(seed, noise, noisy_validation) for seed in range(args.seeds)]
    steps = args.steps
    rows = {}
    methods = fixed_methods()
    for name in row_names(methods, args.methods, first="CE"):
        variants, early = methods[name]
        rows[name] = tune(
            lambda s, seed, data, e=early: run_fixed(
                s[1][1], e, data, s[0], seed, steps, optimizer, model_kind
            ),
            [(lr, v) for v in variants for lr in lrs],
            datasets,
        )
    for k in args.adapt_every:
        rows[f"online, adapt every {k}"] = tune(
            lambda s, seed, data, k=k: run_online(
                data, s[0], s[1], seed, steps, optimizer, model_kind, k
            ),
            [(lr, m) for lr in lrs for m in META_LRS],
            datasets,
        )
    validation = f"{noise:.0%} noisy" if noisy_validation else "clean"
    print(
        f"\n#### {model_kind.upper()}, {optimizer.upper()}, {noise:.0%} flipped training labels, "
        f"{validation} validation labels ({args.seeds} seeds, {steps} steps of {BATCH}; "
        f"{time.perf_counter() - start:.0f} s)\n"
    )
    print(
        "| method | tuned setting | clean test accuracy % | vs CE (points) | seeds better than CE |"
    )
    print("|---|---|---|---|---|")
    reference = rows["CE"][1]
    for name, (setting, tests, _) in rows.items():
        lr, extra = setting
        label = f"lr {lr:g}" + (" (edge)" if lr in (lrs[0], lrs[-1]) else "")
        if isinstance(extra, tuple):
            label += f", {extra[0]}" if extra[0] else ""
        else:
            label += f", meta {extra:g}"
        diff = 100 * (statistics.fmean(tests) - statistics.fmean(reference))
        wins = sum(t > r for t, r in zip(tests, reference, strict=True))
        better = "" if name == "CE" else f"{wins}/{len(tests)}"
        print(f"| {name} | {label} | {fmt(tests)} | {diff:+.1f} | {better} |")
    if args.shapes:
        print(
            "\ndL/dz_y relative to cross-entropy's at p_y = "
            + ", ".join(f"{p:g}" for p in PROBABILITIES)
            + " (mean over seeds for online):\n"
        )
        shapes = {}
        for name in rows:
            if name.startswith(("GCE", "SCE", "label", "digits", "noisy")):
                label = rows[name][0][1]
                shapes[f"{name}: {label[0]}" if label[0] else name] = relative_gradients(label[1]())
        for name, (_, _, trainers) in rows.items():
            if name.startswith("online"):
                curves = [relative_gradients(t.learned_loss()) for t in trainers]
                shapes[name] = [statistics.fmean(c) for c in zip(*curves, strict=True)]
        for name, values in shapes.items():
            print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="minibatches of 32 (300 ≈ 9 epochs)")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"], choices=["sgd", "adam"])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.4])
    parser.add_argument(
        "--noisy-validation",
        action="store_true",
        help="flip the validation labels at the training rate too (test labels stay clean)",
    )
    parser.add_argument("--adapt-every", type=int, nargs="*", default=[1, 5])
    parser.add_argument(
        "--methods",
        nargs="+",
        help="only these fixed-loss rows (CE always runs), e.g. CE 'GCE (tuned q)' noisy-labels",
    )
    parser.add_argument("--shapes", action="store_true", help="print what the losses learned")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for model_kind in args.models:
        for optimizer in args.optimizers:
            for noise in args.noise:
                condition(args, model_kind, optimizer, noise, args.noisy_validation)


if __name__ == "__main__":
    main()
