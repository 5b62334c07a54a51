#!/usr/bin/env python
"""Time whole ``kvmem`` commands as processes against the plain-loop reference process.

Issue 15 measures commands the way a user feels them: a fresh process, from the
interpreter's start to its exit, imports and figures and ``result.json`` included. This
script runs, interleaved and each in a fresh child process with ``OMP_NUM_THREADS=1``:

- ``reference``: the published notebook's loop as transcribed in
  ``scripts/bench_reproduce.py`` (``notebook_forgetting``: ``nn.Module`` + autograd +
  ``torch.optim.SGD`` + ``DataLoader``), in a process that imports only what that
  transcription uses (torch, numpy, kvmem's bundled data) and writes nothing;
- ``kvmem run forgetting --out TMP`` (``python -m kvmem.cli``), which also writes
  ``result.json`` and the figure (png + svg);
- optionally (``--kv``) ``kvmem run kv-optimization --set classes=2``.

For each it reports the medians over ``--repeats`` of the child's CPU time (user + system,
from ``wait4``) and wall time, the median of the per-repeat ratios command / reference,
and from the command's ``result.json`` the computation (``provenance.duration_s``) and
figure (``provenance.figures_s``) times. On a shared machine the absolute times move with
the load; the interleaved ratios are what to compare.

``--baseline SRC`` also times the same kvmem commands from another source tree (e.g. a copy
of ``src/`` before a change, put first on ``PYTHONPATH``), interleaved with the others.

``--share DIR`` instead reads the output folder of a finished ``kvmem reproduce --out DIR``
and prints, from each ``result.json``, the computation and figure times against the wall
time you give with ``--wall`` (the ``report: ... (N s)`` line of that run): the share of
the wall time that is not an experiment's computation.

Usage::

    python scripts/bench_command.py [--repeats 5] [--kv] [--baseline OLD_SRC]
    python scripts/bench_command.py --share results --wall 45.0
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def reference_source() -> str:
    """A program running ``notebook_forgetting`` from ``bench_reproduce.py``, verbatim,
    with only the imports the transcription itself needs."""
    tree = ast.parse((HERE / "bench_reproduce.py").read_text())
    fn = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "notebook_forgetting"
    )
    return "\n".join(
        [
            "from typing import Any",
            "import numpy as np",
            "import torch",
            "from torch import nn",
            "from torch.utils.data import DataLoader, TensorDataset",
            "from kvmem.data import bundled",
            "torch.set_num_threads(1)",
            ast.unparse(fn),
            "notebook_forgetting([round(1.0 + 0.1 * i, 1) for i in range(21)])",
        ]
    )


def run_child(argv: list[str], pythonpath: str | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process; raises if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err}")
    return usage.ru_utime + usage.ru_stime, wall


def share(folder: Path, wall: float | None) -> int:
    """Computation and figure seconds of every result under ``folder`` (a reproduce run)."""
    rows = []
    for path in sorted(folder.glob("*/result.json")):
        prov = json.loads(path.read_text()).get("provenance", {})
        rows.append((path.parent.name, prov.get("duration_s", 0.0), prov.get("figures_s", 0.0)))
    if not rows:
        raise SystemExit(f"{folder}: no */result.json")
    for name, comp, figs in rows:
        print(f"  {name:<28} computation {comp:7.2f} s  figures {figs:6.2f} s")
    comp = sum(r[1] for r in rows)
    figs = sum(r[2] for r in rows)
    print(f"  {'all':<28} computation {comp:7.2f} s  figures {figs:6.2f} s")
    if wall:
        print(f"  not computation: {wall - comp:.1f} s of {wall:.1f} s = {1 - comp / wall:.0%}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kv", action="store_true", help="also time kv-optimization classes=2")
    parser.add_argument("--baseline", help="a kvmem source tree to time as well (PYTHONPATH)")
    parser.add_argument("--share", type=Path, help="a finished `kvmem reproduce` folder")
    parser.add_argument("--wall", type=float, help="that reproduce run's wall time (s)")
    args = parser.parse_args(argv)
    if args.share:
        return share(args.share, args.wall)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        ref_file = Path(tmp) / "reference.py"
        ref_file.write_text(reference_source())
        commands: dict[str, list[str]] = {
            "reference": [py, str(ref_file)],
            "forgetting": [py, "-m", "kvmem.cli", "run", "forgetting", "--out", f"{tmp}/fg"],
        }
        if args.kv:
            commands["kv-optimization"] = [
                *[py, "-m", "kvmem.cli", "run", "kv-optimization"],
                *["--set", "classes=2", "--out", f"{tmp}/kv"],
            ]
        paths = {k: None for k in commands}
        if args.baseline:
            for k in [k for k in commands if k != "reference"]:
                old = [a.replace(f"{tmp}/", f"{tmp}/old-") for a in commands[k]]
                commands[f"{k} (baseline)"] = old
                paths[f"{k} (baseline)"] = str(Path(args.baseline).resolve())
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
        inner: dict[str, list[tuple[float, float, int]]] = {k: [] for k in commands}
        run_child(commands["forgetting"])  # warm the OS file cache and matplotlib's font cache
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                times[name].append(run_child(cmd, paths[name]))
                out = {"forgetting": "fg", "kv-optimization": "kv"}.get(name.split(" ")[0])
                if out and name.endswith("(baseline)"):
                    out = f"old-{out}"
                if out:
                    d = json.loads((Path(tmp) / out / "result.json").read_text())
                    size = sum(p.stat().st_size for p in (Path(tmp) / out).iterdir())
                    prov = d["provenance"]
                    inner[name].append((prov["duration_s"], prov.get("figures_s", 0.0), size))
    ref = times["reference"]
    print(
        f"whole processes, OMP_NUM_THREADS=1, medians of {args.repeats} interleaved repeats "
        f"(load average now {os.getloadavg()[0]:.1f})"
    )
    for name, ts in times.items():
        cpu = statistics.median(t[0] for t in ts)
        wall = statistics.median(t[1] for t in ts)
        line = f"  {name:<27} CPU {cpu:6.2f} s  wall {wall:6.2f} s"
        if name != "reference":
            r_cpu = statistics.median(a[0] / b[0] for a, b in zip(ts, ref, strict=True))
            r_wall = statistics.median(a[1] / b[1] for a, b in zip(ts, ref, strict=True))
            comp = statistics.median(i[0] for i in inner[name])
            figs = statistics.median(i[1] for i in inner[name])
            size = statistics.median(i[2] for i in inner[name]) / 1e6
            line += (
                f"  | / reference: CPU {r_cpu:.2f}x wall {r_wall:.2f}x"
                f"  | computation {comp:.2f} s, figures {figs:.2f} s, outputs {size:.2f} MB"
            )
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
