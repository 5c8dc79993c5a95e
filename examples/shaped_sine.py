"""Loss shaping with information that exists only at meta-train time (ML3 sec. V-C).

Meta-trains two losses over (x, ŷ, y) for recovering the frequency of y = sin(ω*·x) with the
model ŷ = sin(ω·x): one *shaped* by the true frequency ω* (meta-objective (ω - ω*)²), one
*unshaped* (meta-objective: the MSE). Then trains fresh models for 10 SGD steps on held-out
frequencies with each loss, against MSE at the same lr and at its tuned lr, and draws the
three loss landscapes.

    python examples/shaped_sine.py --plot landscape.png  # about 4 minutes on one core
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from learnedloss.families.shaped_sine.recipe import (
    ShapedSineRecipe,
    compare_recovery,
    landscape,
    meta_train_frequency,
    recovery_table,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outer-steps", type=int, default=ShapedSineRecipe().outer_steps)
    parser.add_argument(
        "--finetune-steps",
        type=int,
        default=ShapedSineRecipe.finetune_steps,
        help="outer steps of the second stage, on the test protocol",
    )
    parser.add_argument("--n-tasks", type=int, default=50, help="held-out frequencies")
    parser.add_argument("--plot", help="write the loss landscapes (ω* = 2) to this PNG")
    args = parser.parse_args()
    torch.set_num_threads(1)

    losses = {}
    for shaped in (True, False):
        name = "shaped" if shaped else "unshaped"
        print(f"meta-training the {name} loss ({args.outer_steps} + {args.finetune_steps} steps)")
        recipe = ShapedSineRecipe(
            shaped=shaped, outer_steps=args.outer_steps, finetune_steps=args.finetune_steps
        )
        losses[name], _ = meta_train_frequency(recipe, progress=False)

    print(recovery_table(compare_recovery(losses, n_tasks=args.n_tasks)))

    if args.plot:
        from learnedloss.families.shaped_sine.plots import plot_landscapes

        omegas = torch.linspace(-7, 7, 561)
        curves = {name: landscape(loss, 2.0, omegas) for name, loss in losses.items()}
        curves["MSE"] = landscape(nn.MSELoss(), 2.0, omegas)
        print(f"wrote {plot_landscapes(curves, omegas, 2.0, args.plot)}")


if __name__ == "__main__":
    main()
