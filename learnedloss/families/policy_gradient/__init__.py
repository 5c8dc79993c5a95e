"""Model-free RL (ML3 sec. V-D): a drop-in for the REINFORCE surrogate, on point-mass goals
and on cart-pole."""

from learnedloss.families.policy_gradient.cart_pole import CartPoleTasks
from learnedloss.families.policy_gradient.point_mass import PointMassGoals
from learnedloss.families.policy_gradient.recipe import (
    PolicyGradientRecipe,
    evaluate_policy_gradient,
)

__all__ = [
    "CartPoleTasks",
    "PointMassGoals",
    "PolicyGradientRecipe",
    "evaluate_policy_gradient",
]
