"""Where the time of a small loss call goes, and what a call costs against nn.HuberLoss / CE.

    python benchmarks/call_profile.py                     # CPU, 1 thread, every bundled drop-in
    python benchmarks/call_profile.py --losses robust-regression noisy-labels --top 8
    python benchmarks/call_profile.py --quick             # a smoke run

A call is one ``loss(input, target).backward()``. The bundled drop-ins (the bundled losses that
are called like the standard loss; those that read side inputs are left out) run next to
``nn.MSELoss``, ``nn.HuberLoss`` and ``nn.CrossEntropyLoss``.

Part 1, small calls: at 32 and 256 elements (a regression prediction of shape (N, 1); for
classification, N rows of 10 logits and N class indices), one table per loss:

- µs/call: wall time, the median over rounds in which every loss of the kind is called in
  turn, and its ratio to ``nn.HuberLoss`` (regression) or ``nn.CrossEntropyLoss``;
- aten ops/call: every ``aten::`` operator the profiler records (nested ones included), and
  the leaf ones among them (those that call no other aten operator: the ones that do the work);
- outside ops: profiled time per call that no operator accounts for (Python, argument checks,
  autograd glue);
- the operators (and autograd Functions) with the most self time per call.

Profiled times (torch.profiler, CPU, ``--profile-calls`` calls after warm-up) carry the
profiler's own overhead per operator; the wall column does not.

Part 2, the per-call targets of issue 28: regression (4096, 1), (65536, 1), (256, 1000) against
``nn.HuberLoss``, and logits (256, 10), (256, 1000) against ``nn.CrossEntropyLoss``; each cell is
the median µs per call and the median per-round ratio, all from one run (``--target-repeats``
rounds). A timed sample is ``--calls`` calls at up to 4096 elements and proportionally fewer (at
least one) above; one call per sample (the default) keeps samples short, so that on a loaded
machine most of them run unpreempted and the median ignores the rest.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

import torch
from drop_ins import bundled_of_kind, form_of
from interleaved_timing import Timing, summarize, time_rounds
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

import learnedloss

REFERENCE = {"regression": nn.HuberLoss, "classification": nn.CrossEntropyLoss}
SMALL_ELEMENTS = (32, 256)
SMALL_CLASSES = 10
TARGET_SHAPES = {
    "regression": [(4096, 1), (65536, 1), (256, 1000)],
    "classification": [(256, 10), (256, 1000)],
}
CALL_LABEL = "loss call"


def losses_of_kind(kind: str, only: list[str] | None) -> dict[str, nn.Module]:
    """The reference loss first, the other standard loss of the kind, then the drop-ins."""
    reference = REFERENCE[kind]()
    losses: dict[str, nn.Module] = {f"nn.{type(reference).__name__}": reference}
    if kind == "regression":
        losses["nn.MSELoss"] = nn.MSELoss()
    losses.update(bundled_of_kind(kind, only).drop_ins)
    return losses


def make_batch(kind: str, shape: tuple[int, ...], seed: int = 0):
    """(input requiring grad, target) of one batch: a prediction or logits of ``shape``."""
    generator = torch.Generator().manual_seed(seed)
    input = torch.randn(shape, generator=generator).requires_grad_(True)
    if kind == "classification":
        target = torch.randint(0, shape[1], shape[:1], generator=generator)
    else:
        target = torch.randn(shape, generator=generator)
    return input, target


def one_call(loss_fn: nn.Module, batch) -> None:
    """One forward and backward of the loss; the input's gradient is dropped."""
    input, target = batch
    loss_fn(input, target).backward()
    input.grad = None


