"""Where the cells of a sweep run: a local process pool or Ray tasks.

Both backends call the same :func:`run_cell` on each cell and yield ``(cell_id, outcome)``
as cells finish, in completion order; the caller records each outcome as it arrives, so a
killed sweep loses at most the cells in flight. ``run_cell`` writes the cell's
``result.json`` atomically (through ``kvmem.results``) or, when the experiment raises, an
``error.json`` with the error, and never raises itself: one failing cell does not stop
the others.

The driver passes each worker the experiment's registry entry (its module path) along
with its name, so an experiment registered at run time in the driver
(``kvmem.experiments.REGISTRY["mine"] = "mypkg.mine"``) runs in the workers too, as long
as they can import its module.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kvmem.errors import ConfigError
from kvmem.sweep.grid import Cell

__all__ = ["run_cell", "run_local", "run_ray", "BACKENDS", "RAY_MISSING", "StartHook"]

RAY_MISSING = "the ray backend needs Ray: pip install 'kvmem[ray]'"

#: ``on_start(cell_id)`` is called when a cell is handed to a worker.
StartHook = Callable[[str], None]


def run_cell(name: str, module_path: str, cell: Cell, cell_dir: str) -> dict[str, Any]:
    """Run one cell and write ``cell_dir/result.json`` (or ``error.json``); never raises.

    ``module_path`` is the experiment's registry entry in the driver. Returns
    ``{"status": "done" | "failed", "duration_s": float, "error": str | None}``.
    """
    # one intra-op thread per worker: the pool is the parallelism (and results do not
    # depend on the machine's thread count)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from kvmem import experiments
    from kvmem.experiments.runner import make_config, run_experiment
    from kvmem.results import atomic_write_text

    folder = Path(cell_dir)
    t0 = time.perf_counter()
    try:
        experiments.REGISTRY[name] = module_path
        module = experiments.get(name)
        config = make_config(module, dict(cell.overrides), seed=cell.seed, quick=cell.quick)
        run_experiment(name, config, out_dir=folder, figure=False)
        (folder / "error.json").unlink(missing_ok=True)
        return {"status": "done", "duration_s": time.perf_counter() - t0, "error": None}
    except Exception as err:  # noqa: BLE001 - a failing cell is recorded, not raised
        message = (f"{type(err).__name__}: {err}".splitlines() or [type(err).__name__])[0]
        record = {"cell": cell.id, "error": message, "traceback": traceback.format_exc()}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "error.json", json.dumps(record, indent=2) + "\n")
        except OSError:
            pass
        return {"status": "failed", "duration_s": time.perf_counter() - t0, "error": message}


def _module_path(name: str) -> str:
    from kvmem import experiments

    experiments.get(name)  # one-line ConfigError for an unknown name
    return experiments.REGISTRY[name]


def run_local(
    name: str,
    cells: Sequence[Cell],
    cells_dir: Path,
    *,
    workers: int | None = None,
    address: str | None = None,
    on_start: StartHook | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run ``cells`` in a pool of ``workers`` processes (default: the CPU count).

    Processes are spawned (not forked), so no torch thread pool or lock is inherited; at
    most ``workers`` cells are in flight at any time, so a kill loses at most those.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    if address is not None:
        raise ConfigError("--address is only for --backend ray")
    if not cells:
        return
    path = _module_path(name)
    n = max(1, min(workers or os.cpu_count() or 1, len(cells)))
    pool = ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"))
    try:
        queue = list(cells)
        pending: dict[Any, str] = {}

        def submit() -> None:
            while queue and len(pending) < n:
                c = queue.pop(0)
                pending[pool.submit(run_cell, name, path, c, str(cells_dir / c.id))] = c.id
                if on_start:
                    on_start(c.id)

        submit()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                cid = pending.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as err:  # noqa: BLE001 - a worker that died
                    outcome = {"status": "failed", "duration_s": 0.0, "error": repr(err)[:500]}
                yield cid, outcome
            submit()
    finally:
        # on Ctrl-C or an error in the caller: drop queued cells, do not wait for the rest
        pool.shutdown(wait=False, cancel_futures=True)


def run_ray(
    name: str,
    cells: Sequence[Cell],
    cells_dir: Path,
    *,
    workers: int | None = None,
    address: str | None = None,
    on_start: StartHook | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run ``cells`` as Ray tasks (one CPU each).

    Joins the cluster at ``address`` when given, else starts a local Ray with ``workers``
    CPUs (default: all); a Ray already initialised in this process is reused, and one
    started here is shut down at the end. The cell folders must be on storage every node
    sees (a shared file system on a cluster).
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    if not cells:
        return
    path = _module_path(name)
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is not None:
            kwargs["address"] = address
        elif workers:
            kwargs["num_cpus"] = workers
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise ConfigError(f"--backend ray: cannot start or join Ray ({err})") from None
        started_here = True
    remote = ray.remote(num_cpus=1, max_retries=0)(run_cell)
    refs: dict[Any, str] = {}
    pending: list[Any] = []
    try:
        for c in cells:
            refs[remote.remote(name, path, c, str(cells_dir.resolve() / c.id))] = c.id
            if on_start:
                on_start(c.id)
        pending = list(refs)
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - a task or worker that died
                    outcome = {"status": "failed", "duration_s": 0.0, "error": repr(err)[:500]}
                yield refs[ref], outcome
    finally:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        if started_here:
            ray.shutdown()


BACKENDS = {"local": run_local, "ray": run_ray}
