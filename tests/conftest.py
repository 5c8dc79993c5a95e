"""Shared fixtures. No test may reach the network: sockets are blocked and the Hub is offline."""

from __future__ import annotations

import socket

import huggingface_hub.constants
import pytest
import torch

from learnedloss import LearnedLoss, LossConfig


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """Force huggingface_hub offline, point its cache at a temp dir, and block sockets."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path_factory.mktemp("hf-cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def small_loss() -> LearnedLoss:
    """A freshly initialized loss with biases, seeded."""
    torch.manual_seed(0)
    return LearnedLoss(LossConfig(hidden_sizes=(8, 8), activation="elu", bias=True))
