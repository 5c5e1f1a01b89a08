"""Study results: ``trials.csv``, ``study.json``, ``best_config.toml``, the leaderboard."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.runs import write_json_atomic, write_text_atomic
from trainwell.search.space import decode

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

STAGE_ATTR = "trainwell:stage"


def trial_rows(studies: list[optuna.Study]) -> list[dict[str, Any]]:
    """One row per trial of every stage: number, stage, state, value, duration, params, run dir."""
    rows = []
    for study in studies:
        for t in study.get_trials(deepcopy=False):
            if t.state.name == "WAITING":
                continue
            row: dict[str, Any] = {
                "stage": t.user_attrs.get(STAGE_ATTR, study.study_name.rpartition("/")[2]),
                "number": t.number,
                "state": t.state.name,
                "value": t.value
                if t.value is not None
                else (
                    t.intermediate_values[max(t.intermediate_values)]
                    if t.intermediate_values
                    else None
                ),
                "epochs": len(t.intermediate_values),
                "duration_s": t.duration.total_seconds() if t.duration else None,
                "run_dir": t.user_attrs.get("run_dir", ""),
                "error": t.user_attrs.get("error", ""),
            }
            for k, v in t.params.items():
                row[f"params.{k}"] = (
                    decode(v) if not isinstance(decode(v), (list, dict)) else str(decode(v))
                )
            rows.append(row)
    return rows


def write_trials_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in keys})
    write_text_atomic(path, buf.getvalue())


def importances(study: optuna.Study) -> dict[str, float]:
    """fANOVA parameter importances (Optuna); empty when there are too few finished trials."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 3 or not complete[0].params:
        return {}
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "few trials in some regime"
            imp = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as exc:  # e.g. a single distinct value
        log.info("no importances: %s", exc)
        return {}
    return {k: float(v) for k, v in imp.items()}


def curves(studies: list[optuna.Study]) -> dict[str, dict[str, Any]]:
    """Per-trial learning curves (the values reported each epoch), keyed ``stage-number``."""
    out = {}
    for study in studies:
        stage = study.study_name.rpartition("/")[2]
        for t in study.get_trials(deepcopy=False):
            if t.intermediate_values:
                out[f"{stage}-{t.number}"] = {
                    "state": t.state.name,
                    "epochs": sorted(t.intermediate_values),
                    "values": [t.intermediate_values[k] for k in sorted(t.intermediate_values)],
                }
    return out


def write_study_files(
    study_dir: Path, info: dict[str, Any], studies: list[optuna.Study], best_config_toml: str | None
) -> list[dict[str, Any]]:
    """Write trials.csv, curves.json, study.json and best_config.toml; return the CSV rows."""
    rows = trial_rows(studies)
    write_trials_csv(study_dir / "trials.csv", rows)
    write_json_atomic(study_dir / "curves.json", curves(studies))
    write_json_atomic(study_dir / "study.json", info)
    if best_config_toml is not None:
        write_text_atomic(study_dir / "best_config.toml", best_config_toml)
    return rows


def leaderboard(rows: list[dict[str, Any]], direction: str, top: int = 10) -> list[dict[str, Any]]:
    """The finished trials, best first."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    done.sort(key=lambda r: r["value"], reverse=direction == "maximize")
    return done[:top]


def format_leaderboard(
    rows: list[dict[str, Any]], metric: str, direction: str, top: int = 10
) -> str:
    """A plain-text table of the best trials, for the terminal."""
    best = leaderboard(rows, direction, top)
    if not best:
        return "no finished trials"
    pkeys = [k for k in best[0] if k.startswith("params.")]
    for r in best[1:]:
        pkeys += [k for k in r if k.startswith("params.") and k not in pkeys]
    head = ["rank", "stage", "trial", metric] + [k[7:] for k in pkeys]
    lines = []
    for i, r in enumerate(best, 1):
        cells = [str(i), str(r["stage"]), str(r["number"]), f"{r['value']:.5g}"]
        for k in pkeys:
            v = r.get(k, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    n_done = sum(r["state"] == "COMPLETE" for r in rows)
    n_pruned = sum(r["state"] == "PRUNED" for r in rows)
    n_failed = sum(r["state"] == "FAIL" for r in rows)
    out = [
        f"{len(rows)} trials: {n_done} complete, {n_pruned} pruned, {n_failed} failed "
        f"({direction} {metric})",
        fmt.format(*head),
    ]
    out += [fmt.format(*c) for c in lines]
    return "\n".join(out)


__all__ = ["format_leaderboard", "importances", "leaderboard", "trial_rows", "write_study_files"]
