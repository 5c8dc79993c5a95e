"""The fused CPU kernels of the bundled drop-ins (`learnedloss.kernels`).

The ops pass ``torch.library.opcheck``; a frozen bundled loss computes through them the values
and input gradients of the general path (`learnedloss.functional.general_loss`) for every
reduction, dtype and shape; calls the general path treats specially (NaN, infinities, huge
values, ``-inf`` masks, ignored or out-of-range class indices) are handed back to it; higher
derivatives, ``torch.func`` transforms and ``torch.compile`` still work; and, each in a fresh
process, ``LEARNEDLOSS_KERNELS=off`` and a machine without a compiler fall back to eager code,
and a library built by one process is loaded by the next without building again.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from learnedloss import LearnedLoss, kernels
from learnedloss.errors import LossInputError
from learnedloss.functional import feature_limit, general_loss

REGRESSION = "robust-regression"
CLASSIFICATION = ("noisy-labels", "digits-classification")
REDUCTIONS = ("mean", "sum", "none")
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

TOLERANCE = {
    torch.float16: 2e-3,
    torch.bfloat16: 1.6e-2,
    torch.float32: 2e-5,
    torch.float64: 1e-10,
}
"""Relative tolerance by the input's dtype: both paths compute in float32 (float64 for float64
inputs) and sum in different orders; the half types round the results to an ulp or two."""

REGRESSION_FLOAT64_TOLERANCE = 1e-6
"""robust-regression's float64 calls agree to float32 rounding only: the general path builds
the float32 network's quadratic coefficients in float32 (`MonotoneNetwork.coefficients`), the
fused path in float64 (`MonotoneNetwork.fast_tables`)."""

NOTICE = "learnedloss: the fused CPU kernels are not available"
"""The one line a process that cannot build the kernels prints."""

BUILDING = "learnedloss: building the fused CPU kernels"
"""The start of the line a process that builds the kernels prints."""


@pytest.fixture(scope="module", autouse=True)
def _kernels_loaded():
    assert kernels.load(), "the fused CPU kernels did not build or load in this process"


class KernelCalls(TorchDispatchMode):
    """Records the ``learnedloss::`` ops a call runs, each with the ``usable`` flag it
    returned (the ops run as they are: this only watches)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.namespace == "learnedloss":
            self.calls.append((func.name(), bool(out[2])))
        return out


