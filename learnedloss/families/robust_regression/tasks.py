"""Broad robust-regression tasks: many function families and real tabular data sets, each with
random target scales and offsets, and training targets corrupted at 0-40% in three ways.

A task draws ``n_train + n_query`` rows of one *source*, standardizes the inputs (with the
training rows' statistics), rescales and shifts the targets by a random ``a`` and ``b``, and
corrupts a random fraction of the *training* targets; the query targets stay clean, so the
meta-objective scores what the model learned of the true function. Every task of one
meta-batch comes from one source and one model width (they are stacked for
``torch.func.vmap``); the next meta-batch draws both again.

Sources:

- ``"synthetic"``: functions of 1-8 standard-normal inputs: random teacher MLPs, sums of
  sines, quadratics, and piecewise-linear ridges, with a little Gaussian noise.
- real tables that ship inside scikit-learn and statsmodels (nothing is downloaded): see
  `TABLES`. `META_TRAIN_TABLES` are the ones meta-training may use; `HELD_OUT_TABLES` are never
  meta-trained on nor tuned on: only the transfer evaluation (`transfer.py`) touches them.

Corruptions of the training targets (in units of the clean targets' robust spread):

- ``"uniform"``: replaced by uniform noise on [-10, 10];
- ``"heavy"``: plus 3 × standard-Cauchy noise (heavy-tailed, both sides);
- ``"one-sided"``: plus 3 + 5·|N(0, 1)| (all outliers above the truth, which biases the mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from learnedloss.tasks.base import TaskBatch, TaskFamily
from learnedloss.tasks.models import MODEL_ACTIVATIONS, mlp

CORRUPTIONS = ("uniform", "heavy", "one-sided")


@dataclass(frozen=True)
class Table:
    """A real regression table: where it ships and which column is the target."""

    package: str
    loader: str
    target: str
    drop: tuple[str, ...] = ()
    description: str = ""


TABLES: dict[str, Table] = {
    # meta-training
    "grunfeld": Table(
        "statsmodels",
        "grunfeld",
        "invest",
        ("firm", "year"),
        "Grunfeld investment: gross investment from firm value and capital",
    ),
    "macrodata": Table(
        "statsmodels",
        "macrodata",
        "realinv",
        ("year", "quarter"),
        "US macro data 1959-2009: real investment from 11 other series",
    ),
    "engel": Table(
        "statsmodels", "engel", "foodexp", (), "Engel's food expenditure from household income"
    ),
    "fair": Table(
        "statsmodels",
        "fair",
        "yrs_married",
        (),
        "Fair's survey: years married from 8 covariates",
    ),
    "wine": Table(
        "sklearn",
        "load_wine",
        "alcohol",
        (),
        "sklearn wine: alcohol content from 12 chemical measurements",
    ),
    "breast-cancer": Table(
        "sklearn",
        "load_breast_cancer",
        "worst texture",
        ("mean texture",),
        "sklearn breast cancer: worst texture from 28 other cell features",
    ),
    # held out: never meta-trained on, never tuned on
    "diabetes": Table(
        "sklearn",
        "load_diabetes",
        "target",
        (),
        "sklearn diabetes: disease progression from 10 baseline variables",
    ),
    "star98": Table(
        "statsmodels",
        "star98",
        "pass_rate",
        ("NABOVE", "NBELOW"),
        "STAR98 California schools: share above the national median, 20 covariates",
    ),
    "randhie": Table(
        "statsmodels",
        "randhie",
        "mdvis",
        (),
        "RAND health insurance experiment: outpatient visits from 9 covariates",
    ),
}
META_TRAIN_TABLES = ("grunfeld", "macrodata", "engel", "fair", "wine", "breast-cancer")
HELD_OUT_TABLES = ("diabetes", "star98", "randhie")


@cache
def load_table(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)`` of a table in `TABLES`: float32 inputs ``(rows, features)`` and targets
    ``(rows,)``, both as shipped (no scaling). Rows with missing values are dropped."""
    table = TABLES[name]
    if table.package == "sklearn":
        import sklearn.datasets

        frame = getattr(sklearn.datasets, table.loader)(as_frame=True).frame
    else:
        try:
            import statsmodels.api as sm
        except ImportError as err:
            raise ImportError(
                f"the {name!r} table ships with statsmodels: pip install 'learnedloss[data]'"
            ) from err
        frame = getattr(sm.datasets, table.loader).load_pandas().data
    frame = frame.copy()
    if name == "star98":
        frame["pass_rate"] = frame["NABOVE"] / (frame["NABOVE"] + frame["NBELOW"])
    frame = frame.drop(columns=list(table.drop))
    if "target" in frame.columns and table.target != "target":
        frame = frame.drop(columns=["target"])
    frame = frame.select_dtypes("number").dropna()
    y = torch.tensor(frame[table.target].to_numpy(), dtype=torch.float32)
    x = torch.tensor(frame.drop(columns=[table.target]).to_numpy(), dtype=torch.float32)
    return x, y


