"""Command line: ``python -m training --config tiny|cpu|gpu|PATH.json``.

Examples::

    python -m training --config tiny --out runs/tiny
    python -m training --config cpu --out runs/cpu --resume --max-minutes 60
    torchrun --nproc_per_node=2 -m training --config tiny --out runs/ddp

``--resume`` continues ``<out>/state.pt`` when it exists and starts fresh otherwise, so the
same command can be repeated until the curriculum is done.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from training.config import PRESETS, load_config
from training.loop import train


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Curriculum training of RDB-PFN."
    )
    parser.add_argument(
        "--config", required=True,
        help=f"preset name ({', '.join(sorted(PRESETS))}) or a JSON config file",
    )
    parser.add_argument("--out", default=None, help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue <out>/state.pt if it exists")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="save and stop after this many minutes of this invocation")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="save and stop at this global step (smoke runs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the config's; 0 = all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_config(args.config)
    out = args.out if args.out is not None else f"runs/{config.name}"
    result = train(
        config, out, resume=args.resume, max_minutes=args.max_minutes,
        max_steps=args.max_steps, threads=args.threads, verbose=not args.quiet,
    )
    # 0 = curriculum finished or stopped on purpose; the state is saved either way.
    return 0 if result.stopped_by != "signal" else 130


def exit_rank(code: int) -> None:
    """Leave the process with ``code``; a torchrun rank leaves without interpreter shutdown.

    gloo's worker threads outlive ``destroy_process_group()``, and the interpreter's shutdown
    can then abort a rank that finished cleanly ("terminate called without an active
    exception", exit -6), which fails the whole torchrun job. Everything is saved and closed
    by the time :func:`main` returns, so a rank flushes its streams and exits at once.
    """
    if "LOCAL_RANK" not in os.environ:  # a single process exits normally
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_rank(main())
