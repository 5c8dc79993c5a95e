"""Data-parallel meta-training under torchrun: 2 gloo processes on the CPU equal one process.

The tests start ``python -m torch.distributed.run --standalone --nproc-per-node 2`` on this
file, whose ``__main__`` runs scenarios on every rank and writes what rank 0 (and each rank)
ended with; the single-process references run in the test process. Tiny sizes: the launches
take most of the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from learnedloss import LearnedLoss, MetaTrainer
from learnedloss.families.sine import SineTasks
from learnedloss.meta import EvolutionStrategies
from learnedloss.meta.distributed import Distributed, DistributedError, Ranks, distributed_from
from learnedloss.meta.graphs import StaticMetaStep, flatten_inputs, unflatten_inputs
from learnedloss.starts import mse_start_config

STEPS = 4
TOLERANCE = dict(rtol=1e-4, atol=2e-6)
"""Two ranks sum their partial meta-gradients where one process sums all tasks at once, so
the weights agree up to float32 rounding (measured: within 1e-6 after 4 Adam steps)."""

SCENARIOS = {
    # name: (estimator, meta-batch)
    "backprop": ("backprop", 4),
    "es": ("es", 4),
    "uneven": ("backprop", 5),  # 3 + 2 tasks
    "dropped": ("backprop", 4),  # rank 1's gradient left out of the sum: must differ
}


def make_trainer(estimator: str = "backprop", meta_batch_size: int = 4, **kwargs) -> MetaTrainer:
    torch.manual_seed(0)
    loss = LearnedLoss(mse_start_config(hidden=(8, 8)))
    meta_gradient = EvolutionStrategies(pairs=2, sigma=0.05) if estimator == "es" else "backprop"
    return MetaTrainer(
        loss,
        SineTasks(n_train=20, n_query=20, hidden=(16, 8), outlier_fraction=0.2),
        inner_steps=3,
        inner_lr=0.02,
        meta_batch_size=meta_batch_size,
        validation_size=4,
        validate_every=2,
        meta_lr=1e-2,
        meta_gradient=meta_gradient,
        progress=False,
        **kwargs,
    )


def weights_of(trainer: MetaTrainer) -> dict[str, list]:
    return {k: v.tolist() for k, v in trainer.loss.state_dict().items()}


def result_of(trainer: MetaTrainer, best: LearnedLoss) -> dict:
    return {
        "weights": weights_of(trainer),
        "history": trainer.history,
        "best_step": trainer.best_step,
        "best_weights": {k: v.tolist() for k, v in (trainer._best_weights or {}).items()},
        "world_size": trainer.world_size,
    }


# ---------------------------------------------------------------------------------------------
# the worker, run by torchrun on every rank


def _worker(argv: list[str]) -> None:
    torch.set_num_threads(1)
    mode, out = argv[0], Path(argv[1])
    rank = int(os.environ["RANK"])
    if mode == "equal":
        for name, (estimator, batch) in SCENARIOS.items():
            trainer = make_trainer(estimator, batch)
            if name == "dropped":
                _drop_rank_1(trainer)
            best = trainer.fit(STEPS)
            _write(out / f"{name}.rank{rank}.json", result_of(trainer, best))
        # an interrupted run: 2 steps, then a new trainer resumes from the checkpoint
        make_trainer(run_dir=out / "run", checkpoint_every=2).fit(2)
        trainer = make_trainer(run_dir=out / "run", checkpoint_every=2)
        best = trainer.fit(STEPS, resume=True)
        _write(out / f"resume.rank{rank}.json", result_of(trainer, best))
    elif mode in ("raise", "hang"):

        def misbehave(trainer, record):
            if trainer.rank == 1 and record["step"] == 2:
                if mode == "raise":
                    raise RuntimeError("rank 1 failed on purpose at outer step 2")
                time.sleep(600)

        timeout = Distributed(timeout=float(argv[2]))
        make_trainer(callbacks=[misbehave], distributed=timeout).fit(STEPS)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


def _drop_rank_1(trainer: MetaTrainer) -> None:
    """A deliberately broken all-reduce: rank 1's meta-gradient is replaced by zeros."""
    ranks = trainer._ranks
    original = ranks.sum_gradients

    def dropped(weights, value):
        if ranks.rank == 1:
            for weight in weights.values():
                if weight.grad is not None:
                    weight.grad = torch.zeros_like(weight.grad)
        return original(weights, value)

    ranks.sum_gradients = dropped


