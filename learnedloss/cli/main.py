"""The ``learnedloss`` command (also ``python -m learnedloss``).

Subcommands:

- ``learnedloss list``: the losses bundled with this installation.
- ``learnedloss info NAME_OR_PATH``: a loss's config and model-card summary.
- ``learnedloss meta-train FAMILY ...``: meta-train a loss on a task family.
- ``learnedloss evaluate FAMILY LOSS [LOSS ...]``: score losses on the family's held-out tasks
  against its baselines.
- ``learnedloss check NAME_OR_PATH``, ``learnedloss plot NAME``, ``learnedloss export NAME
  --grid``: look at a loss, check that it is sane, turn it into the fast grid form
  (`learnedloss.inspection`).
- ``learnedloss demo``: a pretrained loss on real data it never saw, against tuned baselines
  (``--meta-train``: meta-train a robust sine loss first), in minutes.

The families are those of `learnedloss.families.registry`; this module loops over them and
knows none by name. Deprecated forms that still run, with a warning on stderr:
``learnedloss evaluate LOSS ...`` (the family chosen by the loss's kind) and the
``evaluate-*`` aliases of the registry (``evaluate-shaped`` for ``evaluate shaped-sine``, ...).

A mistake on the command line (an unknown family, a loss that cannot be loaded, a bad value,
a ``--run-dir`` that holds another run without ``--resume`` or ``--overwrite``) prints one line
``learnedloss: error: ...`` on stderr and exits with status 2 before anything runs. A
meta-training run that cannot train (every meta-gradient not finite, or the loss never
changed) prints one such line, saves nothing and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from learnedloss._version import __version__
from learnedloss.cli import common
from learnedloss.cli.common import ArgumentParser, fail, warn
from learnedloss.errors import CheckpointError
from learnedloss.families.registry import FAMILIES, Family, family, family_for_kind, names

TRAIN, EVALUATE = "meta-train", "evaluate"


def build_parser(families: Iterable[str] | None = None) -> ArgumentParser:
    """The parser of ``learnedloss``. ``families``: the families whose options are added
    (default: all; each one imports its module). The others are listed with no options."""
    load = set(names() if families is None else families)
    parser = ArgumentParser(
        prog="learnedloss",
        description="Learned loss functions for PyTorch (ML3).",
        epilog="Deprecated forms, still accepted: 'learnedloss evaluate LOSS ...' (the family "
        "chosen by the loss's kind) and "
        + ", ".join(f"'learnedloss {f.evaluate_alias}'" for f in FAMILIES if f.evaluate_alias)
        + "; use 'learnedloss evaluate FAMILY LOSS ...'.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"learnedloss {__version__}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "list",
        help="list the losses bundled with this installation",
        description="Print the names of the losses bundled with this installation.",
    )

    info = commands.add_parser(
        "info",
        help="print a loss's config and model card summary",
        description="Read and validate a loss; print its config and model card summary.",
    )
    info.add_argument("name_or_path", help="a directory, a bundled name or a Hub repo id")
    info.add_argument("--revision", help="Hub branch, tag or commit")
    info.add_argument("--cache-dir", help="Hub cache directory")
    info.add_argument(
        "--local-files-only", action="store_true", help="use the local Hub cache only"
    )
    info.add_argument("--json", action="store_true", help="print one JSON object")

    train = commands.add_parser(
        TRAIN,
        help="meta-train a loss on a task family",
        description="Meta-train a loss on a task family and save it (save_pretrained, plus "
        "history.json and recipe.json).",
    )
    train_families = train.add_subparsers(dest="family", required=True, metavar="FAMILY")
    evaluate = commands.add_parser(
        EVALUATE,
        help="score losses on a family's held-out tasks against its baselines",
        description="Score one or more losses on a family's held-out tasks against the "
        "family's baselines.",
    )
    evaluate_families = evaluate.add_subparsers(dest="family", required=True, metavar="FAMILY")
    for entry in FAMILIES:
        description = f"{entry.help[0].upper()}{entry.help[1:]} (docs/{entry.docs})."
        trainer = train_families.add_parser(entry.name, help=entry.help, description=description)
        evaluator = evaluate_families.add_parser(
            entry.name, help=entry.help, description=description
        )
        if entry.name in load:
            hooks = entry.cli()
            common.add_training_run_arguments(trainer)
            hooks.add_meta_train_arguments(trainer)
            common.add_evaluate_arguments(evaluator)
            hooks.add_evaluate_arguments(evaluator)

    from learnedloss.inspection.commands import add_parsers as add_inspection_parsers

    add_inspection_parsers(commands)

    demo = commands.add_parser(
        "demo",
        help="a pretrained loss on real data it never saw, against tuned baselines",
        description="Put the bundled robust-regression-20 loss in place of nn.MSELoss on "
        "scikit-learn's diabetes data with 20% outlier targets, and compare it with MSE, L1, "
        "tuned Huber and Barron's adaptive loss, each at its own tuned lr, under SGD and "
        "Adam: tables and plots in about 3 minutes on 2 CPU cores. With --meta-train: "
        "meta-train a robust sine loss first and compare that one on sine tasks.",
    )
    demo.add_argument(
        "--out",
        type=common.output_dir,
        default="learnedloss-demo",
        help="output directory (default: %(default)s)",
    )
    demo.add_argument(
        "--steps",
        type=common.positive_int,
        default=150,
        help="training steps per model (default: %(default)s)",
    )
    demo.add_argument(
        "--n-tasks",
        type=common.positive_int,
        default=8,
        help="held-out tasks (random splits of the table) per optimizer (default: %(default)s)",
    )
    demo.add_argument(
        "--meta-train",
        action="store_true",
        help="the meta-training demo instead: meta-train a loss on sine tasks with 20%% "
        "outlier targets, then compare it on held-out sine tasks",
    )
    demo.add_argument(
        "--outer-steps",
        type=common.positive_int,
        default=400,
        help="with --meta-train: meta-training outer steps (default: %(default)s)",
    )
    demo.add_argument(
        "--threads",
        type=common.positive_int,
        default=1,
        help="torch intra-op threads (default: %(default)s)",
    )
    return parser


def describe(name_or_path: str, **resolve_kwargs: Any) -> dict[str, Any]:
    """Everything `learnedloss info` prints, as a dict. Reads and validates the checkpoint."""
    from learnedloss import hub
    from learnedloss.card import card_summary

    directory = hub.resolve_checkpoint_dir(name_or_path, **resolve_kwargs)
    checkpoint = hub.read_checkpoint(directory)
    n_params = sum(t.numel() for t in checkpoint.tensors.values())
    summary = card_summary(checkpoint.card) if checkpoint.card is not None else None
    return {
        "name": name_or_path,
        "directory": str(directory),
        "config": checkpoint.config.to_dict(),
        "parameters": n_params,
        "metadata": checkpoint.metadata,
        "model_card": summary,
    }


def _print_info(info: dict[str, Any]) -> None:
    config = info["config"]
    print(f"{info['name']}  ({info['directory']})")
    print(f"  kind:              {config['kind']}")
    print(f"  inputs:            {', '.join(config['inputs'])} (per element)")
    print(f"  hidden sizes:      {config['hidden_sizes']}")
    print(f"  activation:        {config['activation']} -> {config['output_activation']}")
    print(f"  bias:              {config['bias']}")
    form = f" ({config['residual_form']} form)" if "residual_form" in config else ""
    print(f"  residual:          {config['residual']}{form}")
    print(f"  parameters:        {info['parameters']}")
    for section in ("training", "results"):
        values = info["metadata"].get(section)
        if values:
            print(f"  {section}:")
            for key, value in values.items():
                print(f"    {key}: {value if isinstance(value, str) else json.dumps(value)}")
    card = info["model_card"]
    if card is None:
        print("  model card:        none")
    else:
        print(f"  model card:        {card['title']}")
        print(f"    tags: {', '.join(card['card_data'].get('tags', []))}")
        if card["description"]:
            print(f"    {card['description']}")


def _info(args: argparse.Namespace) -> int:
    try:
        info = describe(
            args.name_or_path,
            revision=args.revision,
            cache_dir=args.cache_dir,
            local_files_only=args.local_files_only,
        )
    except common.LOAD_ERRORS as err:
        common.report_error(err)
        return 2
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(info)
    return 0


def _meta_train(args: argparse.Namespace, entry: Family) -> int:
    from learnedloss.errors import MetaTrainingStalled, RunDirectoryError
    from learnedloss.meta.trainer import MetaTrainingDiverged

    _check_run_dir(args)
    if args.resume:
        _check_resumable(args, entry)
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    try:
        return entry.cli().run_meta_train(args, max_seconds)
    except RunDirectoryError as err:  # e.g. a checkpoint of another configuration
        fail(err)
    except (MetaTrainingDiverged, MetaTrainingStalled) as err:  # nothing is saved
        common.report_error(f"meta-training failed, nothing was saved: {err}")
        return 1


def _check_run_dir(args: argparse.Namespace) -> None:
    """Refuse a fresh run in a ``--run-dir`` that holds anything (unless ``--overwrite``,
    which removes the checkpoints there and in its subdirectories, on rank 0)."""
    import os

    from learnedloss.meta.state import clear_trainer_files, has_checkpoint

    if args.overwrite and args.resume:
        fail("--resume continues the run in --run-dir and --overwrite replaces it: pass one")
    if args.overwrite and args.run_dir is None:
        fail("--overwrite needs --run-dir, the directory of the run to replace")
    if args.resume or args.run_dir is None:
        return
    run_dir = Path(args.run_dir)
    entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if not entries:
        return
    if args.overwrite:
        if os.environ.get("RANK", "0") == "0":  # in a torchrun job, rank 0 clears
            clear_trainer_files(run_dir, subdirectories=True)
        return
    held = (
        "the checkpoints of a run"
        if has_checkpoint(run_dir)
        else ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
    )
    fail(
        f"--run-dir {args.run_dir!r} is not empty (it holds {held}): add --resume to continue "
        "that run, or --overwrite to replace its checkpoints (other files stay), or choose an "
        "empty directory"
    )


def _check_resumable(args: argparse.Namespace, entry: Family) -> None:
    from learnedloss.meta.state import read_state

    if not entry.resumable:
        fail(f"{entry.name} runs cannot be resumed (the family's run state is not checkpointed)")
    if args.run_dir is None:
        fail("--resume needs --run-dir, the directory of the run to continue")
    try:
        read_state(args.run_dir)
    except (FileNotFoundError, CheckpointError) as err:
        fail(f"cannot resume: {err}")


def _evaluate(args: argparse.Namespace, entry: Family, losses: dict | None = None) -> int:
    """``learnedloss evaluate FAMILY``: check everything, then run the family's evaluation and
    write ``--json``."""
    common.check_plotting(args)
    if losses is None:
        losses = common.load_losses(args.losses, kind=entry.kind)
    if getattr(args, "plot", None):
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    results = entry.cli().run_evaluate(args, losses)
    if args.json:
        common.write_json(args.json, results)
    return 0


def _legacy_parser() -> ArgumentParser:
    """``learnedloss evaluate NAME_OR_PATH``, the deprecated form: the options of every
    family that evaluates a kind of loss by default (as before, options of other kinds are
    accepted and ignored)."""
    parser = ArgumentParser(prog=f"learnedloss {EVALUATE}", conflict_handler="resolve")
    parser.add_argument("name_or_path", help="a directory, a bundled name or a Hub repo id")
    common.add_evaluate_arguments(parser, losses=False)
    for entry in FAMILIES:
        if entry.default_for_kind:
            entry.cli().add_evaluate_arguments(parser)
    return parser


def _legacy_evaluate(argv: list[str]) -> int:
    """The deprecated ``learnedloss evaluate NAME_OR_PATH ...``: the family is the default one
    for the loss's kind; the loss is named ``learned``."""
    from learnedloss.loss import LearnedLoss

    source = argv[0]
    try:
        loss = LearnedLoss.from_pretrained(source)
    except common.LOAD_ERRORS as err:
        fail(
            f"{source!r} is neither a family ({', '.join(names())}) nor a loss that can be "
            f"loaded: {err}"
        )
    try:
        entry = family_for_kind(loss.config.kind)
    except LookupError as err:
        fail(err)
    args = _legacy_parser().parse_args(argv)
    _set_threads(args)
    warn(f"'learnedloss evaluate LOSS' is deprecated; use 'learnedloss evaluate {entry.name} LOSS'")
    return _evaluate(args, entry, {"learned": loss})


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``learnedloss`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.
    Mistakes on the command line raise `SystemExit` with status 2 after one line on stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    aliases = {f.evaluate_alias: f for f in FAMILIES if f.evaluate_alias}
    if argv and argv[0] in aliases:
        entry = aliases[argv[0]]
        warn(f"'learnedloss {argv[0]}' is deprecated; use 'learnedloss {EVALUATE} {entry.name}'")
        argv = [EVALUATE, entry.name, *argv[1:]]
    if len(argv) > 1 and argv[0] == EVALUATE and argv[1] not in names() and argv[1][:1] != "-":
        return _legacy_evaluate(argv[1:])
    selected = argv[1:2] if argv[:1] in ([TRAIN], [EVALUATE]) else []
    args = build_parser(families=[n for n in selected if n in names()]).parse_args(argv)
    _set_threads(args)
    if args.command == TRAIN:
        return _meta_train(args, family(args.family))
    if args.command == EVALUATE:
        return _evaluate(args, family(args.family))
    if args.command == "demo" and args.meta_train:
        from learnedloss.families.sine.cli import run_demo

        return run_demo(args)
    if args.command == "demo":
        from learnedloss.families.robust_regression.demo import run_demo

        return run_demo(args)
    if getattr(args, "func", None) is not None:  # check, plot, export (learnedloss.inspection)
        return args.func(args)
    if args.command == "list":
        from learnedloss.bundled import bundled_names

        for name in bundled_names():
            print(name)
        return 0
    return _info(args)


if __name__ == "__main__":
    raise SystemExit(main())
