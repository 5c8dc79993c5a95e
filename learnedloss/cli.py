"""The ``learnedloss`` command.

Subcommands:

- ``learnedloss list``: the losses bundled with this installation.
- ``learnedloss info NAME_OR_PATH``: a loss's config and model-card summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from learnedloss import hub
from learnedloss._version import __version__
from learnedloss.bundled import bundled_names
from learnedloss.card import card_summary
from learnedloss.errors import CheckpointError, ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="learnedloss", description="Learned loss functions for PyTorch (ML3)."
    )
    parser.add_argument("--version", action="version", version=f"learnedloss {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="list the losses bundled with this installation")

    info = commands.add_parser("info", help="print a loss's config and model card summary")
    info.add_argument("name_or_path", help="a directory, a bundled name or a Hub repo id")
    info.add_argument("--revision", help="Hub branch, tag or commit")
    info.add_argument("--cache-dir", help="Hub cache directory")
    info.add_argument(
        "--local-files-only", action="store_true", help="use the local Hub cache only"
    )
    info.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def describe(name_or_path: str, **resolve_kwargs: Any) -> dict[str, Any]:
    """Everything `learnedloss info` prints, as a dict. Reads and validates the checkpoint."""
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


def _print_info(info: dict[str, Any]) -> None:
    config = info["config"]
    print(f"{info['name']}  ({info['directory']})")
    print(f"  kind:              {config['kind']}")
    print(f"  inputs:            {', '.join(config['inputs'])} (per element)")
    print(f"  hidden sizes:      {config['hidden_sizes']}")
    print(f"  activation:        {config['activation']} -> {config['output_activation']}")
    print(f"  bias:              {config['bias']}")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        for name in bundled_names():
            print(name)
        return 0
    try:
        info = describe(
            args.name_or_path,
            revision=args.revision,
            cache_dir=args.cache_dir,
            local_files_only=args.local_files_only,
        )
    except (FileNotFoundError, ConfigError, CheckpointError) as err:
        print(f"learnedloss: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
