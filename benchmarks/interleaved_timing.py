"""Round-robin timing: every round calls each candidate once, in turn, so that the load of a
shared machine hits all of them alike. A cell is a median over rounds, and a ratio is the median
over rounds of the per-round ratio, so a slow round inflates neither.

Used by benchmarks/step_overhead.py and benchmarks/call_profile.py.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a host clock measures it; nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_rounds(
    candidates: Sequence[Callable[[], object]],
    device: torch.device,
    warmup: int,
    repeats: int,
    calls_per_sample: int = 1,
) -> list[list[float]]:
    """Time each candidate once per round, round-robin.

    Args:
        candidates: callables with no arguments (one training step, one loss call, ...).
        device: where they run; CUDA work is synchronized around every sample.
        warmup: untimed rounds first (caches, lazy initialisation, compilation).
        repeats: timed rounds.
        calls_per_sample: calls timed together per sample, to lift tiny calls above the
            resolution and overhead of the clock.

    Returns:
        ``rounds[r][k]``: seconds per call of candidate ``k`` in timed round ``r``.
    """
    rounds = []
    for round_index in range(warmup + repeats):
        seconds = []
        for candidate in candidates:
            synchronize(device)
            start = time.perf_counter()
            for _ in range(calls_per_sample):
                candidate()
            synchronize(device)
            seconds.append((time.perf_counter() - start) / calls_per_sample)
        if round_index >= warmup:
            rounds.append(seconds)
    return rounds


@dataclass(frozen=True)
class Timing:
    """One candidate's summary over the timed rounds.

    Attributes:
        median_s: median seconds per call.
        ratio: median over rounds of (this candidate / the reference) in the same round.
        added_s: median over rounds of (this candidate - the reference), in seconds.
    """

    median_s: float
    ratio: float
    added_s: float


def summarize(rounds: list[list[float]], reference: int = 0) -> list[Timing]:
    """Per-candidate medians and paired ratios against candidate ``reference``."""
    timings = []
    for k in range(len(rounds[0])):
        timings.append(
            Timing(
                median_s=statistics.median(r[k] for r in rounds),
                ratio=statistics.median(r[k] / r[reference] for r in rounds),
                added_s=statistics.median(r[k] - r[reference] for r in rounds),
            )
        )
    return timings
