"""The ``kvmem`` command line (docs/architecture.md, "Contracts").

    kvmem list
    kvmem show NAME
    kvmem run NAME [--out DIR] [--set KEY=VALUE ...] [--seed N] [--quick]
    kvmem reproduce [--out DIR] [--quick] [--paper-only]
    kvmem plot RESULT_JSON [--out FILE]
    kvmem plot SWEEP_DIR [--out DIR]
    kvmem sweep NAME --grid KEY=V1,V2,... [--seeds N] [--backend local|ray] [--out DIR]

Bad input (unknown experiment, unknown or ill-typed ``--set``, missing data) prints one
line to stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kvmem.results import format_number

__all__ = ["main", "format_metrics"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every usage error
        self.exit(EXIT_USAGE, f"kvmem: error: {message}\n")


def format_metrics(metrics: dict[str, Any], published: dict[str, tuple[Any, ...]]) -> str:
    """A plain-text table of metrics, with the published value beside it where there is one."""
    rows = [("metric", "value", "published")]
    for k, v in metrics.items():
        pub = published.get(k)
        rows.append((k, format_number(v), "" if pub is None else format_number(pub[0])))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"  {a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]
    lines.insert(1, "  " + "-" * (w0 + w1 + 13))
    return "\n".join(lines)


def _cmd_list(_: argparse.Namespace) -> int:
    from kvmem import experiments

    width = max(len(n) for n in experiments.names())
    for name in experiments.names():
        try:
            desc = experiments.get(name).DESCRIPTION
        except ImportError as err:  # a half-installed extra should not hide the others
            desc = f"(unavailable: {err})"
        group = "paper " if name in experiments.PAPER else "beyond"
        print(f"{name:<{width}}  [{group}]  {desc}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    import dataclasses

    from kvmem import experiments
    from kvmem.experiments.base import config_fields, describe_type

    module = experiments.get(args.name)
    print(f"{module.NAME}: {module.DESCRIPTION}")
    doc = (module.__doc__ or "").strip().split("\n\n")[0]
    if doc:
        print("\n" + doc)
    print("\nConfig (kvmem run NAME --set FIELD=VALUE; defaults are the published protocol):")
    types_ = config_fields(module.Config)
    for f in dataclasses.fields(module.Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        print(f"  {f.name:<24} = {default!r:<28} ({describe_type(types_[f.name])})")
    published = getattr(module, "PUBLISHED", {})
    if published:
        print("\nPublished values:")
        for k, (v, src, *_) in published.items():
            print(f"  {k:<24} {format_number(v):<10} {src}")
    claims = getattr(module, "CLAIMS", ())
    if claims:
        print("\nClaims checked on every run:")
        for c in claims:
            print(f"  - {c.text}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from kvmem import experiments
    from kvmem.experiments.base import progress_wanted, tqdm_progress
    from kvmem.experiments.runner import make_config, run_experiment

    module = experiments.get(args.name)
    config = make_config(module, args.set or [], seed=args.seed, quick=args.quick)
    # a string, not a Path: prepare_out_dir refuses '' (Path('') would silently be '.')
    out = args.out if args.out is not None else str(Path("results") / args.name)
    result = run_experiment(
        args.name, config, out_dir=out, progress=tqdm_progress(progress_wanted())
    )
    print(f"{args.name}: {result.provenance.get('duration_s', 0):.2f} s -> {out}/result.json")
    print(format_metrics(result.metrics, getattr(module, "PUBLISHED", {})))
    from kvmem.experiments.base import check_claims

    marks = {True: "holds", False: "FAILS", None: "n/a  "}
    for text, held in check_claims(module, result):
        print(f"  [{marks[held]}] {text}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from kvmem.experiments.base import progress_wanted
    from kvmem.report import reproduce

    t0 = time.perf_counter()
    try:
        report = reproduce(
            args.out,  # a string: Path('') would silently become '.'
            quick=args.quick,
            include_beyond=not args.paper_only,
            progress_enabled=progress_wanted(),
            echo=print,
        )
    except RuntimeError as err:
        print(f"kvmem: {err}", file=sys.stderr)
        return 1
    print(f"report: {report}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from kvmem.experiments.runner import redraw
    from kvmem.results import Result
    from kvmem.sweep.cli import plot_sweep

    if (code := plot_sweep(args.result, args.out)) is not None:  # a sweep folder
        return code
    result = Result.load(args.result)
    src = Path(args.result)
    out_dir = Path(args.out) if args.out is not None else (src if src.is_dir() else src.parent)
    redraw(result, out_dir)
    print(f"figures written to {out_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from kvmem._version import __version__

    p = _Parser(prog="kvmem", description="Key-value memory models of the brain.")
    p.add_argument("--version", action="version", version=f"kvmem {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="list the experiments")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("show", help="an experiment's protocol, Config fields and claims")
    s.add_argument("name", help="experiment name (see `kvmem list`)")
    s.set_defaults(func=_cmd_show)

    s = sub.add_parser("run", help="run one experiment")
    s.add_argument("name", help="experiment name (see `kvmem list`)")
    s.add_argument("--out", help="output folder (default results/NAME)")
    s.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a Config field (repeatable)"
    )
    s.add_argument("--seed", type=int, help="random seed (overrides the Config default)")
    s.add_argument("--quick", action="store_true", help="a shrunken run for smoke tests")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("reproduce", help="reproduce the paper's figures and write report.html")
    s.add_argument("--out", default="results", help="output folder (default results)")
    s.add_argument("--quick", action="store_true", help="shrunken runs (smoke test)")
    s.add_argument(
        "--paper-only", action="store_true", help="skip the experiments beyond the paper"
    )
    s.set_defaults(func=_cmd_reproduce)

    s = sub.add_parser("plot", help="redraw the figure of a saved result.json or sweep folder")
    s.add_argument("result", help="path to result.json or its folder, or a sweep folder")
    s.add_argument("--out", help="output folder (default: beside the result)")
    s.set_defaults(func=_cmd_plot)

    from kvmem.sweep.cli import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    return p


#: Net allocations of container objects between two young collections of Python's cycle
#: collector in the ``kvmem`` command (Python's default: 700). Every 10th young collection
#: is a middle one and every 10th of those a full scan of every object, ~0.5M once torch and
#: matplotlib are loaded. ``kvmem reproduce`` spent 2.0-2.1 s in 2,467 collections; with
#: 20,000 it spends 0.5-0.6 s in 77, and ran 1.8-3.0 s faster in three interleaved pairs of
#: runs, at no more peak memory (1.88-1.94 GB against 1.97-2.06 GB). Reference cycles are
#: still freed, a little later; no number changes.
GC_YOUNG_THRESHOLD = 20_000


def _collect_less_often() -> None:
    """Raise the cycle collector's young threshold to :data:`GC_YOUNG_THRESHOLD` (never lower
    it), keeping the older generations' ratios."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kvmem`` command; returns the exit code.

    Run as the command (torch not yet loaded), it first sets the process memory options of
    :mod:`kvmem.process_memory`: huge pages for large tensors, freed memory kept for reuse;
    and it makes Python's cycle collector run less often (:data:`GC_YOUNG_THRESHOLD`).
    """
    from kvmem.process_memory import configure

    if configure():  # this process is the command's own: torch was not loaded before it
        _collect_less_often()
    try:
        args = build_parser().parse_args(argv)
        from kvmem.data.bundled import DataError
        from kvmem.errors import ConfigError
    except KeyboardInterrupt:  # Ctrl-C while the libraries load: no traceback
        print("kvmem: interrupted", file=sys.stderr)
        return 130
    try:
        return int(args.func(args))
    except (ConfigError, DataError) as err:
        print(f"kvmem: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kvmem: interrupted; results written so far are intact", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
