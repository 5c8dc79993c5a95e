"""Model-free RL: meta-train a drop-in for the REINFORCE surrogate, then score it honestly.

Meta-trains a policy-gradient loss on point-mass goals (`PointMassGoals`;
``--env cart-pole`` for gymnasium's cart-pole, `CartPoleTasks`):
it starts as REINFORCE with a baseline and learns a per-step correction of the advantage
from (advantage, reward-to-go, time step), by evolution strategies on the cost of the
trained policies. Then trains fresh policies on held-out goals with it, with REINFORCE with
and without a baseline and with the 1.5x control, each at its own tuned learning rate, and
prints the cost (for the point mass, the mean distance to the goal) against the number of
policy updates.

    python examples/policy_gradient.py --plot policy-gradient.png
"""

from __future__ import annotations

import argparse

import torch

from learnedloss.evaluation.plots import plot
from learnedloss.families.policy_gradient.recipe import (
    ENVS,
    REFERENCE,
    PolicyGradientRecipe,
    evaluate_policy_gradient,
)
from learnedloss.families.recipe import meta_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=list(ENVS), default="point-mass")
    parser.add_argument("--outer-steps", type=int, default=PolicyGradientRecipe().outer_steps)
    parser.add_argument("--n-tasks", type=int, default=100, help="held-out goals")
    parser.add_argument("--tune-tasks", type=int, default=32, help="goals for lr tuning")
    parser.add_argument("--plot", help="write the held-out curves to this PNG")
    args = parser.parse_args()
    torch.set_num_threads(1)

    recipe = PolicyGradientRecipe(env=args.env, outer_steps=args.outer_steps)
    print(f"meta-training ({args.outer_steps} outer steps, evolution strategies)")
    loss, trainer = meta_train(recipe, family="policy-gradient", progress=False)
    tuned, _ = evaluate_policy_gradient(
        loss, recipe.tasks(), n_tasks=args.n_tasks, tune_tasks=args.tune_tasks
    )
    print(tuned.table())
    print("\ncost after each policy update (mean over held-out runs):")
    for name, score in tuned.scores.items():
        print(f"  {name:28s} " + " ".join(f"{v:.3f}" for v in score.curve_mean.tolist()))
    print(f"\nlearned / {REFERENCE}: {tuned.ratio('learned'):.3f}")
    if args.plot:
        title = f"held-out {args.env} tasks"
        png = plot(tuned, args.plot, history=trainer.history, title=title)
        print(f"wrote {png}")


if __name__ == "__main__":
    main()
