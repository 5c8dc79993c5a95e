"""The subcommands of ``learnedloss``, each a `Command`: one pattern for all of them.

A command has a name, a help line and a description; `Command.add_arguments` adds its
options and `Command.run` runs it on the parsed arguments and returns the exit status. The
parser (`learnedloss.cli.main.build_parser`) adds every command of `COMMANDS` the same way,
and `learnedloss.cli.main.main` runs the one chosen. Adding a command is one class here and
one entry in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Collection
from pathlib import Path

from learnedloss.cli import common
from learnedloss.cli.command import Command
from learnedloss.cli.common import fail
from learnedloss.cli.inspect import CheckCommand, ExportCommand, PlotCommand
from learnedloss.cli.options import add_recipe_options, check_applicable, recipe_from_options
from learnedloss.errors import CheckpointError, ConfigError
from learnedloss.families.registry import DEMO, FAMILIES, META_TRAINING_DEMO, Family, family
from learnedloss.validators import output_dir, positive_int


class ListCommand(Command):
    """``learnedloss list``."""

    name = "list"
    help = "list the losses bundled with this installation"
    description = (
        "Print a table of the losses bundled with this installation: what each replaces, what "
        "it is for, its measured verdicts (from its card), its form and its cost per call. "
        "Experimental losses are marked."
    )

    def add_arguments(self, parser: argparse.ArgumentParser, load: Collection[str]) -> None:
        parser.add_argument(
            "--names", action="store_true", help="print the names only, one a line (for scripts)"
        )

    def run(self, args: argparse.Namespace) -> int:
        from learnedloss.bundled import bundled_names
        from learnedloss.cli.listing import catalog_table

        if args.names:
            print("\n".join(bundled_names()))
        else:
            print(catalog_table(), end="")
        return 0


class BuildKernelsCommand(Command):
    """``learnedloss build-kernels``."""

    name = "build-kernels"
    help = "compile the fused CPU kernels of the bundled losses ahead of first use"
    description = (
        "Compile the fused CPU kernels (learnedloss.kernels) with this machine's C++ compiler "
        "into the kernel cache, so that the first loss call does not build them. Nothing to "
        "do where they are built already. Without a compiler it prints why and exits with "
        "status 1; the losses then run on their eager path, with the same values."
    )

    def add_arguments(self, parser: argparse.ArgumentParser, load: Collection[str]) -> None:
        parser.add_argument(
            "--verbose", action="store_true", help="show the compiler's commands and output"
        )

    def run(self, args: argparse.Namespace) -> int:
        from learnedloss import kernels

        if not kernels.kernels_enabled():
            print(f"learnedloss: {kernels.KERNELS_SETTING}=off: nothing built", file=sys.stderr)
            return 1
        try:
            library = kernels.build(verbose=args.verbose)
        except Exception as error:  # no compiler, a read-only cache, a failed compile
            lines = str(error).strip().splitlines() or [type(error).__name__]
            print(f"learnedloss: the kernels could not be built: {lines[0]}", file=sys.stderr)
            return 1
        print(f"built {library}")
        return 0


class InfoCommand(Command):
    """``learnedloss info NAME_OR_PATH``."""

    name = "info"
    help = "print a loss's config and model card summary"
    description = "Read and validate a loss; print its config and model card summary."

    def add_arguments(self, parser: argparse.ArgumentParser, load: Collection[str]) -> None:
        parser.add_argument("name_or_path", help="a directory, a bundled name or a Hub repo id")
        parser.add_argument("--revision", help="Hub branch, tag or commit")
        parser.add_argument("--cache-dir", help="Hub cache directory")
        parser.add_argument(
            "--local-files-only", action="store_true", help="use the local Hub cache only"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        from learnedloss.cli.info import describe, print_info

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
            print_info(info)
        return 0


def add_family_parsers(
    parser: argparse.ArgumentParser,
    load: Collection[str],
    add_options: Callable[[argparse.ArgumentParser, Family], None],
) -> None:
    """One sub-parser per registered family (``args.family``), listed in order; the options
    of the families in ``load`` are added by ``add_options(parser, family)``."""
    families = parser.add_subparsers(dest="family", required=True, metavar="FAMILY")
    for entry in FAMILIES:
        description = f"{entry.help[0].upper()}{entry.help[1:]} (docs/{entry.docs})."
        options = families.add_parser(entry.name, help=entry.help, description=description)
        if entry.name in load:
            add_options(options, entry)


class MetaTrainCommand(Command):
    """``learnedloss meta-train FAMILY``: the family's recipe, its options generated from
    the recipe's settings (`learnedloss.cli.options`), meta-trained and saved."""

    name = "meta-train"
    help = "meta-train a loss on a task family"
    description = (
        "Meta-train a loss on a task family and save it (save_pretrained, plus "
        "history.json and recipe.json)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser, load: Collection[str]) -> None:
        add_family_parsers(parser, load, self.add_family_options)

    @staticmethod
    def add_family_options(parser: argparse.ArgumentParser, entry: Family) -> None:
        """The run options, and the options of the family's recipe's settings."""
        common.add_training_run_arguments(parser)
        add_recipe_options(parser, entry.parts().recipe)

    def run(self, args: argparse.Namespace) -> int:
        from learnedloss.errors import MetaTrainingDiverged, MetaTrainingStalled, RunDirectoryError
        from learnedloss.families.recipe import save_run

        entry = family(args.family)
        common.check_outputs(out=args.out, run_dir=args.run_dir)
        _check_run_dir(args)
        if args.resume:
            _check_resumable(args, entry)
        parts = entry.parts()
        recipe = recipe_from_options(parts.recipe, args)
        check_applicable(parts.recipe, recipe, args)
        try:
            loss, trainer = parts.meta_train(
                recipe,
                family=entry.name,
                run_dir=args.run_dir,
                resume=args.resume,
                device=args.device,
                max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                overwrite=args.overwrite,
            )
        except RunDirectoryError as err:  # e.g. a checkpoint of another configuration
            fail(err)
        except (MetaTrainingDiverged, MetaTrainingStalled) as err:  # nothing is saved
            common.report_error(f"meta-training failed, nothing was saved: {err}")
            return 1
        out = common.save_or_rescue(lambda path: save_run(path, loss, trainer, recipe), args.out)
        if out is None:
            return 1
        common.print_training_summary(trainer, out)
        return 0


def _check_run_dir(args: argparse.Namespace) -> None:
    """Refuse a fresh run in a ``--run-dir`` that holds anything, unless ``--overwrite``
    (which the trainers apply: ``fit(overwrite=True)``)."""
    from learnedloss.meta.state import has_checkpoint

    if args.overwrite and args.resume:
        fail("--resume continues the run in --run-dir and --overwrite replaces it: pass one")
    if args.overwrite and args.run_dir is None:
        fail("--overwrite needs --run-dir, the directory of the run to replace")
    if args.resume or args.overwrite or args.run_dir is None:
        return
    run_dir = Path(args.run_dir)
    entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if not entries:
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


class EvaluateCommand(Command):
    """``learnedloss evaluate FAMILY LOSS [LOSS ...]``: check everything, then run the
    family's evaluation and write ``--json``."""

    name = "evaluate"
    help = "score losses on a family's held-out tasks against its baselines"
    description = (
        "Score one or more losses on a family's held-out tasks against the family's baselines."
    )

    def add_arguments(self, parser: argparse.ArgumentParser, load: Collection[str]) -> None:
        add_family_parsers(parser, load, self.add_family_options)

    @staticmethod
    def add_family_options(parser: argparse.ArgumentParser, entry: Family) -> None:
        """The losses and the options every family takes, then the family's own."""
        common.add_evaluate_arguments(parser)
        entry.parts().add_evaluate_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        entry = family(args.family)
        common.check_plotting(args)
        common.check_ranges(args, "lr_range")
        common.check_outputs(json=args.json, plot=getattr(args, "plot", None))
        losses = common.load_losses(args.losses, kind=entry.kind)
        if getattr(args, "plot", None):
            Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        try:
            results = entry.parts().evaluate(args, losses)
        except ConfigError as err:  # e.g. a stored recipe with a setting the family lacks
            fail(f"cannot evaluate with {entry.name}'s recipe: {err}")
        if args.json:
            common.write_json(args.json, results)
        return 0


class DemoCommand(Command):
    """``learnedloss demo``: the demo of the `DEMO` family, or with ``--meta-train`` that of
    the `META_TRAINING_DEMO` family."""

    name = "demo"
    help = "a pretrained loss on real data it never saw, against tuned baselines"
    description = (
        "Put the bundled robust-regression loss in place of nn.MSELoss on scikit-learn's "
        "diabetes data with 20% outlier targets, and compare it with tuned baselines (Huber's "
        "delta and Cauchy's c tuned) and default ones (nn.HuberLoss(), Cauchy c=1), MSE, L1 and "
        "Barron's adaptive loss, each at its own tuned lr, under SGD and Adam: tables and plots "
        "in a few minutes on 2 CPU cores. With --meta-train: meta-train a robust sine loss "
        "first and compare that one on sine tasks."
    )

    def add_arguments(self, parser: argparse.ArgumentParser, load: Collection[str]) -> None:
        add = parser.add_argument
        add(
            "--out",
            type=output_dir,
            default="learnedloss-demo",
            help="output directory (default: %(default)s)",
        )
        add(
            "--steps",
            type=positive_int,
            help=f"without --meta-train: training steps per model (default: {DEMO_STEPS})",
        )
        add(
            "--n-tasks",
            type=positive_int,
            help="without --meta-train: held-out tasks (random splits of the table) per "
            f"optimizer (default: {DEMO_TASKS})",
        )
        add(
            "--meta-train",
            action="store_true",
            help="the meta-training demo instead: meta-train a loss on sine tasks with 20%% "
            "outlier targets, then compare it on held-out sine tasks",
        )
        add(
            "--outer-steps",
            type=positive_int,
            help=f"with --meta-train: meta-training outer steps (default: {DEMO_OUTER_STEPS})",
        )
        add(
            "--threads",
            type=positive_int,
            default=1,
            help="torch intra-op threads (default: %(default)s)",
        )

    def run(self, args: argparse.Namespace) -> int:
        ignored = ("steps", "n_tasks") if args.meta_train else ("outer_steps",)
        for option in ignored:
            if getattr(args, option) is not None:
                flag = "--" + option.replace("_", "-")
                fail(f"{flag} {'does not apply with' if args.meta_train else 'needs'} --meta-train")
        common.check_outputs(out=args.out)
        defaults = {"steps": DEMO_STEPS, "n_tasks": DEMO_TASKS, "outer_steps": DEMO_OUTER_STEPS}
        for option, default in defaults.items():
            if getattr(args, option) is None:
                setattr(args, option, default)
        demo = family(META_TRAINING_DEMO if args.meta_train else DEMO).parts().demo
        return demo(args)


DEMO_STEPS, DEMO_TASKS, DEMO_OUTER_STEPS = 150, 8, 400
"""The defaults of ``learnedloss demo``'s ``--steps`` and ``--n-tasks`` (the robust-regression
demo) and ``--outer-steps`` (``--meta-train``)."""


COMMANDS: tuple[Command, ...] = (
    ListCommand(),
    InfoCommand(),
    BuildKernelsCommand(),
    MetaTrainCommand(),
    EvaluateCommand(),
    CheckCommand(),
    PlotCommand(),
    ExportCommand(),
    DemoCommand(),
)
"""Every subcommand, in the order ``--help`` lists them."""
