"""Differentiable simulators, written in torch, for control tasks."""

from learnedloss.envs.mountain_car import MountainCar

__all__ = ["MountainCar"]
