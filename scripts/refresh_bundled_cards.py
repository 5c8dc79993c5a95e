"""Rewrite every bundled loss's checkpoint in the current card format, in place.

    python scripts/refresh_bundled_cards.py

Each loss in pretrained/ is loaded and saved back with the same weights and metadata, so its
model card gets what `learnedloss.card` renders today: the install line, links to the
published docs, the batch-dependence note of "weight"-form losses, the `learnedloss check`
results and, where docs/gallery/NAME.png exists (scripts/make_gallery.py), its picture. The
losses' values do not change (the script checks this on a fixed probe).
"""

from __future__ import annotations

from pathlib import Path

import torch

from learnedloss import LearnedLoss, bundled_names

ROOT = Path(__file__).resolve().parents[1]


def probe(loss: LearnedLoss) -> torch.Tensor:
    """The loss's values on fixed inputs, to check that a rewrite changes nothing."""
    generator = torch.Generator().manual_seed(0)
    kind = loss.config.kind
    if kind == "classification":
        logits = torch.randn(16, 5, generator=generator)
        return loss(logits, torch.randint(0, 5, (16,), generator=generator))
    side = {name: torch.rand(16, generator=generator) for name in loss.config.side_inputs}
    x, y = torch.randn(16, generator=generator), torch.randn(16, generator=generator)
    return loss(x, y, **side)


def main() -> None:
    for name in bundled_names():
        directory = ROOT / "pretrained" / name
        loss = LearnedLoss.from_pretrained(directory)
        before = probe(loss)
        picture = ROOT / "docs" / "gallery" / f"{name}.png"
        if picture.is_file():
            loss.metadata["picture"] = f"docs/gallery/{name}.png"
        loss.save_pretrained(directory, repo_id=name)
        after = probe(LearnedLoss.from_pretrained(directory))
        if not torch.equal(before, after):
            raise SystemExit(f"{name}: the rewrite changed the loss's values")
        print(f"{name}: rewritten")


if __name__ == "__main__":
    main()
