"""Where learning stalls: checkpoints and trained learners on the same held-back episodes.

    python -m training.diagnose --checkpoint checkpoints/rdbpfn.pt runs/cpu/last.pt
    python -m training.diagnose --checkpoint A.pt --peer PUBLISHED.pt --episodes 64

For each prior kind (single-table, relational) this draws ``--episodes`` binary episodes of
``--rows`` rows with the validation seed (:func:`training.validation.held_back_episodes`;
no training phase uses it). Every method sees the same ``--context`` rows of an episode's
context and is scored by ROC-AUC on the same query rows:

- each checkpoint (and the published weights given with ``--peer``, for comparison only:
  they never select or initialise our models), one forward pass;
- logistic regression and random forest fitted on those rows;
- random forest fitted on the episode's whole context (``rows * U(0.5, 0.9)`` rows): what
  more rows of the same task buy, an estimate of the headroom that a better learner of
  this prior could still reach from ``--context`` rows.

A checkpoint far below the trained learners on the same rows has not learnt what the
prior offers; one level with them has, and further gains must come from the prior.
Prints a table (mean AUC and its standard error per kind and method) and, with ``--out``,
writes it as JSON.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rdbpfn.atomic import atomic_write_json
from rdbpfn.checkpoint import load_checkpoint
from rdbpfn.episode import Episode
from training.config import ValidationConfig
from training.validation import held_back_episodes, score_episode

KINDS = ("single_table", "relational")


def _learners(seed: int) -> dict:
    return {
        "logistic regression": make_pipeline(SimpleImputer(), StandardScaler(),
                                             LogisticRegression(max_iter=1000)),
        "random forest": make_pipeline(SimpleImputer(), RandomForestClassifier(
            n_estimators=200, random_state=seed, n_jobs=1)),
    }


def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(truth, score)) if len(np.unique(truth)) == 2 else math.nan


def _cut(episode: Episode, context: int) -> Episode | None:
    """The episode with only its first ``context`` context rows (None: too few, or a class
    missing among them)."""
    n = episode.n_context
    if n < context or len(np.unique(episode.y[:context].numpy())) < 2:
        return None
    keep = torch.cat([torch.arange(context), torch.arange(n, len(episode.y))])
    return Episode(X=episode.X[keep], y=episode.y[keep], n_context=context)


def diagnose(checkpoints: dict[str, str], kinds: Sequence[str], episodes: int, rows: int,
             columns: int, context: int, seed: int) -> dict[str, dict[str, list[float]]]:
    """{kind: {method: [AUC per episode]}} (see the module docstring)."""
    models = {name: load_checkpoint(path).model for name, path in checkpoints.items()}
    device = torch.device("cpu")
    scores: dict[str, dict[str, list[float]]] = {}
    for offset, kind in enumerate(kinds):
        per_method = scores.setdefault(kind, {})
        for index, full in enumerate(held_back_episodes(kind, rows, columns, episodes,
                                                        seed=seed + offset)):
            episode = _cut(full, context)
            if episode is None:
                continue
            x, y = episode.X.numpy(), episode.y.numpy()
            truth = y[context:]
            for name, model in models.items():
                per_method.setdefault(name, []).append(score_episode(model, episode, device)[0])
            for name, learner in _learners(seed + index).items():
                learner.fit(x[:context], y[:context])
                per_method.setdefault(name, []).append(
                    _auc(truth, learner.predict_proba(x[context:])[:, 1]))
            forest = _learners(seed + index)["random forest"]
            n = full.n_context
            forest.fit(full.X[:n].numpy(), full.y[:n].numpy())
            per_method.setdefault(f"random forest, all {rows}-row context", []).append(
                _auc(truth, forest.predict_proba(x[context:])[:, 1]))
    return scores


def summary_table(scores: dict[str, dict[str, list[float]]]) -> str:
    lines = ["| prior | method | mean AUC | standard error | episodes |", "|---|---|---|---|---|"]
    for kind, per_method in scores.items():
        for method, values in per_method.items():
            finite = np.asarray([v for v in values if not math.isnan(v)])
            se = finite.std(ddof=1) / math.sqrt(len(finite)) if len(finite) > 1 else math.nan
            lines.append(f"| {kind} | {method} | {finite.mean():.3f} | {se:.3f} | "
                         f"{len(finite)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.diagnose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", required=True, help="our weights")
    parser.add_argument("--peer", default=None, help="published weights, for comparison")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--episodes", type=int, default=48)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--columns", type=int, default=18)
    parser.add_argument("--context", type=int, default=128, help="context rows every method "
                        "sees (the episode's first ones)")
    parser.add_argument("--seed", type=int, default=ValidationConfig().seed)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON file for the scores")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoints = {path: path for path in args.checkpoint}
    if args.peer:
        checkpoints[f"published ({Path(args.peer).name})"] = args.peer
    scores = diagnose(checkpoints, args.kinds, args.episodes, args.rows, args.columns,
                      args.context, args.seed)
    print(summary_table(scores))
    if args.out:
        atomic_write_json(args.out, {"arguments": vars(args), "scores": scores})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
