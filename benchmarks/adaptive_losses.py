"""The result tables of issue 27: a learned regression loss and a learned classification loss
against tuned and default baselines, on held-out data, condition by condition.

For every condition, optimizer and evaluation seed, fresh models train on held-out tasks (the
families' `held_out_tasks`) with each loss at its own lr, tuned on separate tasks
(`learnedloss.evaluate`). One markdown table per condition and optimizer, one row per loss:

- the learned loss; one that reads training progress (docs/progress.md) trains with the
  schedule (the inner loops set it every step), and a second row, ``(unscheduled)``, trains
  it without the one line, at its default progress (`Unscheduled`);
- the tuned baselines: each shape parameter tuned jointly with the lr per data set, best
  picked in hindsight (`robust_regression_baselines`, `noisy_label_baselines`); the regression
  grids are in the targets' units (``units`` below);
- the default baselines at their published settings, at their own tuned lr
  (`robust_regression_defaults`, `noisy_label_defaults`); MSE, L1 and CE are in both groups
  and run once;
- the rescaled control (1.5 × tuned Huber, 1.5 × CE): the same loss at another lr, so its
  gap shows how far lr-tuning noise alone moves a row.

Columns: the last-step score and, where `evaluate` records it, the early-stopped score (mean ±
std over seeds), and each seed's comparison with the best tuned and the best default baseline
of that seed, mean ± std. Regression scores are the geometric-mean clean query MSE (in the
targets' units) and comparisons are ratios (below 1 is better). Classification scores are
clean query accuracy in % and comparisons are differences in points (above 0 is better), the
units of the issue's goals.

A condition is ``key=value`` pairs joined by commas:

- regression: ``table`` (a held-out table), ``outliers`` (fraction of training targets
  replaced), ``units`` (targets in multiples of their robust spread: 1 standardized, 0.01 and
  100 raw-like), ``arch`` (``mlp``: 2×64 ReLU, as meta-training; ``deep-tanh``: 4×64 tanh,
  unseen), ``batch`` (minibatch size; only where `evaluate` takes ``batch_size``);
- classification: ``source`` (a held-out table or ``synthetic``), ``classes``, ``noise``
  (symmetric flips), ``arch`` (``mlp`` or ``cnn``, the digits CNN), ``batch``. Tasks have at
  least ``--per-class`` training examples per class (1000 rows at 100 classes).

Tiny, to see that it runs (under a minute of one core)::

    python benchmarks/adaptive_losses.py --quick

Small, to look at the tables (2 seeds, 40 steps; about 15 CPU-minutes, SGD and Adam)::

    nice -n 10 python benchmarks/adaptive_losses.py --seeds 2 --tasks 3 --tune-tasks 2 \\
        --steps 40 --deltas 0.5 2 --regression-conditions table=diabetes,outliers=0.2 \\
        table=diabetes,outliers=0.2,units=100 --classification-conditions \\
        source=digits,classes=10,noise=0.4

The full tables of issue 27 (5 seeds, 100 steps, every default condition, SGD and Adam), one
process per side, on the batched engine (the same numbers as the default vmap path to 5
digits in the ``--quick`` check; Barron's loss, which trains with the model, falls back to
vmap)::

    nice -n 10 python benchmarks/adaptive_losses.py --seeds 5 --path engine \\
        --classification-conditions --json runs/adaptive-tables-regression.json
    nice -n 10 python benchmarks/adaptive_losses.py --seeds 5 --path engine \\
        --regression-conditions --json runs/adaptive-tables-classification.json

Expected run time on this 2-core machine, each process on its own idle core: about 3-4 hours
for regression and under 1 hour for classification; on the default vmap path (no
``--path``) about 7 and 3 hours. These are extrapolated from CPU seconds at the small size
(about 90 s per regression table, 53 s per classification table on the vmap path; the engine
used 1/2 and 1/7 of the vmap path's CPU at ``--quick``), times seeds × steps × grid size:
measure one condition first. Wall time on a loaded machine is several times longer; the
tables print the CPU seconds they used. Split the work further with
``--regression-conditions`` and ``--classification-conditions`` (an empty list skips a side).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from learnedloss import LearnedLoss
from learnedloss.evaluation import evaluate, lr_grid, mean_and_std
from learnedloss.evaluation.baselines import (
    noisy_label_baselines,
    noisy_label_defaults,
    robust_regression_baselines,
    robust_regression_defaults,
)
from learnedloss.families.noisy_labels import transfer as noisy_transfer
from learnedloss.families.robust_regression import transfer as regression_transfer
from learnedloss.functional import reduce

REGRESSION_CONDITIONS = [
    *(f"table={t},outliers={f}" for t in ("diabetes", "star98") for f in (0.0, 0.2, 0.4)),
    "table=diabetes,outliers=0.2,units=0.01",
    "table=diabetes,outliers=0.2,units=100",
    "table=diabetes,outliers=0.2,arch=deep-tanh",
    "table=diabetes,outliers=0.2,batch=32",
]
CLASSIFICATION_CONDITIONS = [
    *(f"source=digits,classes={c},noise={n}" for c in (2, 10) for n in (0.0, 0.2, 0.4)),
    "source=synthetic,classes=100,noise=0.4",
    "source=digits,classes=10,noise=0.4,arch=cnn",
    "source=digits,classes=10,noise=0.4,batch=32",
]
REGRESSION_ARCHS = {
    "mlp": dict(depth=2, activation="relu"),
    "deep-tanh": dict(depth=4, activation="tanh"),
}
CLASSIFICATION_ARCHS = ("mlp", "cnn")


@dataclass(frozen=True)
class Condition:
    """One held-out setting: the data, its corruption, the targets' units, the model and the
    minibatch size (None: every step sees all training rows)."""

    kind: str
    source: str
    corruption: float
    classes: int = 0
    units: float = 1.0
    arch: str = "mlp"
    batch: int | None = None

    def label(self) -> str:
        """A one-line description for table headings."""
        if self.kind == "regression":
            text = f"{self.source}, {self.corruption:.0%} outliers, targets x{self.units:g}"
        else:
            text = f"{self.source}, {self.classes} classes, {self.corruption:.0%} noise"
        batch = "full batch" if self.batch is None else f"minibatch {self.batch}"
        return f"{self.kind}: {text}, {self.arch}, {batch}"


def parse_condition(kind: str, text: str) -> Condition:
    """A `Condition` of ``kind`` from ``key=value,...`` (see the module docstring)."""
    fields = dict(item.split("=", 1) for item in text.split(",") if item)
    source_key, corruption_key = (
        ("table", "outliers") if kind == "regression" else ("source", "noise")
    )
    allowed = {source_key, corruption_key, "arch", "batch"}
    allowed |= {"units"} if kind == "regression" else {"classes"}
    unknown = set(fields) - allowed
    if unknown or source_key not in fields or corruption_key not in fields:
        raise argparse.ArgumentTypeError(
            f"{kind} condition {text!r}: needs {source_key}= and {corruption_key}=, and takes "
            f"only {sorted(allowed)} (unknown: {sorted(unknown)})"
        )
    arch = fields.get("arch", "mlp")
    archs = REGRESSION_ARCHS if kind == "regression" else CLASSIFICATION_ARCHS
    if arch not in archs:
        raise argparse.ArgumentTypeError(f"arch must be one of {list(archs)}, got {arch!r}")
    return Condition(
        kind=kind,
        source=fields[source_key],
        corruption=float(fields[corruption_key]),
        classes=int(fields.get("classes", 0)),
        units=float(fields.get("units", 1.0)),
        arch=arch,
        batch=int(fields["batch"]) if "batch" in fields else None,
    )


@dataclass
class Setup:
    """What one condition evaluates: the tasks, a builder of every loss (fresh per seed),
    the row groups, and how a `LossScore` becomes the reported value. ``aliases`` maps a row
    to another row that is the same loss: it is trained once and reported under both."""

    tasks: object
    losses: Callable[[], dict]
    groups: dict[str, list[str]]
    lr_ranges: dict[str, tuple[float, float]]
    value: Callable
    early_value: Callable
    higher_is_better: bool
    options: dict = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


def early_stopped_loss(score) -> float | None:
    """The early-stopped geometric-mean objective `evaluate` recorded, if it records one."""
    value = getattr(score, "early_stopped", None)
    return None if value is None else float(value)


def early_stopped_accuracy(score) -> float | None:
    """The early-stopped query accuracy in %, if `evaluate` records the early-stopped error."""
    metrics = getattr(score, "early_stopped_metrics", None)
    if not metrics or "error" not in metrics:
        return None
    return 100 * (1 - float(torch.as_tensor(metrics["error"]).double().mean()))


def regression_setup(condition: Condition, learned: dict, deltas) -> Setup:
    """The regression side: tuned grids in the targets' units, lr ranges widened to them."""
    tasks = regression_transfer.held_out_tasks(
        condition.source,
        condition.corruption,
        target_scale=condition.units,
        **REGRESSION_ARCHS[condition.arch],
    )
    tuned = robust_regression_baselines(deltas, cs=deltas, units=condition.units)
    control = [name for name in tuned if name.startswith("1.5 x")]
    aliases = {"SmoothL1 b=1": "Huber d=1"}  # the same function at their defaults
    if condition.units == 1.0:  # the tuned set's Barron starts where the published one does
        aliases["Adaptive robust (published)"] = "Adaptive robust"
    return Setup(
        tasks=tasks,
        losses=lambda: {
            **learned,
            **robust_regression_baselines(deltas, cs=deltas, units=condition.units),
            **robust_regression_defaults(),
        },
        groups={
            "learned": list(learned),
            "tuned": [name for name in tuned if name not in control],
            "defaults": list(robust_regression_defaults()),
            "control": control,
        },
        lr_ranges={o: regression_transfer.lr_range(o, condition.units) for o in ("sgd", "adam")},
        value=lambda s: s.score,
        early_value=early_stopped_loss,
        higher_is_better=False,
        aliases=aliases,
    )


