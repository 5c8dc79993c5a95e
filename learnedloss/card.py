"""The model card (``README.md``) written next to a learned loss's weights.

Everything in the card is derived from the loss's config and metadata, so the card and the
checkpoint cannot disagree; what the loss replaces, how it is called and what a residual loss
starts as come from its kind (`learnedloss.kinds.LossKind`). Metadata keys the card
understands (all optional):

- ``title``: the card's heading.
- ``description``: a paragraph of Markdown saying what the loss is and what it is for.
- ``training``: a dict describing how the loss was made (rendered as a table).
- ``results``: a dict of figures the loss scored (rendered as a table).
- ``reproduce``: the command that reproduces the checkpoint and its figures.
- ``recipe``: the full meta-training recipe (written by `learnedloss.families.recipe.meta_train`;
  rendered as a table).
- ``picture``: a ``docs/...png`` picture of the loss and its gradient next to the standard
  losses (``learnedloss plot``), shown from the published docs.

The card also states what the config implies for users (a ``"weight"``-form loss depends on
the batch) and, when `LearnedLoss.save_pretrained` ran it, the result of
`learnedloss.inspection.check`: a loss that fails a check still saves, with the failure in
its card.
"""

from __future__ import annotations

import json
import re
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from learnedloss.config import LossConfig
from learnedloss.errors import ConfigError
from learnedloss.kinds import loss_kind

DOCS_BASE_URL = "https://learnedloss.readthedocs.io/en/latest"
"""Where the project's documentation (the ``docs/`` folder, built with MkDocs) is published.
Cards link there with absolute URLs, since a card is read on the Hub, away from the source
tree; `docs_url` maps a ``docs/`` page to its address."""

INSTALL_COMMAND = "pip install learnedloss"
"""The install line a model card shows."""

_DOCS_PATH = re.compile(r"(?<![\w./:-])docs/([A-Za-z0-9_-]+)\.md(#[A-Za-z0-9_-]+)?")


PROGRESS_USAGE = (
    "# optional: the training schedule, once per step before the loss (without it the loss\n"
    "# keeps the shape it ends training with)\n"
    "loss_fn.progress(step, total_steps)\n"
)
"""The model card's usage lines for a loss that reads training progress (docs/progress.md)."""


def docs_url(page: str = "") -> str:
    """The published address of a documentation page, given as ``"sine.md"``,
    ``"docs/sine.md"`` or ``"sine.md#anchor"`` (``""``: the front page).

    Examples:
        >>> from learnedloss.card import docs_url
        >>> docs_url("docs/sine.md#results") == docs_url() + "sine/#results"
        True
    """
    page = page.removeprefix("docs/")
    page, _, anchor = page.partition("#")
    stem = page.removesuffix(".md")
    path = "" if stem in ("", "index") else f"{stem}/"
    return f"{DOCS_BASE_URL}/{path}" + (f"#{anchor}" if anchor else "")


def link_docs(text: str) -> str:
    """Turn ``docs/NAME.md`` mentions in Markdown prose into links to the published pages,
    so that they work where the card is read (the Hub), not only in a source checkout."""
    return _DOCS_PATH.sub(
        lambda m: f"[{m.group(0)}]({docs_url(m.group(1) + '.md' + (m.group(2) or ''))})", text
    )


ML3_CITATION = """@inproceedings{bechtle2021ml3,
  title     = {Meta Learning via Learned Loss},
  author    = {Bechtle, Sarah and Molchanov, Artem and Chebotar, Yevgen and Grefenstette,
               Edward and Righetti, Ludovic and Sukhatme, Gaurav and Meier, Franziska},
  booktitle = {25th International Conference on Pattern Recognition (ICPR)},
  year      = {2021},
  note      = {arXiv:1906.05374}
}"""


def card_tags(config: LossConfig) -> list[str]:
    """The Hub tags of a loss with this config."""
    return ["learnedloss", "learned-loss", "loss-function", "ml3", "pytorch", config.kind]