def _regression_data(shape, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randn(shape, generator=generator)
    input = target + torch.randn(shape, generator=generator) * 0.5
    outliers = input.view(-1)[::9]
    outliers += 12.0 * torch.randn(outliers.shape, generator=generator)  # contamination
    return input.to(dtype), target.to(dtype)


def _classification_data(shape, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator) * 3.0
    target = torch.randint(0, shape[-1], shape[:-1], generator=generator)
    return logits.to(dtype), target


def _incoming(value: torch.Tensor) -> torch.Tensor:
    """The gradient a backward brings in: random for per-sample values, 0.75 for a scalar."""
    if value.dim() == 0:
        return torch.tensor(0.75, dtype=value.dtype)
    generator = torch.Generator().manual_seed(1)
    return (torch.rand(value.shape, generator=generator) + 0.5).to(value.dtype)


def _value_and_gradient(compute, input):
    input = input.detach().clone().requires_grad_(True)
    value = compute(input)
    (gradient,) = torch.autograd.grad(value, input, _incoming(value))
    return value.detach(), gradient


def _general(loss: LearnedLoss, target):
    def compute(input):
        return general_loss(
            loss.config,
            loss.network,
            input,
            target,
            reduction=loss.reduction,
            ignore_index=loss.ignore_index,
        )

    return compute


def _both_paths(loss: LearnedLoss, input, target):
    """``(value, gradient)`` of the loss's call, of the general path's, and the kernel calls
    the loss's call made."""
    calls = KernelCalls()
    with calls:
        fused = _value_and_gradient(lambda x: loss(x, target), input)
    return fused, _value_and_gradient(_general(loss, target), input), calls.calls


def _assert_close(got, expected, rtol):
    """``got`` equals ``expected`` to ``rtol``; near zero, to ``rtol`` times a typical
    magnitude (the 90th percentile, so that one huge element does not loosen the others), or
    two of the dtype's subnormal steps (a float16 gradient of a mean over 256000 elements is
    subnormal)."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    magnitudes = expected.detach().double().abs().nan_to_num(nan=0.0, posinf=0.0).reshape(-1)
    typical = float(torch.quantile(magnitudes, 0.9)) if magnitudes.numel() else 0.0
    info = torch.finfo(expected.dtype)
    atol = rtol * typical + 2 * info.smallest_normal * info.eps
    torch.testing.assert_close(got, expected, rtol=rtol, atol=atol, equal_nan=True)


def _regression_tolerance(dtype):
    return REGRESSION_FLOAT64_TOLERANCE if dtype == torch.float64 else TOLERANCE[dtype]


def _assert_same(fused, general, rtol):
    _assert_close(fused[0], general[0], rtol)
    _assert_close(fused[1], general[1], rtol)


# ------------------------------------------------------------------------------- opcheck


def _monotone_arguments(dtype, input_dtype, reduction, want_gradient):
    network = LearnedLoss.from_pretrained(REGRESSION).network
    tables = network.fast_tables(dtype)
    input, target = _regression_data((40, 1), input_dtype)
    lo, hi = network.grid_range[1]
    limit = feature_limit(dtype) / 2
    coefficients, boundaries = tables.coefficients, tables.boundaries
    return (input, target, coefficients, boundaries, lo, hi, limit, reduction, want_gradient)


def _classification_arguments(name, dtype, input_dtype, reduction, want_gradient, shape):
    loss = LearnedLoss.from_pretrained(name)
    logits, target = _classification_data(shape, input_dtype)
    lo, hi = loss.network.grid_range[0]
    target_axis = len(loss.config.inputs) == 2
    scale_form = loss.config.residual_form == "scale"
    columns = loss.network.coefficient_columns(dtype)
    limit = feature_limit(dtype)
    return (
        logits,
        target,
        columns,
        lo,
        hi,
        limit,
        target_axis,
        scale_form,
        reduction,
        want_gradient,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("want_gradient", [True, False])
def test_opcheck_monotone_regression(dtype, reduction, want_gradient):
    for input_dtype in (dtype, torch.float16):
        arguments = _monotone_arguments(dtype, input_dtype, reduction, want_gradient)
        torch.library.opcheck(torch.ops.learnedloss.monotone_regression.default, arguments)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("want_gradient", [True, False])
@pytest.mark.parametrize("name", CLASSIFICATION)
def test_opcheck_grid_classification(name, dtype, reduction, want_gradient):
    for input_dtype, shape in ((dtype, (12, 7)), (torch.bfloat16, (12, 7)), (dtype, (7,))):
        arguments = _classification_arguments(
            name, dtype, input_dtype, reduction, want_gradient, shape
        )
        torch.library.opcheck(torch.ops.learnedloss.grid_classification.default, arguments)


def test_opcheck_on_calls_the_kernels_hand_back():
    """The unusable outputs have the shapes and dtypes the fake implementations say."""
    for reduction in (0, 1):
        arguments = list(_monotone_arguments(torch.float32, torch.float32, reduction, True))
        arguments[0] = arguments[0].clone()
        arguments[0][3, 0] = math.nan
        torch.library.opcheck(torch.ops.learnedloss.monotone_regression.default, arguments)
        arguments = list(
            _classification_arguments(
                "noisy-labels", torch.float32, torch.float32, reduction, True, (5, 4)
            )
        )
        arguments[0] = arguments[0].clone()
        arguments[0][1, 2] = -math.inf
        torch.library.opcheck(torch.ops.learnedloss.grid_classification.default, arguments)


# ------------------------------------------------------------ agreement with the general path


@pytest.mark.parametrize("shape", [(64, 1), (37,), (256, 1000)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_robust_regression_equals_the_general_path(reduction, dtype, shape):
    loss = LearnedLoss.from_pretrained(REGRESSION, reduction=reduction)
    input, target = _regression_data(shape, dtype)
    fused, general, calls = _both_paths(loss, input, target)
    assert calls == [("learnedloss::monotone_regression", True)]
    _assert_same(fused, general, _regression_tolerance(dtype))


@pytest.mark.parametrize("shape", [(64, 10), (10,), (256, 1000), (1000,)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_equals_the_general_path(name, reduction, dtype, shape):
    loss = LearnedLoss.from_pretrained(name, reduction=reduction)
    logits, target = _classification_data(shape, dtype)
    fused, general, calls = _both_paths(loss, logits, target)
    assert calls == [("learnedloss::grid_classification", True)]
    _assert_same(fused, general, TOLERANCE[dtype])


def test_a_call_without_gradient_equals_the_general_path():
    for name, data in [(REGRESSION, _regression_data((50,), torch.float32))] + [
        (name, _classification_data((30, 6), torch.float32)) for name in CLASSIFICATION
    ]:
        for reduction in REDUCTIONS:
            loss = LearnedLoss.from_pretrained(name, reduction=reduction)
            calls = KernelCalls()
            with torch.no_grad(), calls:
                value = loss(*data)
            assert [usable for _, usable in calls.calls] == [True]
            _assert_close(value, _general(loss, data[1])(data[0]), TOLERANCE[torch.float32])


# ----------------------------------------------------------------------------- special values


def _with(tensor, index, value):
    tensor = tensor.clone()
    tensor.view(-1)[index] = value
    return tensor


HUGE = {torch.float32: 1e30, torch.float64: 1e200}
"""Finite values beyond the general path's feature limit (`FEATURE_LIMIT`), by dtype."""


def _regression_specials(dtype):
    input, target = _regression_data((64,), dtype)
    huge = HUGE[dtype]
    return {
        "nan input": (_with(input, 3, math.nan), target),
        "inf input": (_with(input, 5, math.inf), target),
        "-inf target": (input, _with(target, 7, -math.inf)),
        "nan target": (input, _with(target, 0, math.nan)),
        "huge input": (_with(input, 11, huge), target),
        "huge target": (input, _with(target, 13, -huge)),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "case",
    ["nan input", "inf input", "-inf target", "nan target", "huge input", "huge target"],
)
def test_robust_regression_hands_special_values_to_the_general_path(case, reduction, dtype):
    loss = LearnedLoss.from_pretrained(REGRESSION, reduction=reduction)
    input, target = _regression_specials(dtype)[case]
    fused, general, calls = _both_paths(loss, input, target)
    assert calls == [("learnedloss::monotone_regression", False)]
    _assert_same(fused, general, _regression_tolerance(dtype))


def test_robust_regression_with_huge_equal_input_and_target_equals_the_general_path():
    """A huge input and target whose residual is small: its feature is within the limit."""
    loss = LearnedLoss.from_pretrained(REGRESSION, reduction="none")
    input, target = _regression_data((64,), torch.float32)
    input, target = _with(input, 4, 1e30), _with(target, 4, 1e30)
    fused, general, _ = _both_paths(loss, input, target)
    _assert_same(fused, general, TOLERANCE[torch.float32])


def _classification_specials(dtype):
    classes = 10
    logits, target = _classification_data((24, classes), dtype)
    labelled = target + torch.arange(24) * classes  # each sample's labelled flat index
    masked = logits.clone()
    masked[2, (target[2] + 1) % classes] = -math.inf  # a masked class
    masked[5, :] = torch.where(torch.arange(classes) == target[5], 0.0, -math.inf)  # one left
    return {
        "nan logit": (_with(logits, 3 * classes + 1, math.nan), target),
        "inf logit": (_with(logits, 4 * classes + 2, math.inf), target),
        "-inf masked logits": (masked, target),
        "huge logit": (_with(logits, int(labelled[6]), HUGE[dtype]), target),
        "huge negative logit": (_with(logits, int(labelled[7]), -HUGE[dtype]), target),
        "default ignore_index": (logits, _with(target, 9, -100)),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "case",
    [
        "nan logit",
        "inf logit",
        "-inf masked logits",
        "huge logit",
        "huge negative logit",
        "default ignore_index",
    ],
)
@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_hands_special_values_to_the_general_path(name, case, reduction, dtype):
    loss = LearnedLoss.from_pretrained(name, reduction=reduction)
    logits, target = _classification_specials(dtype)[case]
    fused, general, calls = _both_paths(loss, logits, target)
    assert calls == [("learnedloss::grid_classification", False)]
    _assert_same(fused, general, TOLERANCE[dtype])


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_an_ignored_class_in_range_skips_the_kernel(name):
    for reduction in REDUCTIONS:
        loss = LearnedLoss.from_pretrained(name, reduction=reduction, ignore_index=3)
        logits, target = _classification_data((24, 10), torch.float32)
        target = _with(target, 0, 3)
        fused, general, calls = _both_paths(loss, logits, target)
        assert calls == []
        _assert_same(fused, general, TOLERANCE[torch.float32])


@pytest.mark.parametrize("index", [10, -1, -3])
@pytest.mark.parametrize("name", CLASSIFICATION)
def test_an_out_of_range_class_index_raises_as_the_general_path_does(name, index):
    loss = LearnedLoss.from_pretrained(name)
    logits, target = _classification_data((8, 10), torch.float32)
    target = _with(target, 2, index)
    with pytest.raises(LossInputError, match="outside") as general_error:
        general_loss(loss.config, loss.network, logits, target)
    calls = KernelCalls()
    with calls, pytest.raises(LossInputError) as error:
        loss(logits.requires_grad_(True), target)
    assert str(error.value) == str(general_error.value)
    assert calls.calls == [("learnedloss::grid_classification", False)]


# ------------------------------------------------------------------------- double backward


def _second_derivative(compute, input, direction):
    input = input.detach().clone().requires_grad_(True)
    value = compute(input)
    (gradient,) = torch.autograd.grad(value, input, _incoming(value), create_graph=True)
    (second,) = torch.autograd.grad((gradient * direction).sum(), input)
    return gradient.detach(), second


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", (REGRESSION, *CLASSIFICATION))
def test_double_backward_equals_the_general_path(name, reduction):
    loss = LearnedLoss.from_pretrained(name, reduction=reduction)
    if name == REGRESSION:
        input, target = _regression_data((48, 1), torch.float64)
    else:
        input, target = _classification_data((16, 10), torch.float64)
    direction = torch.randn(input.shape, generator=torch.Generator().manual_seed(2)).double()
    calls = KernelCalls()
    with calls:
        fused = _second_derivative(lambda x: loss(x, target), input, direction)
    general = _second_derivative(_general(loss, target), input, direction)
    assert [usable for _, usable in calls.calls][:1] == [True]
    # robust-regression's second derivative comes from the kernel's float64 coefficient
    # table; the general path builds the float32 network's coefficients in float32 (the
    # same 1e-6 as its values and gradients in float64, above)
    _assert_same(fused, general, 1e-6 if name == REGRESSION else 1e-9)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", (REGRESSION, *CLASSIFICATION))
def test_a_retained_graph_gives_the_same_gradient_twice(name, reduction):
    """The kernel's gradient is scaled in place by the first backward; a second one through
    the retained graph must not see it scaled twice."""
    loss = LearnedLoss.from_pretrained(name, reduction=reduction)
    if name == REGRESSION:
        input, target = _regression_data((64,), torch.float32)
    else:
        input, target = _classification_data((16, 10), torch.float32)
    input = input.clone().requires_grad_(True)
    value = loss(input, target)
    (first,) = torch.autograd.grad(value, input, _incoming(value), retain_graph=True)
    (second,) = torch.autograd.grad(value, input, _incoming(value))
    _, expected = _value_and_gradient(_general(loss, target), input)
    _assert_close(first, expected, TOLERANCE[torch.float32])
    _assert_close(second, expected, TOLERANCE[torch.float32])


# ------------------------------------------------------------- transforms and compilation


def _names_of_kernel_ops(profile) -> set[str]:
    return {event.name for event in profile.events() if "learnedloss::" in event.name}


@pytest.mark.parametrize("name", [REGRESSION, "noisy-labels"])
def test_vmap_takes_the_general_path(name):
    loss = LearnedLoss.from_pretrained(name)
    if name == REGRESSION:
        inputs, targets = _regression_data((4, 32), torch.float32)
    else:
        inputs, targets = _classification_data((4, 16, 10), torch.float32)
    with torch.profiler.profile() as profile:
        batched = torch.func.vmap(loss)(inputs, targets)
    assert not _names_of_kernel_ops(profile)
    expected = torch.stack([_general(loss, t)(x) for x, t in zip(inputs, targets, strict=True)])
    _assert_close(batched, expected, TOLERANCE[torch.float32])


@pytest.mark.parametrize("name", [REGRESSION, "noisy-labels"])
def test_compiled_calls_take_the_general_path(name):
    loss = LearnedLoss.from_pretrained(name)
    if name == REGRESSION:
        input, target = _regression_data((64, 1), torch.float32)
    else:
        input, target = _classification_data((32, 10), torch.float32)
    compiled = torch.compile(loss, backend="eager", fullgraph=True)
    with torch.profiler.profile() as profile:
        fused = _value_and_gradient(lambda x: compiled(x, target), input)
    assert not _names_of_kernel_ops(profile)
    _assert_same(fused, _value_and_gradient(_general(loss, target), input), 1e-5)


# ------------------------------------------------------- the switch and the fallback (processes)

CHILD = textwrap.dedent(
    """
    import json, sys, torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from learnedloss import LearnedLoss, kernels

    class KernelOps(TorchDispatchMode):  # watches the ops run (the profiler writes to stderr)
        def __init__(self):
            super().__init__()
            self.names = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.namespace == "learnedloss":
                self.names.add(func.name())
            return func(*args, **(kwargs or {}))

    generator = torch.Generator().manual_seed(0)
    calls = {
        "robust-regression": (torch.randn(64, 1, generator=generator) * 3,
                              torch.randn(64, 1, generator=generator)),
        "noisy-labels": (torch.randn(32, 10, generator=generator) * 3,
                         torch.randint(0, 10, (32,), generator=generator)),
        "digits-classification": (torch.randn(32, 10, generator=generator) * 3,
                                  torch.randint(0, 10, (32,), generator=generator)),
    }
    results = {}
    with KernelOps() as ops:
        for name, (input, target) in calls.items():
            loss = LearnedLoss.from_pretrained(name, reduction="none")
            input.requires_grad_(True)
            value = loss(input, target)
            (gradient,) = torch.autograd.grad(value.sum(), input)
            results[name] = (input.detach(), target, value.detach(), gradient)
    torch.save(results, sys.argv[1])
    print(json.dumps({"kernel_ops": sorted(ops.names), "loaded": kernels.loaded()}))
    """
)


def _run_child(tmp_path, tag, **settings):
    """Runs `CHILD` with a kernels directory of its own and ``settings`` in its environment;
    returns its report, its stderr lines and its results."""
    environment = dict(os.environ)
    environment.pop("LEARNEDLOSS_KERNELS", None)
    environment["LEARNEDLOSS_KERNELS_DIR"] = str(tmp_path / "kernels")
    environment["HF_HUB_OFFLINE"] = "1"
    environment.update(settings)
    results = tmp_path / f"{tag}.pt"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(results)],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report, done.stderr.splitlines(), torch.load(results)