def classification_setup(condition: Condition, learned: dict, per_class: int) -> Setup:
    """The classification side: at least ``per_class`` training examples per class."""
    tasks = noisy_transfer.held_out_tasks(
        condition.source,
        condition.classes,
        condition.corruption,
        model=condition.arch,
        n_train=max(200, per_class * condition.classes),
    )
    tuned = noisy_label_baselines()
    return Setup(
        tasks=tasks,
        losses=lambda: {**learned, **noisy_label_baselines(), **noisy_label_defaults()},
        groups={
            "learned": list(learned),
            "tuned": [name for name in tuned if name != "1.5 x CE"],
            "defaults": list(noisy_label_defaults()),
            "control": ["1.5 x CE"],
        },
        lr_ranges=noisy_transfer.LR_RANGES,
        value=lambda s: 100 * (1 - float(s.metrics["error"].mean())),
        early_value=early_stopped_accuracy,
        higher_is_better=True,
        options={"select_by": "error"},
    )


def evaluate_options(condition: Condition, args: argparse.Namespace) -> dict | str:
    """Options for `evaluate` beyond today's, where it takes them; a reason string when the
    condition needs one it does not take."""
    accepted = inspect.signature(evaluate).parameters
    options = {}
    if args.path is not None:
        if "path" not in accepted:
            return "evaluate() takes no path= yet"
        options["path"] = args.path
    if condition.batch is not None:
        if "batch_size" not in accepted:
            return "evaluate() takes no batch_size= yet: minibatch conditions are skipped"
        options["batch_size"] = condition.batch
    return options