_METHOD = {
    "mlp": "The loss is an MLP applied to each element's features",
    "grid": "The loss is a piecewise-polynomial function on a fixed grid of knots over each "
    "element's features (the fast grid form, docs/parameterizations.md)",
    "taylor": "The loss is a low-order Taylor polynomial of each element's features, after "
    "TaylorGLO (Gonzalez and Miikkulainen, GECCO 2021; docs/parameterizations.md)",
    "monotone": "The loss is the integral of a non-negative learned influence over the error's "
    "size in units of the call's robust scale, so it never decreases as the error grows "
    "(docs/parameterizations.md)",
}

BATCH_DEPENDENCE = (
    "**Batch dependence.** Each element's weight is normalized over the elements of a call "
    "(`N·softmax(h)`), so an element's loss depends on the rest of the batch: "
    "`reduction='none'` gives each element's share of this call's loss, and per-sample "
    "gradients (`torch.func.vmap` over samples) are those of each sample on its own, which do "
    "not average to the batch gradient (docs/swap.md)."
)


def checks_section(checks: dict[str, Any] | str) -> str:
    """The card's "Checks" section: the `learnedloss.inspection.check` report as a table, or
    why it was not run."""
    if isinstance(checks, str):
        return f"Not checked: {checks}"
    ranges = ", ".join(f"{k} in [{lo:g}, {hi:g}]" for k, (lo, hi) in checks["ranges"].items())
    lines = [
        f"**{'Passes' if checks['passed'] else 'Fails'}** `learnedloss check` over {ranges}:",
        "",
        "| criterion | result | what it means | numbers |",
        "|---|---|---|---|",
    ]
    for name, criterion in checks["criteria"].items():
        numbers = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in criterion["numbers"].items()
            if not isinstance(v, (list, dict))
        )
        result = "pass" if criterion["passed"] else "**FAIL**"
        lines.append(f"| {name} | {result} | {_escape(criterion['detail'])} | {numbers} |")
    lines += [f"\nNote: {_escape(note)}" for note in checks.get("notes", [])]
    return "\n".join(lines)


