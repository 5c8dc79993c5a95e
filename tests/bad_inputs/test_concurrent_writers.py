"""Real processes writing one directory at once: nothing is lost, nothing is mixed.

Two processes `save_pretrained` two different losses into one directory while a third loads
it, for `ROUNDS` rounds in a row: every save and every load must succeed, every load must be
one of the two losses whole, and afterwards the directory loads and takes one more save. A
second meta-training run started into a run directory another process is training in is
refused, and the first run's checkpoints stay whole.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from learnedloss import LearnedLoss, RunDirectoryError
from tests.bad_inputs.conftest import make_trainer, refused

ROUNDS = 20
SAVES_PER_ROUND = 3
ROOT = Path(__file__).resolve().parents[2]

LOSSES = textwrap.dedent(
    """
    import torch
    from learnedloss import LearnedLoss, LossConfig

    def make_losses():
        configs = [
            LossConfig(hidden_sizes=(8, 8), activation="elu", bias=True),
            LossConfig(hidden_sizes=(16,), activation="tanh"),
        ]
        losses = []
        for seed, config in enumerate(configs):
            torch.manual_seed(seed)
            losses.append(LearnedLoss(config, metadata={"description": f"loss {seed}"}))
        return losses

    def identify(loss, losses):
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
    """
)

WORKER = LOSSES + textwrap.dedent(
    """
    import sys, traceback
    from pathlib import Path
    torch.set_num_threads(1)
    role, root, saves = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    losses = make_losses()
    print("ready", flush=True)
    for line in sys.stdin:
        i = int(line)
        target = root / f"round-{i}"
        try:
            if role == "reader":
                loads = 0
                while not (root / f"stop-{i}").exists() or loads == 0:
                    which = identify(LearnedLoss.from_pretrained(target), losses)
                    if which is None:
                        raise AssertionError("a mix of two saves loaded")
                    loads += 1
                print(f"ok {i} {loads}", flush=True)
            else:
                for _ in range(saves):
                    losses[int(role)].save_pretrained(target, check=False)
                print(f"ok {i} {saves}", flush=True)
        except BaseException:
            message = traceback.format_exc().replace(chr(10), " | ")
            print(f"fail {i} {message}", flush=True)
    """
)


def _known_losses():
    namespace: dict = {}
    exec(LOSSES, namespace)
    return namespace["make_losses"](), namespace["identify"]


def _start(role: str, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, role, str(root), str(SAVES_PER_ROUND)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def test_two_writers_and_a_reader_never_fail_or_mix(tmp_path):
    from learnedloss import hub

    losses, identify = _known_losses()
    workers = {role: _start(role, tmp_path) for role in ("0", "1", "reader")}
    try:
        for worker in workers.values():
            assert worker.stdout.readline().strip() == "ready"
        for i in range(ROUNDS):
            target = tmp_path / f"round-{i}"
            losses[i % 2].save_pretrained(target, check=False)  # the reader has a loss
            for worker in workers.values():
                worker.stdin.write(f"{i}\n")
                worker.stdin.flush()
            for role in ("0", "1"):
                report = workers[role].stdout.readline()
                assert report.startswith(f"ok {i}"), f"writer {role}: {report}"
            (tmp_path / f"stop-{i}").touch()
            report = workers["reader"].stdout.readline()
            assert report.startswith(f"ok {i}"), f"reader: {report}"
            assert identify(LearnedLoss.from_pretrained(target), losses) in (0, 1)
            assert not list(target.glob(f"{hub.JOURNAL_PREFIX}*"))
            losses[0].save_pretrained(target, check=False)  # the directory still saves
            assert identify(LearnedLoss.from_pretrained(target), losses) == 0
    finally:
        for worker in workers.values():
            worker.stdin.close()
        for worker in workers.values():
            worker.wait(timeout=60)


RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.bad_inputs.conftest import make_trainer
    run_dir, stop = Path(sys.argv[1]), Path(sys.argv[2])

    def wait_for_stop(trainer, record):
        if trainer.step == 2:  # after the checkpoint of step 1
            print("running", flush=True)
            while not stop.exists():
                time.sleep(0.02)

    make_trainer(run_dir, callbacks=[wait_for_stop]).fit(3)
    print("finished", flush=True)
    """
)


def test_a_second_run_into_a_busy_run_directory_is_refused(tmp_path):
    run_dir, stop = tmp_path / "run", tmp_path / "stop"
    first = subprocess.Popen(
        [sys.executable, "-c", RUN, str(run_dir), str(stop)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().strip() == "running"
        assert (run_dir / "latest").read_text().strip() == "step-0000001"
        for how in ("fresh", "overwrite", "resume"):  # overwrite would delete its checkpoints
            second = make_trainer(run_dir)
            with refused(RunDirectoryError, "is in use", "another run"):
                second.fit(3, overwrite=how == "overwrite", resume=how == "resume")
            assert second.step == 0
    finally:
        stop.touch()
        out, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and "finished" in out
    # the first run's checkpoints are whole: latest names its last step, and it resumes
    assert (run_dir / "latest").read_text().strip() == "step-0000003"
    assert sorted(p.name for p in run_dir.glob("step-*")) == ["step-0000002", "step-0000003"]
    resumed = make_trainer(run_dir)
    resumed.fit(4, resume=True)
    assert resumed.step == 4


def test_the_lock_files_live_outside_the_directories(tmp_path):
    """A checkpoint directory holds its three files only, during and after a save."""
    directory = tmp_path / "loss"
    torch.manual_seed(0)
    LearnedLoss.from_pretrained("mse-fit").save_pretrained(directory, check=False)
    assert sorted(os.listdir(directory)) == ["README.md", "config.json", "model.safetensors"]