def run_seeds(setup: Setup, optimizer: str, args, extra: dict) -> tuple[list[dict], dict]:
    """Evaluate every loss for evaluation seeds ``0..seeds-1``: per seed ``{name: {value,
    early, lr, variant}}``, and the protocol."""
    per_seed, protocol = [], {}
    for seed in range(args.seeds):
        losses = {k: v for k, v in setup.losses().items() if k not in setup.aliases}
        evaluation = evaluate(
            losses,
            setup.tasks,
            steps=args.steps,
            n_tasks=args.tasks,
            n_inits=args.inits,
            optimizer=optimizer,
            lrs=lr_grid(*setup.lr_ranges[optimizer], per_octave=args.per_octave),
            tune_tasks=args.tune_tasks,
            seed=seed,
            widen=args.widen,
            **setup.options,
            **extra,
        )
        protocol = evaluation.protocol
        records = {
            name: {
                "value": setup.value(s),
                "early": setup.early_value(s),
                "lr": s.lr,
                "variant": s.variant,
                "path": getattr(s, "path", None),
            }
            for name, s in evaluation.scores.items()
        }
        records.update({alias: records[same] for alias, same in setup.aliases.items()})
        per_seed.append(records)
    return per_seed, protocol


def compare(value: float, best: float, higher_is_better: bool) -> float:
    """Points over ``best`` (accuracy) or the ratio to it (a loss); inf if not finite."""
    if not (math.isfinite(value) and math.isfinite(best)):
        return math.inf if not higher_is_better else -math.inf
    return value - best if higher_is_better else value / best