def robust_standardize(y: torch.Tensor) -> torch.Tensor:
    """``(y - median) / (1.4826 · MAD)``: unit spread for Gaussian data, outliers ignored."""
    center = y.median()
    spread = 1.4826 * (y - center).abs().median()
    if spread <= 0:  # more than half the targets equal: fall back to the standard deviation
        spread = y.std().clamp_min(1e-12)
    return (y - center) / spread


def _uniform(shape, low, high, generator):
    return torch.rand(shape, generator=generator) * (high - low) + low


def _log_uniform(shape, low, high, generator):
    lo, hi = torch.tensor([low, high]).log()
    return _uniform(shape, float(lo), float(hi), generator).exp()


def corrupt(
    y: torch.Tensor,
    fraction: torch.Tensor,
    kinds: Sequence[str],
    generator: torch.Generator,
) -> torch.Tensor:
    """Corrupt ``fraction[t]`` of the targets of task ``t`` (``y``: ``(T, N)``, robustly
    standardized) with corruption ``kinds[t]`` (one of `CORRUPTIONS`); returns a copy."""
    y = y.clone()
    n_tasks, n = y.shape
    order = torch.rand(n_tasks, n, generator=generator).argsort(dim=1)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(n).expand(n_tasks, n))
    chosen = ranks < (fraction.view(-1, 1) * n).round()
    uniform = _uniform((n_tasks, n), -10.0, 10.0, generator)
    cauchy = torch.tan(torch.pi * (torch.rand(n_tasks, n, generator=generator) - 0.5))
    above = 3.0 + 5.0 * torch.randn(n_tasks, n, generator=generator).abs()
    for t, kind in enumerate(kinds):
        if kind == "uniform":
            new = uniform[t]
        elif kind == "heavy":
            new = y[t] + 3.0 * cauchy[t]
        elif kind == "one-sided":
            new = y[t] + above[t]
        else:
            raise ValueError(f"corruption must be one of {list(CORRUPTIONS)}, got {kind!r}")
        y[t] = torch.where(chosen[t], new, y[t])
    return y


