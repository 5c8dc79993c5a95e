"""Simulators, written in torch and batched, for control tasks."""

from learnedloss.envs.cart_pole import CartPole
from learnedloss.envs.mountain_car import MountainCar
from learnedloss.envs.point_mass import PointMass

__all__ = ["CartPole", "MountainCar", "PointMass"]
