"""``learnedloss info``: what a checkpoint holds, as a dict (`describe`) and as text
(`print_info`)."""

from __future__ import annotations

import json
from typing import Any


def describe(name_or_path: str, **resolve_kwargs: Any) -> dict[str, Any]:
    """Everything `learnedloss info` prints, as a dict. Reads and validates the checkpoint."""
    from learnedloss import hub
    from learnedloss.card import card_summary

    directory = hub.resolve_checkpoint_dir(name_or_path, **resolve_kwargs)
    checkpoint = hub.read_checkpoint(directory)
    n_params = sum(t.numel() for t in checkpoint.tensors.values())
    summary = card_summary(checkpoint.card) if checkpoint.card is not None else None
    return {
        "name": name_or_path,
        "directory": str(directory),
        "config": checkpoint.config.to_dict(),
        "parameters": n_params,
        "metadata": checkpoint.metadata,
        "model_card": summary,
    }


def print_info(info: dict[str, Any]) -> None:
    config = info["config"]
    print(f"{info['name']}  ({info['directory']})")
    print(f"  kind:              {config['kind']}")
    print(f"  inputs:            {', '.join(config['inputs'])} (per element)")
    print(f"  hidden sizes:      {config['hidden_sizes']}")
    print(f"  activation:        {config['activation']} -> {config['output_activation']}")
    print(f"  bias:              {config['bias']}")
    form = f" ({config['residual_form']} form)" if "residual_form" in config else ""
    print(f"  residual:          {config['residual']}{form}")
    print(f"  parameters:        {info['parameters']}")
    for section in ("training", "results"):
        values = info["metadata"].get(section)
        if values:
            print(f"  {section}:")
            for key, value in values.items():
                print(f"    {key}: {value if isinstance(value, str) else json.dumps(value)}")
    card = info["model_card"]
    if card is None:
        print("  model card:        none")
    else:
        print(f"  model card:        {card['title']}")
        print(f"    tags: {', '.join(card['card_data'].get('tags', []))}")
        if card["description"]:
            print(f"    {card['description']}")
