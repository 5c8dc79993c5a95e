"""Mountain car (ML3 sec. V-C): a loss shaped with a waypoint that teaches exploration."""

from learnedloss.families.mountain_car.recipe import (
    MountainCarRecipe,
    compare_driving,
)
from learnedloss.families.mountain_car.tasks import MountainCarPolicy, MountainCarTasks

__all__ = [
    "MountainCarPolicy",
    "MountainCarRecipe",
    "MountainCarTasks",
    "compare_driving",
]