def best_of(seed: dict, names: list[str], key: str, higher_is_better: bool) -> float | None:
    """The best ``key`` value among ``names`` in one seed's records (None if unrecorded)."""
    values = [seed[name][key] for name in names]
    if any(v is None for v in values):
        return None
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if higher_is_better else min(finite)


def summarize(per_seed: list[dict], setup: Setup) -> dict[str, dict]:
    """Per row: mean and std over seeds of the last-step and early-stopped values and of the
    comparisons with each seed's best tuned and best default baseline (last step; early
    stopped against early stopped)."""
    rows = {}
    order = [name for group in setup.groups.values() for name in group]
    for name in dict.fromkeys(order):
        row = {"last": mean_and_std([s[name]["value"] for s in per_seed])}
        early = [s[name]["early"] for s in per_seed]
        row["early"] = None if None in early else mean_and_std(early)
        for group in ("tuned", "defaults"):
            for key in ("value", "early"):
                pairs = [
                    (s[name][key], best_of(s, setup.groups[group], key, setup.higher_is_better))
                    for s in per_seed
                ]
                if any(v is None or b is None for v, b in pairs):
                    continue
                versus = [compare(v, b, setup.higher_is_better) for v, b in pairs]
                row[f"{group}_{key}"] = mean_and_std(versus)
        rows[name] = row
    return rows


