"""Pieces the ``learnedloss`` subcommands share (see `learnedloss.cli`): the parser and its
one-line errors, option validators, the options every family takes, loading losses, running a
recipe, and the evaluation loop over seeds and losses with its progress bar."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from tqdm.auto import tqdm

from learnedloss.config import RESIDUAL_FORMS
from learnedloss.errors import CheckpointError, ConfigError
from learnedloss.evaluation.protocol import Evaluation, mean_and_std

# ---------------------------------------------------------------------------------------------
# Errors a user can cause: one line on stderr, exit status 2.


class CommandLineError(SystemExit):
    """A mistake on the command line. Exits with status 2; ``str()`` is the message."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def report_error(message: object) -> str:
    """Print ``learnedloss: error: MESSAGE`` to stderr, on one line; returns the line's
    message."""
    line = " ".join(str(message).split())
    print(f"learnedloss: error: {line}", file=sys.stderr)
    return line


def fail(message: object) -> NoReturn:
    """`report_error` and exit with status 2 (`CommandLineError`)."""
    raise CommandLineError(report_error(message))


def warn(message: str) -> None:
    """Print ``learnedloss: warning: MESSAGE`` to stderr."""
    print(f"learnedloss: warning: {message}", file=sys.stderr)


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line, ``learnedloss: error: ...``
    with a pointer to ``--help`` (argparse's default prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------------------------------------
# Option validators (argparse ``type=``): a bad value is rejected before anything runs.


def positive_int(text: str) -> int:
    """An integer > 0."""
    value = _parse(int, text, "an integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _parse(int, text, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, a scale, minutes)."""
    value = _parse(float, text, "a number")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _parse(float, text, "a number")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _parse(float, text, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in [0, 1]")
    return value


def output_dir(text: str) -> str:
    """A directory to write into: it may exist as a directory, but not as a file, and no
    existing parent may be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    _check_parents(path, text)
    return text


def output_file(text: str) -> str:
    """A file to write: not an existing directory, and no existing parent is a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    _check_parents(path, text)
    return text


def _parse(cast, text: str, what: str):
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _check_parents(path: Path, text: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text!r}: {str(parent)!r} is a file")
            return


# ---------------------------------------------------------------------------------------------
# ``learnedloss meta-train FAMILY``


def add_training_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every ``learnedloss meta-train FAMILY``: where to save, checkpoints,
    a wall-clock budget, the device and the threads."""
    add = parser.add_argument
    add("--out", required=True, type=output_dir, help="directory to save the loss in")
    add("--run-dir", type=output_dir, help="directory for the trainer's checkpoints")
    add("--resume", action="store_true", help="continue the run checkpointed in --run-dir")
    add(
        "--overwrite",
        action="store_true",
        help="start afresh in a --run-dir that holds a previous run: remove its checkpoints "
        "(other files stay)",
    )
    add(
        "--max-minutes",
        type=positive_float,
        help="wall-clock budget: stop early, save the best loss so far (resumable)",
    )
    add("--device", default="cpu", help="the torch device to meta-train on (default: cpu)")
    add("--threads", type=positive_int, default=1, help="torch intra-op threads (default: 1)")


def add_schedule_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The meta-training schedule options, with a recipe dataclass's values as defaults:
    ``--outer-steps``, ``--inner-steps``, ``--inner-lr``, ``--meta-batch``, ``--meta-lr``,
    ``--validate-every``, ``--validation-size`` and ``--seed``."""
    add = parser.add_argument
    add(
        "--outer-steps",
        type=positive_int,
        default=defaults.outer_steps,
        help="loss updates (default: %(default)s)",
    )
    add(
        "--inner-steps",
        type=positive_int,
        default=defaults.inner_steps,
        help="optimizer steps each task's model takes with the loss (default: %(default)s)",
    )
    add(
        "--inner-lr",
        type=positive_float,
        default=defaults.inner_lr,
        help="the inner optimizer's learning rate (default: %(default)s)",
    )
    add(
        "--meta-batch",
        dest="meta_batch_size",
        type=positive_int,
        default=defaults.meta_batch_size,
        help="tasks per loss update (default: %(default)s)",
    )
    add(
        "--meta-lr",
        type=positive_float,
        default=defaults.meta_lr,
        help="Adam's learning rate for the loss network (default: %(default)s)",
    )
    add(
        "--validate-every",
        type=non_negative_int,
        default=defaults.validate_every,
        help="outer steps between meta-validations and checkpoints (0: never; "
        "default: %(default)s)",
    )
    add(
        "--validation-size",
        type=positive_int,
        default=defaults.validation_size,
        help="meta-validation tasks (default: %(default)s)",
    )
    add("--seed", type=int, default=defaults.seed, help="random seed (default: %(default)s)")


def add_meta_gradient_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """``--meta-gradient``, ``--keep``, ``--es-pairs`` and ``--es-sigma``, with a recipe's
    values as defaults (see `learnedloss.MetaTrainer`)."""
    add = parser.add_argument
    add(
        "--meta-gradient",
        choices=["backprop", "es"],
        default=defaults.meta_gradient,
        help="backprop through the inner loop, or estimate by evolution strategies "
        "(default: %(default)s)",
    )
    add(
        "--keep",
        choices=["best", "last"],
        default=defaults.keep,
        help="save the loss with the best meta-validation, or the one after the last step "
        "(default: %(default)s)",
    )
    add(
        "--es-pairs",
        type=positive_int,
        default=defaults.es_pairs,
        help="ES perturbation pairs (default: %(default)s)",
    )
    add(
        "--es-sigma",
        type=positive_float,
        default=defaults.es_sigma,
        help="ES perturbation scale (default: %(default)s)",
    )


def add_residual_form_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--residual-form``: how a residual loss network's output ``h`` corrects the
    standard term ``r`` (`LossConfig.residual_form`)."""
    parser.add_argument(
        "--residual-form",
        choices=list(RESIDUAL_FORMS),
        default=default,
        help="how the network corrects the standard term r: add (r + h), scale ((1 + h) r), "
        "weight (w * loss(r), weights w = N softmax(h) averaging 1 over the call) or, for "
        "policy-gradient losses, baseline (-log_prob * (advantage - h)) (default: %(default)s)",
    )


def add_hidden_argument(
    parser: argparse.ArgumentParser, default: Iterable[int], *, allow_none: bool = False
) -> None:
    """``--hidden``: the loss network's hidden sizes (``allow_none``: none gives a linear
    map)."""
    parser.add_argument(
        "--hidden",
        type=positive_int,
        nargs="*" if allow_none else "+",
        default=list(default),
        help="the loss network's hidden sizes"
        + (" (none: a linear map)" if allow_none else "")
        + " (default: %(default)s)",
    )


def add_shaping_arguments(parser: argparse.ArgumentParser, defaults, unshaped: str) -> None:
    """``--unshaped`` (meta-objective: ``unshaped`` instead of the shaped one) and
    ``--hidden`` (the loss network's hidden sizes), with a recipe's values as defaults."""
    parser.add_argument(
        "--unshaped", dest="shaped", action="store_false", help=f"meta-objective: {unshaped}"
    )
    add_hidden_argument(parser, defaults.hidden, allow_none=True)


def recipe_from_args(recipe_class, args: argparse.Namespace):
    """``recipe_class`` built from the parsed options named like its fields (lists become
    tuples)."""
    values = {f.name: getattr(args, f.name) for f in fields(recipe_class) if hasattr(args, f.name)}
    return recipe_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def run_recipe(args: argparse.Namespace, recipe_class, train, max_seconds: float | None) -> int:
    """``learnedloss meta-train FAMILY``: `train_and_save` the recipe the options give."""
    return train_and_save(args, recipe_from_args(recipe_class, args), train, max_seconds)


def train_and_save(args: argparse.Namespace, recipe, train, max_seconds: float | None) -> int:
    """Meta-train ``recipe`` with ``train(recipe, **run options)``, save the run to
    ``args.out`` and print a summary. With ``--overwrite``, the trainers may start afresh in
    ``--run-dir`` (`learnedloss.meta.state.overwriting`)."""
    from contextlib import nullcontext

    from learnedloss.families.recipe import save_run
    from learnedloss.meta.state import overwriting

    overwrite = getattr(args, "overwrite", False) and args.run_dir is not None
    with overwriting(args.run_dir) if overwrite else nullcontext():
        loss, trainer = train(
            recipe,
            run_dir=args.run_dir,
            resume=args.resume,
            device=args.device,
            max_seconds=max_seconds,
        )
    out = save_run(args.out, loss, trainer, recipe)
    print_training_summary(trainer, out)
    return 0


def print_training_summary(trainer, out: str | Path) -> None:
    """What ``learnedloss meta-train`` prints when it is done."""
    steps = trainer.history[-1]["step"] if trainer.history else trainer.step
    print(
        f"meta-trained {steps} outer steps on the {trainer.path} path; best "
        f"meta-validation {trainer.best_score:.4g} at step {trainer.best_step}"
    )
    if trainer.keep == "last":
        print(f"kept the loss after the last step ({trainer.step})")
    print(f"saved to {out}")


# ---------------------------------------------------------------------------------------------
# ``learnedloss evaluate FAMILY LOSS [LOSS ...]``

LOAD_ERRORS = (OSError, ConfigError, CheckpointError)
"""What loading a loss raises for a user's mistake (a missing path or name, a bad file)."""


def add_evaluate_arguments(parser: argparse.ArgumentParser, losses: bool = True) -> None:
    """The options of every ``learnedloss evaluate FAMILY``: the losses (unless not
    ``losses``), ``--seeds``, ``--json`` and ``--threads``."""
    add = parser.add_argument
    if losses:
        add(
            "losses",
            nargs="+",
            metavar="LOSS",
            help="NAME=PATH_OR_NAME pairs, or plain directories, bundled names or Hub repo "
            "ids (named after their last path component)",
        )
    add(
        "--seeds",
        type=positive_int,
        default=1,
        help="repeat with this many evaluation seeds (default: %(default)s)",
    )
    add("--json", type=output_file, help="write the results to this JSON file")
    add("--threads", type=positive_int, default=1, help="torch intra-op threads (default: 1)")


def add_plot_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--plot PNG`` (needs matplotlib: checked before the evaluation starts)."""
    parser.add_argument("--plot", type=output_file, help=help)


def add_tuned_lr_arguments(
    parser: argparse.ArgumentParser, *, steps_help: str, lr_range_help: str, reference: str
) -> None:
    """The protocol options of the families scored by `learnedloss.evaluation.evaluate`:
    ``--steps``, ``--n-tasks``, ``--n-inits``, ``--tune-tasks``, ``--lr-range`` and
    ``--same-lr`` (compare with ``reference`` at one lr too)."""
    add = parser.add_argument
    add("--steps", type=positive_int, help=steps_help)
    add("--n-tasks", type=positive_int, default=100, help="held-out tasks (default: %(default)s)")
    add(
        "--n-inits",
        type=positive_int,
        default=3,
        help="model initializations per held-out task (default: %(default)s)",
    )
    add(
        "--tune-tasks",
        type=positive_int,
        default=32,
        help="separate tasks each loss's lr is tuned on (default: %(default)s)",
    )
    add("--lr-range", type=positive_float, nargs=2, metavar=("LOW", "HIGH"), help=lr_range_help)
    add(
        "--same-lr",
        type=positive_float,
        help=f"also compare the losses with {reference} at this one learning rate",
    )


def named_losses(specs: list[str]) -> dict:
    """``NAME=PATH_OR_NAME`` pairs (or plain paths and bundled names, named after their last
    path component) loaded as ``{name: LearnedLoss}``. Raises what loading raises."""
    from learnedloss.loss import LearnedLoss

    losses = {}
    for name, source in loss_specs(specs):
        losses[name] = LearnedLoss.from_pretrained(source)
    return losses


def loss_specs(specs: list[str]) -> list[tuple[str, str]]:
    """``(name, source)`` of each ``NAME=PATH_OR_NAME`` (or plain path or name)."""
    pairs = []
    for spec in specs:
        name, _, source = spec.rpartition("=")
        pairs.append((name or Path(source).name, source))
    return pairs


def load_losses(specs: list[str], kind: str | None = None) -> dict:
    """`named_losses`, with each user mistake (a missing path or name, an unreadable
    checkpoint, a repeated name, a loss of another ``kind``) reported by `fail`."""
    from learnedloss.loss import LearnedLoss

    losses = {}
    for name, source in loss_specs(specs):
        if not source:
            fail(f"{name}=: no path or name after '='")
        if name in losses:
            fail(f"two losses are named {name!r}; name them with NAME=PATH_OR_NAME")
        try:
            loss = LearnedLoss.from_pretrained(source)
        except LOAD_ERRORS as err:
            fail(f"cannot load the loss {source!r}: {err}")
        if kind is not None and loss.config.kind != kind:
            fail(f"{source!r} is a {loss.config.kind} loss, this family evaluates {kind} losses")
        losses[name] = loss
    return losses


def check_plotting(args: argparse.Namespace) -> None:
    """With ``--plot``, fail now (not after the evaluation) when matplotlib is missing."""
    if getattr(args, "plot", None) and importlib.util.find_spec("matplotlib") is None:
        fail("--plot needs matplotlib: pip install 'learnedloss[plot]'")


def write_json(path: str | Path, results: Any) -> None:
    """Write ``results`` as indented JSON (creating missing parent directories)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


def echo(text: str = "") -> None:
    """Print to stdout without breaking a progress bar on stderr."""
    tqdm.write(text, file=sys.stdout)


def progress(total: int, desc: str = "evaluate", unit: str = "run"):
    """A tqdm progress bar on stderr (a context manager; call ``.update()``)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)


def over_seeds(args: argparse.Namespace, desc: str = "evaluate"):
    """``range(args.seeds)`` with a progress bar on stderr."""
    return tqdm(range(args.seeds), desc=desc, unit="seed", file=sys.stderr)


def evaluate_over_seeds(
    args: argparse.Namespace,
    evaluate_seed: Callable[[int], tuple[Evaluation, Evaluation | None]],
    tuned_label: str,
    plot_title: str,
) -> list[dict]:
    """Run ``evaluate_seed(seed)`` for ``args.seeds`` seeds, print each tuned (and shared-lr)
    table, plot seed 0 to ``args.plot``; with several seeds, print the mean ± std of the
    scores and of the curves; return one result dict per seed."""
    from learnedloss.evaluation.plots import plot

    results = []
    for seed in range(args.seeds):
        tuned, fixed = evaluate_seed(seed)
        echo(f"seed {seed}: {tuned_label}")
        echo(tuned.table())
        if fixed is not None:
            echo(f"seed {seed}: {', '.join(fixed.scores)} at lr {args.same_lr}")
            echo(fixed.table())
        results.append(
            {"tuned": tuned.to_dict(), "same_lr": None if fixed is None else fixed.to_dict()}
        )
        if args.plot and seed == 0:
            plot(tuned, args.plot, title=plot_title)
    if args.seeds > 1:
        echo(summarize_seeds([r["tuned"] for r in results]))
        echo(summarize_curves([r["tuned"] for r in results]))
    return results


def evaluate_at_tuned_lrs(
    args: argparse.Namespace,
    evaluate_fn,
    losses: Mapping[str, Any],
    tasks,
    *,
    steps: int,
    default_lr_range: tuple[float, float],
    tuned_label: str,
    plot_title: str,
    **options,
) -> list[dict]:
    """`evaluate_over_seeds` with ``evaluate_fn(loss, tasks, name=..., steps=...,
    n_tasks=..., n_inits=..., lr_range=..., tune_tasks=..., same_lr=..., seed=...,
    **options)`` (the ``evaluate_*`` functions of the recipes), its settings from
    ``learnedloss evaluate``'s options, for each of ``losses``; a progress bar counts the
    (seed, loss) runs. With several losses, each seed's tables show the baselines once and
    every loss (the baselines are the same in every run: same tasks, seeds and grid)."""
    lr_range = tuple(args.lr_range) if args.lr_range else default_lr_range
    bar = progress(args.seeds * len(losses))

    def evaluate_seed(seed: int) -> tuple[Evaluation, Evaluation | None]:
        runs = []
        for name, loss in losses.items():
            runs.append(
                evaluate_fn(
                    loss,
                    tasks,
                    name=name,
                    steps=steps,
                    n_tasks=args.n_tasks,
                    n_inits=args.n_inits,
                    lr_range=lr_range,
                    tune_tasks=args.tune_tasks,
                    same_lr=args.same_lr,
                    seed=seed,
                    **options,
                )
            )
            bar.update(1)
        names = list(losses)
        tuned = merge_evaluations([t for t, _ in runs], names)
        fixed = None if runs[0][1] is None else merge_evaluations([f for _, f in runs], names)
        return tuned, fixed

    with bar:
        return evaluate_over_seeds(args, evaluate_seed, tuned_label, plot_title)


def merge_evaluations(evaluations: list[Evaluation], names: list[str]) -> Evaluation:
    """One `Evaluation` from runs that differ only in one loss each (``names[i]`` in
    ``evaluations[i]``): the first run's rows, with every named loss where its first named
    loss was."""
    first = evaluations[0]
    if len(evaluations) == 1:
        return first
    scores = {}
    for key, score in first.scores.items():
        if key == names[0]:
            scores.update({n: e.scores[n] for n, e in zip(names, evaluations, strict=True)})
        else:
            scores[key] = score
    return dataclasses.replace(first, scores=scores)


def summarize_seeds(results: list[dict]) -> str:
    """Mean ± std over seeds of each loss's ratio to the reference and of its metrics."""
    first = next(iter(results[0]["losses"].values()))
    not_summarized = ("lr", "geometric_mean", "ratio", "diverged", "curve")
    columns = ["ratio", *(k for k in first if k not in not_summarized)]
    header = f"{'loss':28s} | " + " | ".join(f"{c:>15}" for c in columns)
    lines = [f"mean ± std over {len(results)} seeds", header]
    for name in results[0]["losses"]:
        cells = []
        for column in columns:
            mean, std = mean_and_std([r["losses"][name][column] for r in results])
            cells.append(f"{mean:7.4f} ± {std:.4f}")
        lines.append(f"{name:28s} | " + " | ".join(cells))
    return "\n".join(lines)


def summarize_curves(results: list[dict], columns: int = 6) -> str:
    """Mean ± std over seeds of each loss's curve (the geometric mean of the objective over
    runs) at up to ``columns`` evenly spaced steps."""
    every = results[0].get("every", 1)
    length = len(next(iter(results[0]["losses"].values()))["curve"])
    points = sorted({round(i * (length - 1) / (columns - 1)) for i in range(columns)})
    header = f"{'loss':28s} | " + " | ".join(f"{f'step {p * every}':>15}" for p in points)
    lines = [f"objective against steps, mean ± std over {len(results)} seeds", header]
    for name in results[0]["losses"]:
        cells = [
            "{:7.4f} ± {:.4f}".format(
                *mean_and_std([r["losses"][name]["curve"][p] for r in results])
            )
            for p in points
        ]
        lines.append(f"{name:28s} | " + " | ".join(cells))
    return "\n".join(lines)