def _assert_general_values(results):
    for name, (input, target, value, gradient) in results.items():
        loss = LearnedLoss.from_pretrained(name, reduction="none")
        input = input.clone().requires_grad_(True)
        general = _general(loss, target)(input)
        (general_gradient,) = torch.autograd.grad(general.sum(), input)
        _assert_close(value, general.detach(), TOLERANCE[torch.float32])
        _assert_close(gradient, general_gradient, TOLERANCE[torch.float32])


def test_the_switch_turns_the_kernels_off(tmp_path):
    report, stderr, results = _run_child(tmp_path, "off", LEARNEDLOSS_KERNELS="off")
    assert report == {"kernel_ops": [], "loaded": False}
    assert not [line for line in stderr if line.startswith("learnedloss:")]
    assert not (tmp_path / "kernels").exists()  # nothing built
    _assert_general_values(results)


@pytest.fixture(scope="module")
def no_compiler_run(tmp_path_factory):
    """One process on a machine without a C++ compiler (``CXX``, which
    ``torch.utils.cpp_extension`` compiles with, names none), with an empty kernels directory."""
    return _run_child(tmp_path_factory.mktemp("no-compiler"), "run", CXX="/nonexistent/c++")


def test_a_machine_without_a_compiler_falls_back_with_one_notice(no_compiler_run):
    report, stderr, results = no_compiler_run
    assert report == {"kernel_ops": [], "loaded": False}
    notices = [line for line in stderr if line.startswith(NOTICE)]
    assert len(notices) == 1 and notices[0].endswith("; using eager code"), stderr
    _assert_general_values(results)