def render_model_card(
    config: LossConfig,
    metadata: dict[str, Any],
    repo_id: str | None = None,
    checks: dict[str, Any] | str | None = None,
) -> ModelCard:
    """Build the model card for a loss.

    Args:
        config: the loss architecture.
        metadata: the loss's metadata (see the module docstring for the keys used).
        repo_id: the Hub repo or bundled name the card will be published under, used in the
            usage snippet. Defaults to a placeholder path.
        checks: a `learnedloss.inspection.CheckReport` as a dict, or why none was run
            (``None``: no "Checks" section).

    Raises:
        ConfigError: ``repo_id`` is not a Hub repo id (`check_repo_id`).
    """
    if repo_id is not None:
        check_repo_id(repo_id)
    card_data = ModelCardData(
        library_name="learnedloss",
        tags=card_tags(config),
        license="apache-2.0",
    )
    name = repo_id or "path/to/this/loss"
    kind = loss_kind(config.kind)
    title = metadata.get("title", f"Learned {config.kind} loss")
    sections = [
        f"# {title}",
        link_docs(
            metadata.get("description", "A learned loss function for PyTorch (learnedloss).")
        ),
        "## Usage",
        f"Install [learnedloss]({docs_url()}):\n\n```bash\n{INSTALL_COMMAND}\n```",
        f"A drop-in replacement for `{kind.replaces}`"
        + (f" that also reads {', '.join(config.side_inputs)}" if config.side_inputs else "")
        + ":\n\n"
        "```python\n"
        "from learnedloss import LearnedLoss\n\n"
        "# frozen: no trainable parameters\n"
        f'loss_fn = LearnedLoss.from_pretrained("{name}")\n'
        f"{kind.usage_line(config.side_inputs)}\n"
        + (PROGRESS_USAGE if config.reads_progress else "")
        + "```",
        f"How losses are saved, loaded and shared: [checkpoints]({docs_url('checkpoints.md')}).",
        "## Architecture",
        _table(
            {
                "kind": config.kind,
                "inputs (per element)": ", ".join(config.inputs),
                "hidden sizes": ", ".join(map(str, config.hidden_sizes)) or "none (linear)",
                "activation": config.activation,
                "output activation": config.output_activation,
                "bias": config.bias,
                f"residual ({kind.starts_as})": config.residual,
                **({"residual form": config.residual_form} if config.residual else {}),
            }
        ),
    ]
    if metadata.get("picture"):
        picture = str(metadata["picture"]).removeprefix("docs/")
        sections += [
            "## Shape",
            f"![the loss and its gradient, next to the standard loss it replaces]"
            f"({DOCS_BASE_URL}/{picture})",
        ]
    if config.residual and config.residual_form == "weight":
        sections += [link_docs(BATCH_DEPENDENCE)]
    if metadata.get("export"):
        sections += ["## Fast form", link_docs(FAST_FORM), _table(export_rows(metadata))]
    if metadata.get("training"):
        sections += ["## How it was made", _table(metadata["training"])]
    if metadata.get("recipe"):
        sections += ["## Recipe", _table(metadata["recipe"])]
    if metadata.get("results"):
        sections += ["## Results", _table(metadata["results"])]
    if metadata.get("reproduce"):
        sections += ["## Reproduce", f"```bash\n{metadata['reproduce']}\n```"]
    if checks is not None:
        sections += ["## Checks", link_docs(checks_section(checks))]
    sections += [
        "## Method",
        link_docs(_METHOD[getattr(config, "parameterization", "mlp")])
        + " and averaged (or summed) like a standard PyTorch loss, following ML3 (Bechtle et "
        "al., ICPR 2021, [arXiv:1906.05374](https://arxiv.org/abs/1906.05374)).",
        f"```bibtex\n{ML3_CITATION}\n```",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"
    return ModelCard(content)


def check_repo_id(repo_id: Any) -> None:
    """Refuse a name that is not a Hugging Face Hub repo id (``"name"`` or
    ``"namespace/name"``: letters, digits, ``-``, ``_`` and ``.``, at most 96 characters):
    the card pastes it into Python code, and the Hub would refuse it.

    Raises:
        ConfigError: saying what is wrong with it.
    """
    try:
        if not isinstance(repo_id, str):
            raise HFValidationError(f"a str is needed, got {type(repo_id).__name__}")
        validate_repo_id(repo_id)
    except HFValidationError as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(
            f"repo_id {repo_id!r:.120} is not a Hugging Face Hub repo id ('name' or "
            f"'namespace/name'): {reason}"
        ) from None


FAST_FORM = (
    "This loss is the grid (spline) export of a learned MLP loss (`loss.to_grid()`, "
    "docs/parameterizations.md): the same function to the error below over the range it was "
    "meta-trained on, continued linearly beyond it, and evaluated by the fast path "
    "(docs/benchmarks.md). The figures in the results below were measured with the MLP form; "
    "the hold-out check trains models with both forms on the same held-out tasks."
)


def export_rows(metadata: dict[str, Any]) -> dict[str, Any]:
    """The card rows of an exported (grid) loss: source, range and errors."""
    export = metadata["export"]
    rows: dict[str, Any] = {}
    if export.get("source"):
        rows["exported from"] = export["source"]
    rows["grid axes and range"] = ", ".join(
        f"{name} {low:g} to {high:g}" for name, (low, high) in metadata["feature_range"].items()
    )
    rows["largest error over that range"] = (
        f"value {export['relative_value_error']:.2%}, "
        f"gradient {export['relative_gradient_error']:.2%} (relative to the largest value)"
    )
    if export.get("hold_out"):
        rows["hold-out check (grid / MLP)"] = export["hold_out"]
    return rows


def _table(rows: dict[str, Any]) -> str:
    lines = ["| | |", "|---|---|"]
    for key, value in rows.items():
        text = value if isinstance(value, str) else json.dumps(value)
        lines.append(f"| {_escape(key)} | {link_docs(_escape(text))} |")
    return "\n".join(lines)


def _escape(cell: str) -> str:
    return cell.replace("|", r"\|")


def card_summary(card: ModelCard) -> dict[str, Any]:
    """A short summary of a card: its YAML metadata and its first heading and paragraph."""
    body = card.text.splitlines()
    title = next((line.lstrip("# ").strip() for line in body if line.startswith("# ")), "")
    paragraphs = [p.strip() for p in card.text.split("\n\n") if p.strip()]
    description = next((p for p in paragraphs if not p.startswith(("#", "```", "|"))), "")
    return {"title": title, "description": description, "card_data": card.data.to_dict()}
