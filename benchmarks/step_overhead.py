"""Time full training steps with each bundled drop-in against the standard loss it replaces.

    python benchmarks/step_overhead.py                    # CPU (+ CUDA if present), 1 thread, eager
    python benchmarks/step_overhead.py --compile          # add torch.compile columns, graph breaks
    python benchmarks/step_overhead.py --quick            # a smoke run: few rounds, one step each
    python benchmarks/step_overhead.py --workloads tabular --losses robust-regression --repeats 200

What a user of a drop-in feels is the time of a whole training step, not of the loss alone. A
step here is ``zero_grad; loss_fn(model(x), y).backward(); SGD step`` on a fixed batch, for
three workloads:

- ``tabular``: MLP 13-64-64-1, batch 32, against ``nn.MSELoss``;
- ``mlp``: MLP 128-256-256-1, batch 256, against ``nn.MSELoss``;
- ``cnn``: a small CNN on 1x28x28 images, batch 128, 10 classes, against
  ``nn.CrossEntropyLoss``.

Every bundled loss of the workload's kind that is called like the standard loss runs; those
that read side inputs are listed as skipped. Each loss trains its own copy of the model from
the same initialisation. The candidates are timed round-robin (one sample of ``--steps`` steps
each, per round); a cell is the median over ``--repeats`` rounds, and a ratio is the median of
the per-round ratios to the standard loss, so all ratios of a table come from one run.

With ``--compile`` every candidate also runs with ``model(x)`` and the loss under
``torch.compile`` (backward through the compiled graph, the SGD step eager), interleaved with
the eager steps; the graph breaks that ``torch._dynamo.explain`` finds in that forward are
counted, and the time of the first (compiling) step is reported. That time is short where
inductor's on-disk cache already holds the graph, or where an earlier loss of the same
architecture compiled it (parameters are graph inputs, so the guards pass and nothing
recompiles).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from drop_ins import STANDARD_LOSS, bundled_of_kind, form_of
from interleaved_timing import Timing, summarize, synchronize, time_rounds
from torch import nn

import learnedloss


@dataclass(frozen=True)
class Workload:
    """One model and batch that a training step runs on.

    Attributes:
        title: how the tables name it.
        kind: the loss kind it trains with (``"regression"`` or ``"classification"``).
        build_model: a fresh model, its parameters drawn from torch's global generator.
        sample_shape: the shape of one input sample.
        batch: default batch size.
        classes: the number of classes of a classification target; ``None`` for regression.
    """

    title: str
    kind: str
    build_model: Callable[[], nn.Module]
    sample_shape: tuple[int, ...]
    batch: int
    classes: int | None = None


def mlp(*sizes: int) -> nn.Sequential:
    """A ReLU MLP through the given layer sizes."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def small_cnn() -> nn.Sequential:
    """Two 3x3 conv + max-pool blocks and a linear layer: 1x28x28 images to 10 logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


WORKLOADS = {
    "tabular": Workload(
        "tabular MLP 13-64-64-1", "regression", lambda: mlp(13, 64, 64, 1), (13,), 32
    ),
    "mlp": Workload("MLP 128-256-256-1", "regression", lambda: mlp(128, 256, 256, 1), (128,), 256),
    "cnn": Workload("small CNN on 1x28x28", "classification", small_cnn, (1, 28, 28), 128, 10),
}


def make_batch(workload: Workload, batch: int, device: torch.device, seed: int = 0):
    """A fixed (input, target) batch of the workload, on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    input = torch.randn((batch, *workload.sample_shape), generator=generator)
    if workload.classes is None:
        target = torch.randn((batch, 1), generator=generator)
    else:
        target = torch.randint(0, workload.classes, (batch,), generator=generator)
    return input.to(device), target.to(device)


class TrainingStep:
    """One SGD training step of a private copy of a workload's model with one loss.

    Args:
        workload: the model to build (seeded, so every loss starts from the same weights).
        loss_fn: the loss, called as ``loss_fn(model(input), target)``.
        batch: the (input, target) batch every step trains on.
        lr: SGD learning rate (small, so that a long benchmark keeps the weights in range).
        compiled: run ``model(input)`` and the loss under ``torch.compile``.
        seed: torch's global seed before the model is built.
    """

    def __init__(self, workload, loss_fn, batch, lr: float, compiled: bool, seed: int = 0):
        device = batch[0].device
        torch.manual_seed(seed)
        self.model = workload.build_model().to(device)
        self.loss_fn = loss_fn.to(device)
        self.batch = batch
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.forward = torch.compile(self.forward_loss) if compiled else self.forward_loss

    def forward_loss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of the model on one batch."""
        return self.loss_fn(self.model(input), target)

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.forward(*self.batch).backward()
        self.optimizer.step()


def graph_breaks(step: TrainingStep) -> tuple[int, list[str]]:
    """Graph breaks that dynamo finds in a step's forward and loss, with their reasons."""
    explained = torch._dynamo.explain(step.forward_loss)(*step.batch)
    reasons = []
    for reason in explained.break_reasons:
        where = reason.user_stack[-1] if reason.user_stack else None
        at = f" at {where.filename}:{where.lineno} ({where.name})" if where else ""
        described = str(reason.reason).splitlines()[0][:120] + at
        if described not in reasons:
            reasons.append(described)
    return explained.graph_break_count, reasons


