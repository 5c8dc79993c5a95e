"""Hold-out check of the bundled losses' grid (fast) forms against their MLP forms.

    python scripts/check_grid_forms.py                    # the table below
    python scripts/check_grid_forms.py --n-tasks 20 --names sine-regression
    python scripts/check_grid_forms.py --ship digits-classification digits-noisy-labels
    python scripts/check_grid_forms.py --names sine-regression --ship sine-regression \
        --knots 257 41

Grids have 65 knots along the residual (log-probability) and 11 along the target by default
(a small table is faster). For the digits losses the export error comes from the MLPs' ReLU
kinks, not from the knot spacing. For sine-regression 65 × 11 knots changed the check's
score by 7% (0.9307), so it ships with 257 × 41 (0.9988).

``--ship NAME...`` writes the grid form of each named loss to ``pretrained/NAME`` (its card
records the export error and the check's ratio) and keeps the MLP form as
``pretrained/NAME-mlp``; run ``scripts/make_gallery.py`` and
``scripts/refresh_bundled_cards.py`` after it.

For each exportable bundled loss, the MLP form (``pretrained/NAME``, or ``NAME-mlp`` once the
grid form ships under ``NAME``) and its grid export (`learnedloss.inspection.to_grid`) train
fresh models on the same held-out tasks of the loss's family, from the same initializations,
at the same fixed lr (the family's meta-training lr): the sine family's held-out tasks for the
regression losses, the meta-test digits pool for the classification ones. The table gives
each form's geometric-mean query objective (and error rate for classifiers) and their ratio: a
grid form ships in place of the MLP only where the ratio is within the evaluation's noise
(`docs/benchmarks.md` quotes the run).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from learnedloss import LearnedLoss
from learnedloss.bundled import bundled_path
from learnedloss.evaluation import evaluate
from learnedloss.inspection import to_grid

ROOT = Path(__file__).resolve().parents[1]
REGRESSION = ("sine-regression", "mse-fit")
CLASSIFICATION = ("digits-classification", "digits-noisy-labels")


def mlp_form(name: str) -> LearnedLoss:
    """The MLP form of a bundled loss, wherever it ships."""
    mlp_name = f"{name}-mlp" if bundled_path(f"{name}-mlp") is not None else name
    loss = LearnedLoss.from_pretrained(mlp_name)
    if loss.config.parameterization != "mlp":
        raise SystemExit(f"{mlp_name} is not an MLP loss")
    return loss


def tasks_and_lr(name: str, loss: LearnedLoss):
    if name in REGRESSION:
        from learnedloss.families.sine.tasks import SineTasks

        return SineTasks(), 0.02
    from learnedloss.families.digits.recipe import DigitsRecipe

    recipe = DigitsRecipe.from_loss(loss)
    return recipe.test_tasks(), recipe.inner_lr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", default=[*REGRESSION, *CLASSIFICATION])
    parser.add_argument("--n-tasks", type=int, default=40, help="held-out tasks")
    parser.add_argument("--n-inits", type=int, default=2, help="initializations per task")
    parser.add_argument("--ship", nargs="*", default=[], help="write these losses' grid forms")
    parser.add_argument(
        "--knots",
        nargs="+",
        type=int,
        default=[65, 11],
        help="knots per grid axis (a classification target axis keeps its 2)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| loss | export error (value / gradient) | MLP | grid | grid / MLP |")
    print("|---|---|---|---|---|")
    for name in args.names:
        mlp = mlp_form(name)
        knots = tuple(args.knots) if mlp.config.kind == "regression" else (args.knots[0], 2)
        grid, report = to_grid(mlp, knots=knots)
        tasks, lr = tasks_and_lr(name, mlp)
        result = evaluate(
            {"mlp": mlp, "grid": grid}, tasks, lr=lr, n_tasks=args.n_tasks, n_inits=args.n_inits
        )
        cells = []
        for label in ("mlp", "grid"):
            score = result.scores[label]
            error = score.metrics.get("error")
            extra = "" if error is None else f", error {float(error.mean()):.4f}"
            cells.append(f"{score.score:.4g}{extra}")
        ratio = result.scores["grid"].score / result.scores["mlp"].score
        print(
            f"| {name} | {report.relative_value_error:.2%} / "
            f"{report.relative_gradient_error:.2%} | {cells[0]} | {cells[1]} | {ratio:.4f} |",
            flush=True,
        )
        if name in args.ship:
            check = (
                f"{ratio:.4f} (query objective, {args.n_tasks} held-out tasks x "
                f"{args.n_inits} inits at lr {lr:g}: {cells[1]} against {cells[0]})"
            )
            ship(name, mlp, grid, check)


def ship(name: str, mlp: LearnedLoss, grid: LearnedLoss, check: str) -> None:
    """Keep the MLP form as ``pretrained/NAME-mlp`` and write the grid form to
    ``pretrained/NAME``."""
    target, keep = ROOT / "pretrained" / name, ROOT / "pretrained" / f"{name}-mlp"
    if not keep.exists():
        mlp.metadata["title"] = f"{mlp.metadata.get('title', name)} (MLP form)"
        mlp.save_pretrained(keep, repo_id=f"{name}-mlp")
    grid.metadata["export"].update(source=f"{name}-mlp", hold_out=check)
    staging = ROOT / "pretrained" / f".{name}-grid"
    grid.save_pretrained(staging, repo_id=name)
    shutil.rmtree(target)
    staging.rename(target)
    print(f"wrote pretrained/{name} (grid) and pretrained/{name}-mlp")


if __name__ == "__main__":
    main()