def synthetic_functions(
    n_tasks: int, n_points: int, n_inputs: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(T, N, d)`` ~ N(0, I) and targets ``(T, N)`` of one random function family per
    task: a teacher MLP, a sum of sines, a quadratic form or a piecewise-linear ridge."""
    x = torch.randn(n_tasks, n_points, n_inputs, generator=generator)
    ys = []
    for t in range(n_tasks):
        kind = int(torch.randint(0, 4, (), generator=generator))
        xt = x[t]
        if kind == 0:  # teacher MLP
            w1 = torch.randn(n_inputs, 32, generator=generator) / n_inputs**0.5
            b1 = torch.randn(32, generator=generator) * 0.5
            w2 = torch.randn(32, generator=generator) / 32**0.5
            y = torch.tanh(2 * (xt @ w1 + b1)) @ w2
        elif kind == 1:  # sum of sines
            freq = _uniform((4, n_inputs), -2.0, 2.0, generator)
            phase = _uniform((4,), -3.14, 3.14, generator)
            y = torch.sin(xt @ freq.T + phase).sum(-1)
        elif kind == 2:  # quadratic form plus linear part
            q = torch.randn(n_inputs, n_inputs, generator=generator) / n_inputs
            y = ((xt @ q) * xt).sum(-1) + xt @ torch.randn(n_inputs, generator=generator)
        else:  # piecewise-linear ridges
            w = torch.randn(3, n_inputs, generator=generator) / n_inputs**0.5
            y = (xt @ w.T).abs().sum(-1) - (xt @ w.T).clamp_min(0).sum(-1) * 0.5
        ys.append(y + 0.1 * y.std() * torch.randn(n_points, generator=generator))
    return x, torch.stack(ys)


class RobustRegressionTasks(TaskFamily):
    """Regression tasks from many sources with corrupted training targets (see the module).

    Args:
        sources: what tasks draw from: ``"synthetic"`` and/or names in `TABLES`. One source
            per meta-batch, uniformly at random.
        n_train: training rows per task (the inner loop trains on all of them each step).
        n_query: clean query rows per task (the meta-objective's data).
        outlier_fraction: ``(low, high)``: each task's fraction of corrupted training targets
            is uniform on it (``(f, f)`` fixes it).
        corruptions: the kinds of corruption tasks draw from, uniformly (`CORRUPTIONS`).
        target_scale: ``(low, high)``: each task's targets are multiplied by a log-uniform
            factor from it, after robust standardization.
        target_offset: ``(low, high)``: and shifted by a uniform offset (in units of that
            factor).
        widths: the hidden widths the models draw from (one per meta-batch).
        depth: hidden layers of the MLP (fixed for a family).
        activation: the MLP's hidden activation.
        synthetic_inputs: ``(low, high)`` input dimensions of synthetic tasks.
    """

    loss_kind = "regression"

    def __init__(
        self,
        sources: Sequence[str] = ("synthetic", *META_TRAIN_TABLES),
        n_train: int = 96,
        n_query: int = 64,
        outlier_fraction: tuple[float, float] = (0.0, 0.4),
        corruptions: Sequence[str] = CORRUPTIONS,
        target_scale: tuple[float, float] = (0.3, 3.0),
        target_offset: tuple[float, float] = (-3.0, 3.0),
        widths: Sequence[int] = (16, 32, 64),
        depth: int = 2,
        activation: str = "relu",
        synthetic_inputs: tuple[int, int] = (1, 8),
    ) -> None:
        unknown = [s for s in sources if s != "synthetic" and s not in TABLES]
        if not sources or unknown:
            raise ValueError(f"sources must be 'synthetic' or in {list(TABLES)}, got {unknown}")
        bad = [c for c in corruptions if c not in CORRUPTIONS]
        if not corruptions or bad:
            raise ValueError(f"corruptions must be in {list(CORRUPTIONS)}, got {list(corruptions)}")
        if not 0.0 <= outlier_fraction[0] <= outlier_fraction[1] < 1.0:
            raise ValueError(
                f"outlier_fraction must be 0 <= low <= high < 1, got {outlier_fraction}"
            )
        if activation not in MODEL_ACTIVATIONS:
            raise ValueError(f"activation must be in {list(MODEL_ACTIVATIONS)}, got {activation!r}")
        for name in sources:
            if name != "synthetic" and len(load_table(name)[1]) < n_train + n_query:
                raise ValueError(f"table {name!r} has fewer than n_train + n_query rows")
        self.sources, self.corruptions = tuple(sources), tuple(corruptions)
        self.n_train, self.n_query = n_train, n_query
        self.outlier_fraction, self.target_scale = outlier_fraction, target_scale
        self.target_offset, self.widths = target_offset, tuple(widths)
        self.depth, self.activation = depth, activation
        self.synthetic_inputs = synthetic_inputs
        self._shape = self._first_shape()

    def _first_shape(self) -> tuple[int, int]:
        source = self.sources[0]
        n_inputs = (
            self.synthetic_inputs[0] if source == "synthetic" else load_table(source)[0].shape[1]
        )
        return n_inputs, self.widths[0]

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        source = self.sources[int(torch.randint(0, len(self.sources), (), generator=generator))]
        width = self.widths[int(torch.randint(0, len(self.widths), (), generator=generator))]
        n = self.n_train + self.n_query
        if source == "synthetic":
            low, high = self.synthetic_inputs
            n_inputs = int(torch.randint(low, high + 1, (), generator=generator))
            x, y = synthetic_functions(n_tasks, n, n_inputs, generator)
            y = torch.stack([robust_standardize(row) for row in y])
        else:
            table_x, table_y = load_table(source)
            table_y = robust_standardize(table_y)
            rows = torch.stack(
                [torch.randperm(len(table_y), generator=generator)[:n] for _ in range(n_tasks)]
            )
            x, y = table_x[rows], table_y[rows]
        self._shape = (x.shape[-1], width)
        train = x[:, : self.n_train]
        mean, std = train.mean(dim=1, keepdim=True), train.std(dim=1, keepdim=True)
        x = (x - mean) / std.clamp_min(1e-6)
        scale = _log_uniform((n_tasks, 1), *self.target_scale, generator)
        offset = _uniform((n_tasks, 1), *self.target_offset, generator) * scale
        fraction = _uniform((n_tasks,), *self.outlier_fraction, generator)
        kinds = [
            self.corruptions[int(i)]
            for i in torch.randint(0, len(self.corruptions), (n_tasks,), generator=generator)
        ]
        y_train = corrupt(y[:, : self.n_train], fraction, kinds, generator)
        y_train = y_train * scale + offset
        y_query = y[:, self.n_train :] * scale + offset
        extra = {"outlier_fraction": fraction, "target_scale": scale.view(-1)}
        return TaskBatch(
            x[:, : self.n_train],
            y_train.unsqueeze(-1),
            x[:, self.n_train :],
            y_query.unsqueeze(-1),
            extra,
        )

    def make_model(self) -> nn.Module:
        """A fresh MLP for the current meta-batch's input size and width (the last `sample`)."""
        n_inputs, width = self._shape
        return mlp((n_inputs, *[width] * self.depth, 1), self.activation)

    def describe(self) -> dict:
        """The family's settings, JSON-ready (for configs and model cards)."""
        return {
            "family": "robust-regression",
            "sources": list(self.sources),
            "n_train": self.n_train,
            "n_query": self.n_query,
            "outlier_fraction": list(self.outlier_fraction),
            "corruptions": list(self.corruptions),
            "target_scale": list(self.target_scale),
            "target_offset": list(self.target_offset),
            "model": f"MLP, {self.depth}x{list(self.widths)} {self.activation}",
        }
