"""Exploration through an intermediate goal: ML3's mountain car (sec. V-C).

Meta-trains two losses over (position, goal, velocity, action) for driving the standard
mountain car (`learnedloss.envs.MountainCar`) to the goal: one *shaped* by a waypoint on
the left slope that only meta-training knows, one *unshaped* (meta-objective: the task
cost). Then trains fresh policies from the reference start and from random starts with
each loss, against the task cost at the same lr and at its tuned lr, and draws the
trajectories.

The recipe's 200 outer steps take about 52 minutes per loss on one CPU core; in our run the
shaped loss had already found the way out after 60 (``--outer-steps 60``, about 16 minutes
each). docs/mountain-car.md has the figures.

    python examples/mountain_car.py --plot mountain-car.png
"""

from __future__ import annotations

import argparse

import torch

from learnedloss.families.mountain_car.recipe import (
    MountainCarRecipe,
    compare_driving,
    driving_table,
)
from learnedloss.families.recipe import meta_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outer-steps", type=int, default=MountainCarRecipe().outer_steps)
    parser.add_argument("--n-random", type=int, default=20, help="random starts")
    parser.add_argument("--plot", help="write the trajectories from (-0.55, 0) to this PNG")
    args = parser.parse_args()
    torch.set_num_threads(1)

    losses = {}
    for shaped in (True, False):
        name = "shaped" if shaped else "unshaped"
        print(f"meta-training the {name} loss ({args.outer_steps} outer steps)")
        recipe = MountainCarRecipe(shaped=shaped, outer_steps=args.outer_steps)
        losses[name], _ = meta_train(recipe, family="mountain-car", progress=False)

    scores, trajectories = compare_driving(losses, n_random=args.n_random)
    print(driving_table(scores))
    if args.plot:
        from learnedloss.families.mountain_car.plots import plot_trajectories

        print(f"wrote {plot_trajectories(trajectories, args.plot)}")


if __name__ == "__main__":
    main()