def markdown_table(heading: str, rows: dict[str, dict], setup: Setup) -> str:
    """One markdown table: a row per loss with its group, the scores and the comparisons."""
    early = any(row["early"] is not None for row in rows.values())
    unit = "points" if setup.higher_is_better else "ratio"
    columns = ["loss", "group", "last step"] + (["early-stopped"] if early else [])
    columns += [f"vs best tuned ({unit})", f"vs best default ({unit})"]
    if early:
        columns += [
            f"early-stopped vs best tuned ({unit})",
            f"early-stopped vs best default ({unit})",
        ]
    group_of = {}
    for group, names in setup.groups.items():
        for name in names:
            group_of[name] = group_of.get(name, "") + ("+" if name in group_of else "") + group
    lines = [heading, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, row in rows.items():
        cells = [name, group_of[name], _pm(row["last"], setup)]
        cells += [_pm(row["early"], setup)] if early else []
        keys = ["tuned_value", "defaults_value"] + (
            ["tuned_early", "defaults_early"] if early else []
        )
        cells += [_pm(row.get(key), setup, comparison=True) for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pm(pair, setup: Setup, comparison: bool = False) -> str:
    if pair is None:
        return "-"
    mean, std = pair
    if comparison and setup.higher_is_better:
        return f"{round(mean, 1) + 0.0:+.1f} ± {std:.1f}"  # + 0.0: no "-0.0" for a tie
    if comparison:
        return f"{mean:.3f} ± {std:.3f}"
    return f"{mean:.1f} ± {std:.1f}" if setup.higher_is_better else f"{mean:.4g} ± {std:.2g}"


def run_condition(condition: Condition, setup: Setup, args) -> list[dict]:
    """Every optimizer of one condition: print its tables, return its JSON results."""
    results = []
    extra = evaluate_options(condition, args)
    for optimizer in args.optimizers:
        heading = f"### {condition.label()}, {optimizer} ({args.seeds} seeds)"
        if isinstance(extra, str):
            print(f"{heading}\n\nskipped: {extra}\n", flush=True)
            results.append(
                {"condition": asdict(condition), "optimizer": optimizer, "skipped": extra}
            )
            continue
        start, cpu_start = time.perf_counter(), time.process_time()
        per_seed, protocol = run_seeds(setup, optimizer, args, extra)
        rows = summarize(per_seed, setup)
        print(markdown_table(heading, rows, setup), flush=True)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        same = "; ".join(f"{alias} is {name}" for alias, name in setup.aliases.items())
        same = f"; trained once: {same}" if same else ""
        print(f"\n({seconds:.0f} s wall, {cpu_seconds:.0f} s CPU{same})\n", flush=True)
        results.append(
            {
                "condition": asdict(condition),
                "optimizer": optimizer,
                "protocol": protocol,
                "groups": setup.groups,
                "higher_is_better": setup.higher_is_better,
                "seeds": per_seed,
                "rows": rows,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
            }
        )
    return results


class Unscheduled(nn.Module):
    """A frozen loss that reads progress, trained as a user who never calls
    ``loss.progress(...)`` would: at its default progress. The inner loops give each step's
    progress to the learned losses in the module tree (`learnedloss.progress`); this wrapper
    holds its loss outside the tree, so they cannot reach it."""

    def __init__(self, loss: LearnedLoss) -> None:
        super().__init__()
        self.__dict__["inner"] = loss  # not a submodule
        self.reduction = "mean"

    @property
    def batch_dependent(self) -> bool:
        return self.inner.batch_dependent

    def per_element(self, input, target):
        return self.inner.per_element(input, target)

    def forward(self, input, target):
        return reduce(self.inner.per_element(input, target), self.reduction).to(input.dtype)


def learned_rows(name: str) -> dict[str, nn.Module]:
    """The learned loss's rows: the loss, and for one that reads progress, `Unscheduled`."""
    loss = LearnedLoss.from_pretrained(name)
    rows: dict[str, nn.Module] = {name: loss}
    if loss.config.reads_progress:
        rows[f"{name} (unscheduled)"] = Unscheduled(LearnedLoss.from_pretrained(name))
    return rows


def build_parser() -> argparse.ArgumentParser:
    """The script's options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--regression-loss", default="robust-regression", help="bundled name or directory")
    add("--classification-loss", default="noisy-labels", help="bundled name or directory")
    add("--regression-conditions", nargs="*", default=REGRESSION_CONDITIONS)
    add("--classification-conditions", nargs="*", default=CLASSIFICATION_CONDITIONS)
    add("--optimizers", nargs="+", choices=["sgd", "adam"], default=["sgd", "adam"])
    add("--seeds", type=int, default=5, help="evaluation seeds (default: %(default)s)")
    add("--steps", type=int, default=100, help="training steps per model")
    add("--tasks", type=int, default=6, help="held-out tasks per seed")
    add("--inits", type=int, default=2, help="model inits per held-out task")
    add("--tune-tasks", type=int, default=4, help="lr-tuning tasks per seed")
    add("--per-octave", type=int, default=1, help="lrs per octave of the tuning grid")
    add(
        "--deltas",
        type=float,
        nargs="+",
        default=[0.1, 0.25, 0.5, 1.0, 2.0, 4.0],
        help="the tuned Huber δ and Cauchy c grids, in units of the targets' spread",
    )
    add("--per-class", type=int, default=10, help="least training examples per class")
    add(
        "--widen",
        type=int,
        default=3,
        help="grid steps a loss whose best lr is at the grid's edge is tuned beyond it "
        "(evaluate's widen; default %(default)s)",
    )
    add("--path", default=None, help="evaluate(path=...), where evaluate takes it")
    add("--threads", type=int, default=1)
    add("--json", default=None, help="write every result here")
    add("--quick", action="store_true", help="the tiniest size (`QUICK`), to see that it runs")
    return parser


QUICK = dict(
    seeds=2,
    steps=5,
    tasks=2,
    inits=1,
    tune_tasks=1,
    optimizers=["sgd"],
    deltas=[1.0],
    regression_conditions=["table=diabetes,outliers=0.2,units=100"],
    classification_conditions=["source=digits,classes=2,noise=0.4"],
    path="engine" if "path" in inspect.signature(evaluate).parameters else None,
)
"""``--quick``: the tiniest size, on the batched engine where `evaluate` has it (several
times less CPU; the same numbers as the vmap path)."""


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    torch.set_num_threads(args.threads)
    try:
        conditions = [parse_condition("regression", c) for c in args.regression_conditions]
        conditions += [parse_condition("classification", c) for c in args.classification_conditions]
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    results = []
    for condition in conditions:
        if condition.kind == "regression":
            learned = learned_rows(args.regression_loss)
            setup = regression_setup(condition, learned, tuple(args.deltas))
        else:
            learned = learned_rows(args.classification_loss)
            setup = classification_setup(condition, learned, args.per_class)
        results += run_condition(condition, setup, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"arguments": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
