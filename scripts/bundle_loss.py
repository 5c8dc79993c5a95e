"""Bundle a meta-trained loss into pretrained/NAME with its evaluation figures in the card.

    python scripts/bundle_loss.py runs/clean100 sine-regression \
        --eval "held-out sine tasks=runs/clean100-eval.json" \
        --title "..." --description "..." --reproduce "learnedloss meta-train sine ..."

Each --eval is ``LABEL=JSON`` (an empty LABEL adds no prefix to the card's rows), a file
written by `learnedloss evaluate --json` (the card gets, per evaluation, each loss's tuned lr,
geometric mean and ratio to MSE), by `learnedloss evaluate shaped-sine --json` (fraction recovered
and mean error per start and loss), by `examples/classification_report.py --json` (test
accuracy and cross-entropy, mean ± std over seeds, per condition and loss) or by a transfer
evaluation's ``--json`` (`learnedloss.families.robust_regression.transfer`,
`learnedloss.families.noisy_labels.transfer`: one row per condition and loss over all its
seeds; ``--from-name`` renames the evaluated run to the bundled name).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from learnedloss import LearnedLoss
from learnedloss.evaluation.protocol import mean_and_std


def summarize(path: Path) -> dict:
    """``{loss: "ratio (geo-mean, lr)"}`` from the first seed of an evaluation JSON, or,
    for `learnedloss evaluate shaped-sine --json`, ``{start: loss: "recovered, mean error"}``,
    or, for a transfer evaluation's ``--json`` (robust regression, noisy labels), one row per
    condition and loss, over all its seeds."""
    data = json.loads(path.read_text())
    if isinstance(data, list) and data and "seeds" in data[0]:
        return _transfer_rows(data)
    if isinstance(data, dict):  # examples/classification_report.py
        return {
            f"{condition}, {name}": f"accuracy {_spread(row['accuracy'])}, "
            f"cross-entropy {_spread(row['ce'])}"
            for condition, report in data.items()
            for name, row in report["losses"].items()
        }
    first = data[0]
    if "tuned" not in first:  # learnedloss evaluate shaped-sine: mean ± std over its seeds
        return {
            f"{start} start, {name}": _recovery(data, start, name)
            for start, rows in first.items()
            for name in rows
        }
    tuned = first["tuned"]
    return {
        name: f"{s['ratio']:.3f} (geometric mean {s['geometric_mean']:.4g}, lr {s['lr']:.3g})"
        for name, s in tuned["losses"].items()
    }


def _transfer_rows(results: list[dict]) -> dict:
    if "table" in results[0]:
        from learnedloss.families.robust_regression import transfer

        columns = "query MSE, ratio to the best tuned baseline (mean ± std over seeds)"
    else:
        from learnedloss.families.noisy_labels import transfer

        columns = "accuracy %, points over the best tuned baseline (mean ± std over seeds)"
    rows = {}
    for result in results:
        seeds = result["seeds"]
        label = f"{transfer.result_label(result)}, {len(seeds)} seeds"
        for name in seeds[0]:
            rows[f"{label}: {name}"] = " ".join(transfer.loss_row(name, seeds).split())
    return {"(each cell)": columns, **rows}


def _recovery(seeds: list[dict], start: str, name: str) -> str:
    within = mean_and_std([100 * seed[start][name]["within"] for seed in seeds])
    error = mean_and_std([seed[start][name]["mean_error"] for seed in seeds])
    lrs = sorted({f"{seed[start][name]['lr']:.3g}" for seed in seeds})
    return (
        "{:.0f}% ± {:.0f}% within 0.1, ".format(*within)
        + "mean |w - w*| {:.3f} ± {:.3f} ".format(*error)
        + f"(lr {', '.join(lrs)}; {len(seeds)} evaluation seeds)"
    )


def _spread(values: list[float]) -> str:
    return "{:.4f} ± {:.4f}".format(*mean_and_std(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--eval", action="append", default=[], metavar="LABEL=JSON")
    parser.add_argument("--title", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--reproduce", required=True)
    parser.add_argument("--from-name", help="the loss's label in the --eval files, if not RUN")
    args = parser.parse_args()

    loss = LearnedLoss.from_pretrained(args.run)
    results = {}
    for item in args.eval:
        label, path = item.split("=", 1)
        for name, text in summarize(Path(path)).items():
            if args.from_name and name.endswith(f": {args.from_name}"):
                name = name.removesuffix(args.from_name) + args.name
            results[f"{label}: {name}" if label else name] = text
    loss.metadata = {
        **loss.metadata,
        "title": args.title,
        "description": args.description,
        "results": results,
        "reproduce": args.reproduce,
    }
    out = Path("pretrained") / args.name
    loss.save_pretrained(out, repo_id=args.name)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