def first_step_seconds(step: TrainingStep) -> float:
    """Time of one step, run before any other (for a compiled step: the compilation)."""
    device = step.batch[0].device
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


@dataclass
class Candidate:
    """A loss to time on a workload, and what the table says about it."""

    name: str
    loss_fn: nn.Module
    steps: list[TrainingStep]
    breaks: tuple[int, list[str]] | None = None
    compile_s: float | None = None
    timings: list[Timing] = field(default_factory=list)
    compiled_over_eager: float | None = None


def build_candidates(workload, batch, args) -> tuple[list[Candidate], dict[str, tuple[str, ...]]]:
    """The standard loss first, then each bundled drop-in; and the bundled losses left out."""
    bundled = bundled_of_kind(workload.kind, args.losses)
    standard = STANDARD_LOSS[workload.kind]()
    losses = {f"nn.{type(standard).__name__}": standard, **bundled.drop_ins}
    candidates = []
    for name, loss_fn in losses.items():
        eager = TrainingStep(workload, loss_fn, batch, args.lr, compiled=False)
        candidates.append(Candidate(name, loss_fn, [eager]))
    if args.compile:
        for candidate in candidates:  # explain resets dynamo: before anything is compiled
            candidate.breaks = graph_breaks(candidate.steps[0])
        for candidate in candidates:
            compiled = TrainingStep(workload, candidate.loss_fn, batch, args.lr, compiled=True)
            candidate.compile_s = first_step_seconds(compiled)
            candidate.steps.append(compiled)
    return candidates, bundled.left_out


def print_table(title: str, candidates: list[Candidate], left_out, compiled: bool) -> None:
    """Print one workload's markdown table from timings already attached to the candidates."""
    header = ["loss", "form", "ms/step", "+ms/step", "× standard"]
    if compiled:
        header += ["compiled ms/step", "× standard compiled", "compiled / eager"]
        header += ["graph breaks", "first compiled step (s)"]
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for candidate in candidates:
        eager = candidate.timings[0]
        cells = [candidate.name, form_of(candidate.loss_fn), f"{eager.median_s * 1e3:.3f}"]
        cells += [f"{eager.added_s * 1e3:+.3f}", f"{eager.ratio:.2f}×"]
        if compiled:
            fast = candidate.timings[1]
            cells += [f"{fast.median_s * 1e3:.3f}", f"{fast.ratio:.2f}×"]
            cells += [f"{candidate.compiled_over_eager:.2f}×", str(candidate.breaks[0])]
            cells.append(f"{candidate.compile_s:.1f}")
        print("| " + " | ".join(cells) + " |")
    for name, side_inputs in left_out.items():
        note = f"skipped: reads side inputs ({', '.join(side_inputs)})"
        print("| " + " | ".join([name, "—", note] + [""] * (len(header) - 3)) + " |")
    for candidate in candidates:
        for reason in (candidate.breaks or (0, []))[1]:
            print(f"\ngraph break in {candidate.name}: {reason}")


def run_workload(name: str, device: torch.device, args) -> None:
    """Build, time and print one workload on one device."""
    workload = WORKLOADS[name]
    batch_size = getattr(args, f"batch_{name}")
    batch = make_batch(workload, batch_size, device)
    candidates, left_out = build_candidates(workload, batch, args)
    # eager standard, eager losses, then (with --compile) compiled standard, compiled losses
    modes = len(candidates[0].steps)
    steps = [candidate.steps[mode] for mode in range(modes) for candidate in candidates]
    rounds = time_rounds(steps, device, args.warmup, args.repeats, args.steps)
    n = len(candidates)
    eager = summarize([r[:n] for r in rounds])
    compiled = summarize([r[n:] for r in rounds]) if args.compile else None
    for k, candidate in enumerate(candidates):
        candidate.timings = [eager[k]] + ([compiled[k]] if compiled else [])
        if compiled:  # paired within each round, like every other ratio
            candidate.compiled_over_eager = statistics.median(r[n + k] / r[k] for r in rounds)
    standard = candidates[0].name
    title = (
        f"### {workload.title}, batch {batch_size}: {device}, "
        f"{'eager and torch.compile' if args.compile else 'eager'}, against {standard} "
        f"(median of {args.repeats} rounds × {args.steps} steps)"
    )
    print_table(title, candidates, left_out, args.compile)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--device", nargs="+", default=default_devices, help="cpu and/or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    for name, workload in WORKLOADS.items():
        parser.add_argument(f"--batch-{name}", type=int, default=workload.batch, help="batch size")
    parser.add_argument("--losses", nargs="+", help="bundled names to time (default: all)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed sample")
    parser.add_argument("--lr", type=float, default=1e-4, help="SGD learning rate")
    parser.add_argument("--compile", action="store_true", help="also time under torch.compile")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 1 step")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup, args.steps = 2, 0, 1
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.compile:  # every candidate shares forward_loss's code: one graph per candidate
        torch._dynamo.config.recompile_limit = 256
        torch._dynamo.config.accumulated_recompile_limit = 4096
    print(
        f"threads={torch.get_num_threads()} torch={torch.__version__} "
        f"learnedloss={learnedloss.__version__} devices={' '.join(args.device)}"
    )
    for device in args.device:
        for name in args.workloads:
            run_workload(name, torch.device(device), args)


if __name__ == "__main__":
    main()
