"""Model-based RL: meta-train a loss for optimizing reacher policies through a learned
dynamics model, then measure the policies in MuJoCo.

Fits a dynamics model of gymnasium's MuJoCo ``Reacher-v5`` on random episodes, meta-trains
a loss over (fingertip, goal, joint velocity, torque, time) by evolution strategies (the
model is refitted with real roll-outs as it goes), and compares policies trained with it
against policies trained with the task loss (``nn.MSELoss()`` on the fingertip), at the
same and at its tuned learning rate, by their final distance to held-out goals in MuJoCo.
It prints how far the loss's gradient stayed from collapsing.

    python examples/reacher.py --seeds 5
"""

from __future__ import annotations

import argparse

import torch

from learnedloss.families.reacher.recipe import (
    CollapseMonitor,
    ReacherRecipe,
    evaluate_reacher,
    meta_train_reacher,
    summarize_reaching,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outer-steps", type=int, default=ReacherRecipe().outer_steps)
    parser.add_argument("--random-episodes", type=int, default=ReacherRecipe.random_episodes)
    parser.add_argument("--fit-steps", type=int, default=ReacherRecipe.fit_steps)
    parser.add_argument("--seeds", type=int, default=5, help="evaluation seeds")
    parser.add_argument("--n-goals", type=int, default=32, help="held-out goals per seed")
    args = parser.parse_args()
    torch.set_num_threads(1)

    recipe = ReacherRecipe(
        outer_steps=args.outer_steps,
        random_episodes=args.random_episodes,
        fit_steps=args.fit_steps,
    )
    print(f"meta-training ({args.outer_steps} outer steps, evolution strategies)")
    loss, trainer, tasks = meta_train_reacher(recipe, progress=False)
    ratios = [r["gradient_ratio"] for r in trainer.history if "gradient_ratio" in r]
    ratios.append(CollapseMonitor(tasks).ratio(loss))  # the final loss's
    print(
        f"gradient of the learned loss / the task loss's on fresh policies: "
        f"min {min(ratios):.3g} over {len(ratios)} checks; collapsed at: "
        f"{loss.metadata['training']['collapsed_at']}"
    )
    per_seed = [
        evaluate_reacher({"learned": loss}, recipe, seed=seed, n_goals=args.n_goals)
        for seed in range(args.seeds)
    ]
    print(summarize_reaching(per_seed))


if __name__ == "__main__":
    main()
