"""The range of data a loss was meta-trained on, read from its metadata where recorded: where
`learnedloss.LearnedLoss.to_grid` fits a grid, and `check` and `plot` probe a loss."""

from __future__ import annotations

import re
from typing import Any

Range = tuple[float, float]


def _pair(value: Any) -> Range | None:
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and value[0] < value[1]
    ):
        return float(value[0]), float(value[1])
    return None


def training_ranges(loss: Any, given: dict[str, Range] | None = None) -> dict[str, Range]:
    """Feature ranges ``{"target": (lo, hi), "residual": (lo, hi)}`` (regression) or
    ``{"logit": (lo, hi)}`` (classification) over which to inspect or export ``loss``.

    In order: ``given``; ``metadata["feature_range"]`` (written by `to_grid`); what the
    metadata's ``training`` record implies (sine tasks: targets within the amplitude and the
    outlier range, residuals up to twice that; ``"range": "... <= N"``: ``[-N, N]``).
    Classification losses default to logits in ``[-10, 10]``.

    Raises:
        ValueError: for a regression loss whose metadata records no range and no ``given``.
    """
    config = getattr(loss, "config", None)
    kind = config.kind if config is not None else "regression"
    return recorded_ranges(kind, getattr(loss, "metadata", {}) or {}, given)


def recorded_ranges(
    kind: str, metadata: dict[str, Any], given: dict[str, Range] | None = None
) -> dict[str, Range]:
    """`training_ranges` of a loss of this kind (its name) and metadata."""
    if given:
        out = {name: _pair(value) for name, value in given.items()}
        bad = [name for name, value in out.items() if value is None]
        if bad:
            raise ValueError(f"ranges {bad} must be (low, high) with low < high, got {given}")
        return out  # type: ignore[return-value]
    recorded = metadata.get("feature_range")
    if isinstance(recorded, dict):
        out = {name: _pair(value) for name, value in recorded.items()}
        if all(out.values()):
            return out  # type: ignore[return-value]
    if kind == "classification":
        return {"logit": (-10.0, 10.0)}
    training = metadata.get("training") if isinstance(metadata.get("training"), dict) else {}
    tasks = training.get("tasks") if isinstance(training.get("tasks"), dict) else {}
    bound = None
    amplitude = _pair(tasks.get("amplitude"))
    if amplitude is not None:
        bound = amplitude[1]
        outliers = _pair(tasks.get("outlier_range"))
        if outliers is not None and tasks.get("outlier_fraction", 0):
            bound = max(bound, abs(outliers[0]), abs(outliers[1]))
    text = training.get("range")
    if bound is None and isinstance(text, str):
        match = re.search(r"<=\s*([0-9.]+)", text)
        if match:
            bound = float(match.group(1))
    if bound is None:
        raise ValueError(
            "this loss's metadata records no range of training data (metadata['feature_range'] "
            "or a training record with a range); give one, e.g. "
            "ranges={'target': (-5, 5), 'residual': (-10, 10)}"
        )
    return {"target": (-bound, bound), "residual": (-2 * bound, 2 * bound)}
