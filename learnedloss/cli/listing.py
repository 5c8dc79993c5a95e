"""The table that ``learnedloss list`` prints: one row per bundled loss, grouped.

The figures come from each loss's metadata (`learnedloss.bundled.bundled_catalog`); nothing
here holds a number.
"""

from __future__ import annotations

from learnedloss.bundled import BundledEntry, bundled_catalog

COLUMNS = ("name", "replaces", "for", "form", "cost per call")
"""The header of a row; the two verdicts follow each row on indented lines."""

EXPERIMENTAL_MARK = "[experimental]"
"""What marks a row of the experimental group."""


GROUPS = (
    (False, "Drop-ins"),
    (True, f"Experimental {EXPERIMENTAL_MARK}: cost per call far above the standard loss's"),
)
"""The two groups of the table, in order: (whether experimental, title)."""


def catalog_table(entries: list[BundledEntry] | None = None) -> str:
    """The bundled losses as a text table: the default group first, then the experimental one.

    Args:
        entries: the rows to print; all bundled losses when None.

    Returns:
        The table, lines joined by newlines, with a trailing newline.
    """
    entries = bundled_catalog() if entries is None else entries
    widths = [max(len(cells[i]) for cells in [COLUMNS, *map(_row, entries)]) for i in range(4)]
    blocks = []
    for experimental, title in GROUPS:
        group = [entry for entry in entries if entry.experimental == experimental]
        if group:
            lines = [title, _line(COLUMNS, widths)]
            for entry in group:
                lines += _entry_lines(entry, widths)
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _entry_lines(entry: BundledEntry, widths: list[int]) -> list[str]:
    lines = [
        _line(_row(entry), widths),
        f"    vs the standard loss: {entry.vs_standard}",
        f"    vs the best tuned loss: {entry.vs_best_tuned}",
    ]
    if entry.experimental_reason:
        lines.append(f"    {EXPERIMENTAL_MARK} {entry.experimental_reason}")
    return lines


def _row(entry: BundledEntry) -> tuple[str, ...]:
    return (entry.name, entry.replaces, entry.use, entry.form, entry.cost)


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=True)]
    return "  ".join([*padded, cells[-1]]).rstrip()
