"""Fingerprint what must stay bit-identical across a restructuring.

Writes ``tests/data/reference_fingerprint.json``: for every bundled loss, its value and input
gradient on fixed inputs (each reduction, float32 and float64); and the weights after a short
seeded meta-training run of one backprop recipe (sine) and one evolution-strategies recipe
(robust-regression). Floats are stored as ``float.hex`` strings, so a comparison is exact.

Run it on the release whose behaviour is the reference:
``python scripts/reference_fingerprint.py tests/data/reference_fingerprint.json``;
``tests/core/test_reference_fingerprint.py`` recomputes everything and compares.
"""

from __future__ import annotations

import json
import sys

import torch

from learnedloss import LearnedLoss, bundled_names


def _hex(tensor: torch.Tensor) -> list[str]:
    return [float(v).hex() for v in tensor.detach().double().flatten().tolist()]


def loss_inputs(loss: LearnedLoss, dtype: torch.dtype) -> tuple:
    """Fixed inputs of the loss's kind: 24 elements (or 24 rows of 5 classes)."""
    generator = torch.Generator().manual_seed(1234)
    kind = loss.config.kind
    if kind == "classification":
        input = torch.randn(24, 5, generator=generator, dtype=torch.float64) * 3
        target = torch.randint(0, 5, (24,), generator=generator)
    else:
        input = torch.randn(24, generator=generator, dtype=torch.float64) * 2
        target = torch.randn(24, generator=generator, dtype=torch.float64) * 2
        target[::7] += 9.0  # a few outliers reach the far knots
        target = target.to(dtype)
    side = {
        name: torch.randn(24, generator=generator, dtype=torch.float64).to(dtype)
        for name in loss.config.side_inputs
    }
    return input.to(dtype), target, side


def bundled_fingerprints() -> dict:
    out = {}
    for name in bundled_names():
        loss = LearnedLoss.from_pretrained(name)
        for dtype in (torch.float32, torch.float64):
            for reduction in ("mean", "sum", "none"):
                loss.reduction = reduction
                input, target, side = loss_inputs(loss, dtype)
                input = input.clone().requires_grad_(True)
                value = loss(input, target, **side)
                (grad,) = torch.autograd.grad(value.sum(), input)
                out[f"{name}/{dtype}/{reduction}"] = {"value": _hex(value), "grad": _hex(grad)}
    return out


def meta_training_fingerprints() -> dict:
    from learnedloss.families.recipe import meta_train
    from learnedloss.families.robust_regression.recipe import RobustRegressionRecipe
    from learnedloss.families.sine.recipe import SineRecipe

    torch.set_num_threads(1)
    runs = {
        "sine-backprop": SineRecipe(
            outer_steps=3, inner_steps=2, meta_batch_size=2, validate_every=1, validation_size=2
        ),
        "robust-regression-es": RobustRegressionRecipe(
            outer_steps=2,
            inner_steps=3,
            meta_batch_size=2,
            es_pairs=1,
            validate_every=1,
            validation_size=2,
        ),
    }
    out = {}
    for name, recipe in runs.items():
        loss, _ = meta_train(recipe, progress=False)
        out[name] = {k: _hex(v) for k, v in loss.state_dict().items()}
    return out


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/reference_fingerprint.json"
    data = {"bundled": bundled_fingerprints(), "meta_training": meta_training_fingerprints()}
    with open(path, "w") as f:
        json.dump(data, f, indent=0, sort_keys=True)
    print(f"wrote {path}: {len(data['bundled'])} bundled cases, {len(data['meta_training'])} runs")
