"""save_pretrained killed at random points: from_pretrained gives the old loss or the new one.

A helper process imports torch once, then forks a child per round that saves three losses
over one directory in a cycle (another activation, then another architecture), reporting
each finished save. The test kills the child with SIGKILL after a random delay and loads the
directory: it must hold exactly the last finished save or the one in progress (or, were
the protection to fail, raise a clear CheckpointError; a silent mix never passes).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from learnedloss import CheckpointError, LearnedLoss, LossConfig

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a saving child process")

ROUNDS = 40

HELPER = textwrap.dedent(
    """
    import os, sys
    import torch
    torch.set_num_threads(1)
    from learnedloss import LearnedLoss

    sources, target = sys.argv[1:4], sys.argv[4]
    losses = [LearnedLoss.from_pretrained(s) for s in sources]
    for loss in losses:
        loss.metadata = dict(loss.metadata)
    print("ready", flush=True)
    for line in sys.stdin:
        start = int(line)
        pid = os.fork()
        if pid == 0:  # the child: save forever, saying which save finished
            i = start
            while True:
                losses[i % 3].save_pretrained(target)
                os.write(1, f"done {i}\\n".encode())
                i += 1
        print(f"child {pid}", flush=True)
        os.waitpid(pid, 0)
        print("dead", flush=True)
    """
)


def make_losses() -> list[LearnedLoss]:
    configs = [
        LossConfig(hidden_sizes=(8, 8), activation="elu", bias=True),
        LossConfig(hidden_sizes=(8, 8), activation="relu", bias=True),  # same shapes
        LossConfig(hidden_sizes=(32, 16, 4), activation="tanh"),  # another architecture
    ]
    losses = []
    for seed, config in enumerate(configs):
        torch.manual_seed(seed)
        loss = LearnedLoss(config, metadata={"description": f"loss {seed}", "pad": "x" * 20000})
        losses.append(loss)
    return losses


def identify(loss: LearnedLoss, losses: list[LearnedLoss]) -> int | None:
    """Which of ``losses`` computes exactly what ``loss`` does, with the same metadata."""
    torch.manual_seed(99)
    x, y = torch.randn(64), torch.randn(64)
    for i, candidate in enumerate(losses):
        if (
            candidate.config == loss.config
            and candidate.metadata == loss.metadata
            and torch.equal(candidate(x, y), loss(x, y))
        ):
            return i
    return None


def test_an_interrupted_save_leaves_the_old_or_the_new_checkpoint(tmp_path):
    losses = make_losses()
    sources = []
    for i, loss in enumerate(losses):
        sources.append(str(loss.save_pretrained(tmp_path / f"source{i}")))
    target = tmp_path / "checkpoint"
    losses[0].save_pretrained(target)
    (target / "history.json").write_text("[0.5, 0.25]")  # the user's file, never touched
    current = 0  # index (mod 3) of the loss the directory holds

    helper = subprocess.Popen(
        [sys.executable, "-c", HELPER, *sources, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    rng = random.Random(0)
    outcomes = {"old": 0, "new": 0}
    try:
        assert helper.stdout.readline().strip() == "ready"
        for _ in range(ROUNDS):
            start = current + 1
            helper.stdin.write(f"{start}\n")
            helper.stdin.flush()
            pid = int(helper.stdout.readline().split()[1])
            time.sleep(rng.uniform(0.0, 0.25))  # a save takes 5-100 ms (fsync)
            os.kill(pid, signal.SIGKILL)
            finished = []
            for line in helper.stdout:
                if line.strip() == "dead":
                    break
                finished.append(int(line.split()[1]))
            old = finished[-1] if finished else current
            new = old + 1
            try:
                loaded = LearnedLoss.from_pretrained(target)
            except CheckpointError:  # allowed by the contract; never seen with the journal
                outcomes.setdefault("error", 0)
                outcomes["error"] += 1
                continue
            which = identify(loaded, losses)
            assert which is not None, "the directory holds a mix of two saves"
            assert which in (old % 3, new % 3), (which, old, new)
            outcomes["old" if which == old % 3 else "new"] += 1
            current = old if which == old % 3 else new
    finally:
        helper.stdin.close()
        helper.kill()
        helper.wait(timeout=30)
    assert (target / "history.json").read_text() == "[0.5, 0.25]"
    assert outcomes.get("error", 0) == 0, outcomes
    assert sum(outcomes.values()) == ROUNDS
    # The kills landed in different phases: before and after the commit point.
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes
