"""What one trained GRADIEND learned, in numbers: the encoder on unseen test templates and the decoder's effect.

For each run folder (the CLI steps or a cached workflow entry): the encoder's Pearson r and class means on the
test split, and, from the decoder grid, the mean probabilities of the two classes' target words on validation
prompts and the LMS — for the unchanged model and for the update selected to strengthen each class
(``mpi``: the first class, ``fpi``: the second) and to balance them (``bpi``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError

METRICS = {"mpi": "strengthen first class", "fpi": "strengthen second class", "bpi": "balance"}


def summarise(folder: Path, rule: str = "product") -> dict:
    folder = Path(folder)
    try:
        selection = json.loads((folder / "selection.json").read_text())
        grid = pd.read_csv(folder / "decoder_grid.csv")
        training = json.loads((folder / "training.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{folder} is not an evaluated GRADIEND folder ({type(exc).__name__})",
                           f"run `gradiend-bench gradiend eval-decoder --dir {folder}` first") from None
    meta = json.loads((folder / "gradiend.json").read_text()).get("meta", {})
    settings = meta.get("settings", {})
    data = json.loads((folder / "data" / "data.json").read_text())
    encoder = _read(folder / "encoder.json") or (_read(folder / "done.json") or {}).get("encoder") or {}
    base = grid[grid["h"].isna()].iloc[0]

    def probabilities(row) -> dict:
        return {"p_first": float(row["p_first"]), "p_second": float(row["p_second"]), "lms": float(row["lms"])}

    decoder = {"base": probabilities(base)}
    for metric in METRICS:
        chosen = selection[rule][metric]
        if chosen.get("h") is None or chosen.get("alpha") == 0:  # the unchanged model won
            decoder[metric] = {**probabilities(base), "h": None, "alpha": 0.0}
            continue
        match = grid[(grid["h"] == chosen["h"]) & (grid["alpha"] == chosen["alpha"])]
        full = match[match["scored_on"] == "full"] if "scored_on" in match else match
        row = (full if not full.empty else match).iloc[0]
        decoder[metric] = {**probabilities(row), "h": chosen["h"], "alpha": chosen["alpha"]}
    wall = _read(folder / "wall_seconds.json") or (_read(folder / "done.json") or {}).get("seconds")
    return {"folder": str(folder), "model": meta.get("model") or (_read(folder / "settings.json") or {}).get("model"),
            "feature": settings.get("feature") or settings.get("bias_type"), "run_seed": settings.get("seed"),
            "classes": data["classes"]["names"], "n_templates": data["info"].get("n_templates"),
            "converged": training.get("converged"), "selected_seed": training.get("selected_seed"),
            "steps": training.get("steps"),
            "encoder": {k: encoder.get(k) for k in ("pearson", "mean_first", "mean_second", "mean_neutral",
                                                    "accuracy_classes", "n", "n_neutral", "ci95")},
            "decoder_rule": rule, "decoder": decoder, "wall_seconds": wall}


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def markdown(rows: list[dict]) -> str:
    """Two tables: the encoder per run, and the decoder's target-word probabilities and LMS before/after."""
    lines = ["| feature | model | seed | classes (+1 / −1) | converged | test r [95 % CI] | mean +1 class "
             "| mean −1 class | mean neutral | test examples | wall s |", "|---" * 11 + "|"]
    for r in rows:
        e, wall = r["encoder"], r["wall_seconds"] or {}
        ci = (e.get("ci95") or {}).get("pearson")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(f"| {r['feature']} | {r['model']} | {r['run_seed']} | {r['classes'][0]} / {r['classes'][1]} "
                     f"| {r['converged']} | {_f(e['pearson'])}{interval} | {_f(e['mean_first'], '+.3f')} "
                     f"| {_f(e['mean_second'], '+.3f')} | {_f(e['mean_neutral'], '+.3f')} "
                     f"| {(e.get('n') or 0) - (e.get('n_neutral') or 0)} + {e.get('n_neutral')} neutral "
                     f"| {wall.get('total', round(sum(wall.values())) if wall else '')} |")
    lines += ["", f"Decoder updates selected by the `{rows[0]['decoder_rule'] if rows else ''}` rule; probabilities "
              "are means over validation prompts.", "",
              "| feature | model | seed | update | h* | α | P(+1 class words) | P(−1 class words) | LMS |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for key in ("base", *METRICS):
            d = r["decoder"][key]
            label = "unchanged" if key == "base" else f"{key} ({METRICS[key]})"
            lines.append(f"| {r['feature']} | {r['model']} | {r['run_seed']} | {label} | {_f(d.get('h'), '+g')} "
                         f"| {_f(d.get('alpha'), 'g')} | {d['p_first']:.4f} | {d['p_second']:.4f} | {d['lms']:.4f} |")
    return "\n".join(lines) + "\n"


def _f(value, spec: str = ".3f") -> str:
    return "" if value is None else format(value, spec)