def _write(path: Path, result: dict) -> None:
    path.write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# the tests


def torchrun(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--monitor-interval",
        "0.5",
        *args,
    ]
    start = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=Path.cwd()
    )
    return done, time.monotonic() - start


def launch(mode: str, out: Path, *extra: str, timeout: float = 120):
    return torchrun(__file__, mode, str(out), *extra, timeout=timeout)


@pytest.fixture(scope="module")
def equal_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    done, _ = launch("equal", out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def load(out: Path, name: str) -> tuple[dict, dict]:
    return tuple(json.loads((out / f"{name}.rank{r}.json").read_text()) for r in (0, 1))


def single_process(estimator: str, batch: int) -> tuple[MetaTrainer, LearnedLoss]:
    trainer = make_trainer(estimator, batch, distributed=False)
    return trainer, trainer.fit(STEPS)


def assert_weights_close(result: dict, trainer: MetaTrainer, **tolerance) -> None:
    for name, value in trainer.loss.state_dict().items():
        torch.testing.assert_close(torch.tensor(result["weights"][name]), value, **tolerance)


@pytest.mark.parametrize("scenario", ["backprop", "es", "uneven"])
def test_two_ranks_learn_the_weights_one_process_learns(equal_run, scenario):
    rank0, rank1 = load(equal_run, scenario)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["weights"] == rank1["weights"]  # every rank holds the same loss
    assert rank0["history"] == rank1["history"]  # and agrees on validation and the best step
    trainer, _ = single_process(*SCENARIOS[scenario])
    assert trainer.world_size == 1
    assert_weights_close(rank0, trainer, **TOLERANCE)
    assert rank0["best_step"] == trainer.best_step
    for name, value in trainer._best_weights.items():  # keep="best" keeps the same loss
        torch.testing.assert_close(torch.tensor(rank0["best_weights"][name]), value, **TOLERANCE)
    single = trainer.history
    assert [r["step"] for r in rank0["history"]] == [r["step"] for r in single]
    for mine, theirs in zip(rank0["history"], single, strict=True):
        assert mine["meta_train"] == pytest.approx(theirs["meta_train"], rel=1e-5)
        if "meta_val" in theirs:
            assert mine["meta_val"] == pytest.approx(theirs["meta_val"], rel=1e-5)
    assert any(  # and the loss did move, so the comparison means something
        not torch.equal(v, make_trainer(distributed=False).loss.state_dict()[k])
        for k, v in trainer.loss.state_dict().items()
    )


def test_the_comparison_fails_when_one_ranks_gradient_is_dropped(equal_run):
    rank0, _ = load(equal_run, "dropped")
    trainer, _ = single_process("backprop", 4)
    with pytest.raises(AssertionError):
        assert_weights_close(rank0, trainer, **TOLERANCE)
    # and not narrowly: the largest difference is far above the tolerance
    largest = max(
        float((torch.tensor(rank0["weights"][k]) - v).abs().max())
        for k, v in trainer.loss.state_dict().items()
    )
    assert largest > 100 * TOLERANCE["atol"]


def test_a_resumed_distributed_run_equals_an_uninterrupted_one(equal_run):
    resumed, resumed1 = load(equal_run, "resume")
    uninterrupted, _ = load(equal_run, "backprop")
    assert resumed["weights"] == resumed1["weights"]
    assert resumed["weights"] == uninterrupted["weights"]  # bit for bit
    assert resumed["history"] == uninterrupted["history"]
    assert resumed["best_step"] == uninterrupted["best_step"]
    # only rank 0 wrote, and the checkpoint is the one a single process resumes from
    trainer = make_trainer(run_dir=equal_run / "run", distributed=False)
    trainer.fit(STEPS, resume=True)
    assert trainer.step == STEPS


def test_a_rank_that_raises_ends_the_job_with_its_error(tmp_path):
    done, seconds = launch("raise", tmp_path, "30")
    assert done.returncode != 0
    assert "rank 1 failed on purpose at outer step 2" in done.stdout + done.stderr
    assert seconds < 60


def test_a_rank_that_hangs_ends_the_job_at_the_timeout(tmp_path):
    done, seconds = launch("hang", tmp_path, "3")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "DistributedError" in output and "at most 3 s" in output, output[-3000:]
    assert seconds < 60


def test_torchrun_cli_meta_train_saves_once_on_rank_0(tmp_path):
    out = tmp_path / "loss"
    done, _ = torchrun(
        "-m",
        "learnedloss",
        "meta-train",
        "sine",
        "--outer-steps",
        "2",
        "--inner-steps",
        "2",
        "--meta-batch",
        "2",
        "--validate-every",
        "1",
        "--hidden",
        "8",
        "8",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert [r["step"] for r in history] == [1, 2]
    assert LearnedLoss.from_pretrained(out).metadata["training"]["outer_steps"] == 2


# ---------------------------------------------------------------------------------------------
# without processes


def test_shares_cover_every_item_once():
    for n in (2, 5, 8, 13):
        for world in (1, 2, 3, 4):
            if n < world:
                continue
            shares = [range(n)[Ranks(r, world).share(n)] for r in range(world)]
            assert [i for s in shares for i in s] == list(range(n))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_too_few_tasks_for_the_ranks_is_refused_before_work():
    with pytest.raises(ValueError, match="fewer than the 4 ranks"):
        Ranks(0, 4).check_divisible(3, "meta_batch_size")


def test_settings_are_checked():
    assert distributed_from(False) is None
    assert distributed_from("auto") == distributed_from(True) == Distributed()
    with pytest.raises(ValueError, match="timeout"):
        Distributed(timeout=0)
    with pytest.raises(ValueError, match="backend"):
        Distributed(backend="mpi")
    with pytest.raises(ValueError, match="distributed must be"):
        distributed_from("yes")


def test_outside_a_job_the_trainer_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    trainer = make_trainer()
    assert (trainer.rank, trainer.world_size) == (0, 1)


def test_distributed_error_is_a_runtime_error():
    assert issubclass(DistributedError, RuntimeError)


# ---------------------------------------------------------------------------------------------
# the CUDA-graph option: on the CPU, the same static-buffer step runs eagerly


def test_cuda_graph_option_on_the_cpu_is_the_eager_run_bit_for_bit():
    eager = make_trainer(distributed=False)
    eager.fit(3)
    graphed = make_trainer(distributed=False, cuda_graph=True)
    graphed.fit(3)
    assert graphed._static_step is not None and graphed._static_step.captures == 0
    assert graphed.history == eager.history
    for name, value in eager.loss.state_dict().items():
        assert torch.equal(graphed.loss.state_dict()[name], value), name


def test_static_step_takes_new_shapes_and_keeps_its_buffers():
    weight = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
    step = StaticMetaStep(lambda inputs: (weight * inputs["x"]).sum() ** 2, {"w": weight}, False)
    for x in (torch.tensor([1.0, 3.0]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])):
        value = step({"x": x})
        expected = (weight.detach() * x).sum()
        assert value == pytest.approx(float(expected**2))
        torch.testing.assert_close(weight.grad, 2 * expected * x.reshape(-1, 2).sum(0))
    batch = SineTasks(n_train=5, n_query=3).sample(2, torch.Generator().manual_seed(0))
    params = {"w": torch.ones(2, 3)}
    again, again_params = unflatten_inputs(batch, flatten_inputs(batch, params))
    assert torch.equal(again.y_query, batch.y_query) and torch.equal(again_params["w"], params["w"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(meta_gradient=EvolutionStrategies(pairs=2)), "backpropagated step"),
        (dict(path="loop"), "vmap path"),
        (dict(checkpoint_inner=True), "checkpoint_inner"),
    ],
)
def test_cuda_graph_refuses_what_it_cannot_capture(settings, message):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=message):
        MetaTrainer(
            LearnedLoss(mse_start_config(hidden=(8, 8))),
            SineTasks(),
            cuda_graph=True,
            progress=False,
            **settings,
        )


if __name__ == "__main__":
    _worker(sys.argv[1:])