def test_a_machine_without_a_compiler_prints_nothing_but_the_notice(no_compiler_run):
    """Issue 28: a machine without a compiler falls back "with a one-line notice": no notice
    that a build starts, no compiler warning from torch, just the one line."""
    _, stderr, _ = no_compiler_run
    assert len(stderr) == 1 and stderr[0].startswith(NOTICE), stderr


@pytest.mark.slow
def test_a_fresh_build_is_loaded_by_the_next_process(tmp_path):
    kernel_ops = [
        "learnedloss::grid_classification",
        "learnedloss::monotone_regression",
    ]
    report, stderr, results = _run_child(tmp_path, "first")
    assert report == {"kernel_ops": kernel_ops, "loaded": True}
    notices = [line for line in stderr if line.startswith("learnedloss:")]
    assert len(notices) == 1 and notices[0].startswith(BUILDING), stderr
    assert list((tmp_path / "kernels").glob("*/*.so"))
    _assert_general_values(results)

    report, stderr, results = _run_child(tmp_path, "second")
    assert report == {"kernel_ops": kernel_ops, "loaded": True}
    assert not [line for line in stderr if line.startswith("learnedloss:")], stderr
    _assert_general_values(results)


@pytest.mark.parametrize("name", (REGRESSION, *CLASSIFICATION))
def test_a_call_under_inference_mode_leaves_the_loss_ready_to_train(name):
    """A frozen loss's first call under ``torch.inference_mode`` caches its coefficient tables
    as inference tensors, and targets made there are inference tensors too; a training call
    afterwards must still give the general path's gradient, first and second derivatives
    (autograd refuses to save inference tensors for backward)."""
    loss = LearnedLoss.from_pretrained(name)
    if name == REGRESSION:
        input, _ = _regression_data((64,), torch.float64)
    else:
        input, _ = _classification_data((16, 10), torch.float64)
    with torch.inference_mode():
        made = (
            _regression_data((64,), torch.float64)
            if name == REGRESSION
            else _classification_data((16, 10), torch.float64)
        )
        target = made[1].clone()
        loss(*made)  # caches the tables
    assert target.is_inference()
    direction = torch.randn(input.shape, generator=torch.Generator().manual_seed(3)).double()
    fused = _second_derivative(lambda x: loss(x, target), input, direction)
    general = _second_derivative(_general(loss, target), input, direction)
    _assert_same(fused, general, 1e-6)


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_opcheck_monotone_regression_loss(reduction):
    """The regression loss's autograd-carrying op: schema, autograd registration and fake
    tensors. Its C++ backward reads values (the incoming gradient, the knot spacing), so
    AOT dispatch cannot trace it; compiled calls never reach it (they take the general path,
    test_compiled_calls_take_the_general_path)."""
    arguments = list(_monotone_arguments(torch.float32, torch.float32, reduction, True))[:8]
    arguments[0] = arguments[0].clone().requires_grad_(True)
    torch.library.opcheck(
        torch.ops.learnedloss.monotone_regression_loss.default,
        tuple(arguments),
        test_utils=("test_schema", "test_autograd_registration", "test_faketensor"),
    )