def time_calls(losses: dict[str, nn.Module], batch, args, repeats: int) -> list[Timing]:
    """Interleaved wall time of one call of each loss, ratios against the first."""
    calls = max(1, min(args.calls, args.calls * 4096 // batch[0].numel()))
    candidates = [lambda fn=fn: one_call(fn, batch) for fn in losses.values()]
    rounds = time_rounds(candidates, torch.device("cpu"), args.warmup, repeats, calls)
    return summarize(rounds)


@dataclass(frozen=True)
class CallProfile:
    """What the profiler saw per call of one loss.

    Attributes:
        aten_ops: ``aten::`` operators recorded per call (mean), nested ones included.
        leaf_ops: those among them that call no other ``aten::`` operator.
        outside_us: median profiled µs of a call not inside any recorded operator.
        top: (name, median self µs per call, calls per call) of the operators with the most
            self time.
    """

    aten_ops: float
    leaf_ops: float
    outside_us: float
    top: list[tuple[str, float, float]]


def enclosing_call(event):
    """The profiled call an event happened in (the ``CALL_LABEL`` range above it), or None."""
    while event is not None and event.name != CALL_LABEL:
        event = event.cpu_parent
    return event


def self_time_by_call(events) -> tuple[list, dict[str, dict[int, float]]]:
    """The profiled calls, and for each operator name its self µs summed within each call
    (keyed by the call event's id)."""
    calls = [event for event in events if event.name == CALL_LABEL]
    self_us: defaultdict[str, defaultdict[int, float]] = defaultdict(lambda: defaultdict(float))
    for event in events:
        call = enclosing_call(event)
        if event.name != CALL_LABEL and call is not None:
            self_us[event.name][call.id] += event.self_cpu_time_total
    return calls, self_us


def profile_call(loss_fn: nn.Module, batch, calls: int, top: int) -> CallProfile:
    """Profile ``calls`` calls of a loss (after one untimed call) on CPU.

    Times are medians over the profiled calls, so that a call preempted on a loaded machine
    does not put its delay on whatever operator it happened in; counts are means.
    """
    one_call(loss_fn, batch)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(calls):
            with record_function(CALL_LABEL):
                one_call(loss_fn, batch)
    events = profiler.events()
    aten = [event for event in events if event.name.startswith("aten::")]
    leaves = [e for e in aten if not any(c.name.startswith("aten::") for c in e.cpu_children)]
    counts = Counter(event.name for event in events)
    profiled, self_us = self_time_by_call(events)

    def median_us(name: str) -> float:
        return statistics.median(self_us[name].get(call.id, 0.0) for call in profiled)

    ranked = sorted(self_us, key=median_us, reverse=True)[:top]
    return CallProfile(
        aten_ops=len(aten) / calls,
        leaf_ops=len(leaves) / calls,
        outside_us=statistics.median(call.self_cpu_time_total for call in profiled),
        top=[(name, median_us(name), counts[name] / calls) for name in ranked],
    )


def print_small_call_tables(kind: str, losses: dict[str, nn.Module], args) -> None:
    """Part 1: one table per loss, a row per small size."""
    reference = next(iter(losses))
    rows: dict[str, list[str]] = {name: [] for name in losses}
    for elements in SMALL_ELEMENTS:
        shape = (elements, SMALL_CLASSES) if kind == "classification" else (elements, 1)
        batch = make_batch(kind, shape)
        timings = time_calls(losses, batch, args, args.repeats)
        for (name, loss_fn), timing in zip(losses.items(), timings, strict=True):
            seen = profile_call(loss_fn, batch, args.profile_calls, args.top)
            top = "; ".join(f"{op} {us:.1f} (×{n:g})" for op, us, n in seen.top)
            cells = [str(elements), f"{timing.median_s * 1e6:.1f}", f"{timing.ratio:.2f}×"]
            cells += [f"{seen.aten_ops:g}", f"{seen.leaf_ops:g}", f"{seen.outside_us:.1f}", top]
            rows[name].append("| " + " | ".join(cells) + " |")
    header = ["elements", "µs/call", f"× {reference}", "aten ops/call", "leaf aten ops/call"]
    header += ["outside ops µs/call (profiled)", "top self time, µs/call (calls/call)"]
    for name, loss_fn in losses.items():
        print(f"\n#### {name} ({kind}, {form_of(loss_fn)})\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        print("\n".join(rows[name]))


def print_target_table(kind: str, losses: dict[str, nn.Module], args) -> None:
    """Part 2: rows are losses, columns the issue's target shapes, µs and ratio per cell."""
    shapes = TARGET_SHAPES[kind]
    reference = next(iter(losses))
    cells: dict[str, list[str]] = {name: [] for name in losses}
    for shape in shapes:
        timings = time_calls(losses, make_batch(kind, shape), args, args.target_repeats)
        for name, timing in zip(losses, timings, strict=True):
            cells[name].append(f"{timing.median_s * 1e6:.0f} ({timing.ratio:.2f}×)")
    what = "logits " if kind == "classification" else ""
    print(f"\n### Per call, {kind}: µs (median ratio to {reference})\n")
    print("| loss | form | " + " | ".join(f"{what}{shape}" for shape in shapes) + " |")
    print("|" + "---|" * (len(shapes) + 2))
    for name, loss_fn in losses.items():
        print(f"| {name} | {form_of(loss_fn)} | " + " | ".join(cells[name]) + " |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--losses", nargs="+", help="bundled names or loss directories (default: all drop-ins)"
    )
    parser.add_argument("--kinds", nargs="+", choices=list(REFERENCE), default=list(REFERENCE))
    parser.add_argument("--repeats", type=int, default=60, help="timed rounds, small sizes")
    parser.add_argument("--target-repeats", type=int, default=15, help="timed rounds, part 2")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds per size")
    parser.add_argument("--calls", type=int, default=1, help="calls per sample (small sizes)")
    parser.add_argument("--profile-calls", type=int, default=20, help="calls profiled per size")
    parser.add_argument("--top", type=int, default=5, help="operators listed by self time")
    parser.add_argument("--skip-targets", action="store_true", help="only the small-call tables")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 or 2 rounds of 1 call")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.target_repeats, args.warmup, args.profile_calls = 2, 1, 0, 1
        args.calls = 1
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"device=cpu threads={torch.get_num_threads()} torch={torch.__version__} "
        f"learnedloss={learnedloss.__version__}"
    )
    losses = {kind: losses_of_kind(kind, args.losses) for kind in args.kinds}
    print("\n## Small calls: where the time goes")
    for kind in args.kinds:
        print_small_call_tables(kind, losses[kind], args)
    if not args.skip_targets:
        print("\n## Per call at the sizes of issue 28")
        for kind in args.kinds:
            print_target_table(kind, losses[kind], args)


if __name__ == "__main__":
    main()
