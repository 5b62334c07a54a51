"""Benchmark: the forgetting experiment in dual form (recorded SGD memory) vs the weight form.

Runs each mode in a fresh subprocess (``python scripts/bench_dual.py --child MODE``), several
times, alternating, and reports the best wall and CPU time of each (one torch thread; CPU
time is steadier on a shared machine) and their ratios, plus the peak
resident memory of each process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which sees
torch's allocations, unlike tracemalloc) and its increase over a process that only imported
kvmem and loaded the data. Also prints the trace's own size (``KeyValueTrace.nbytes``).

    python scripts/bench_dual.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(mode: str) -> dict[str, float]:
    """One run in this process: load the data, then time the experiment (``mode``)."""
    import torch

    from kvmem.data.bundled import load_forgetting_tasks
    from kvmem.experiments.paper import forgetting

    torch.set_num_threads(1)
    load_forgetting_tasks(None)  # data load and checksum: not part of either timing
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out: dict[str, float] = {}
    c0 = time.process_time()
    t0 = time.perf_counter()
    if mode == "baseline":
        pass
    elif mode == "weights":
        forgetting.run_weights(forgetting.Config())
    elif mode == "record":
        from kvmem.experiments.paper.forgetting_dual import record_training

        _, mem, _ = record_training(forgetting.Config(), load_forgetting_tasks(None))
        out["trace_bytes"] = float(mem.nbytes)
    elif mode == "dual":
        from kvmem.experiments.paper.forgetting_dual import run_dual

        r = run_dual(forgetting.Config(mode="dual"))
        out |= {k: float(v) for k, v in r.metrics.items()}
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    out["wall_s"] = time.perf_counter() - t0
    out["cpu_s"] = time.process_time() - c0
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["maxrss_before_mib"] = rss_before / 1024
    return out


def run_child(mode: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    modes = ("weights", "dual", "record")
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in ("baseline", *modes)}
    runs["baseline"].append(run_child("baseline"))
    for _ in range(args.repeats):
        for mode in modes:
            runs[mode].append(run_child(mode))
    base_rss = runs["baseline"][0]["maxrss_mib"]
    best = {m: min(r["wall_s"] for r in rs) for m, rs in runs.items() if m != "baseline"}
    cpu = {m: min(r["cpu_s"] for r in rs) for m, rs in runs.items() if m != "baseline"}
    rss = {m: max(r["maxrss_mib"] for r in rs) for m, rs in runs.items() if m != "baseline"}
    dual = runs["dual"][0]
    summary = {
        "weights_best_s": round(best["weights"], 3),
        "dual_best_s": round(best["dual"], 3),
        "time_ratio_dual_over_weights": round(best["dual"] / best["weights"], 2),
        "weights_best_cpu_s": round(cpu["weights"], 3),
        "dual_best_cpu_s": round(cpu["dual"], 3),
        "cpu_ratio_dual_over_weights": round(cpu["dual"] / cpu["weights"], 2),
        "record_training_only_s": round(best["record"], 3),
        "record_training_maxrss_mib": round(rss["record"], 1),
        "baseline_maxrss_mib": round(base_rss, 1),
        "weights_maxrss_mib": round(rss["weights"], 1),
        "dual_maxrss_mib": round(rss["dual"], 1),
        "dual_extra_peak_over_weights_mib": round(rss["dual"] - rss["weights"], 1),
        "trace_mib": round(dual["trace_bytes"] / 2**20, 1),
        "pairs_recorded": int(dual["pairs_recorded"]),
        "dual_max_abs_error": dual["dual_max_abs_error"],
        "all_wall_s": {m: [round(r["wall_s"], 3) for r in rs] for m, rs in runs.items()},
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
