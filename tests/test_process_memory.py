"""``kvmem.process_memory``: defaults only where unset, applied by the command before torch
loads, never by importing the library; huge pages really cut the page faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvmem import process_memory
from kvmem.process_memory import DEFAULTS, configure

SRC = str(Path(process_memory.__file__).resolve().parents[1])


def _python(code: str, env_changes: dict[str, str | None]) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    for key in DEFAULTS:
        env.pop(key, None)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_is_a_no_op_once_torch_is_loaded() -> None:
    import torch  # noqa: F401  (the test process has it; so would a user's notebook)

    env: dict[str, str] = {}
    assert configure(env) == {} and env == {}


def test_sets_defaults_where_unset_and_keeps_the_users_values() -> None:
    code = (
        "import json, os; from kvmem.process_memory import configure; r = configure();"
        " import sys; assert 'torch' not in sys.modules;"
        " print(json.dumps([r, {k: os.environ[k] for k in r}]))"
    )
    got, env = json.loads(_python(code, {}))
    assert got == DEFAULTS == env
    got, _ = json.loads(_python(code, {"THP_MEM_ALLOC_ENABLE": "0"}))
    assert got == DEFAULTS | {"THP_MEM_ALLOC_ENABLE": "0"}


def test_importing_the_library_changes_nothing() -> None:
    code = (
        "import os, kvmem, kvmem.cli, kvmem.bench, torch;"
        " print([k for k in ('THP_MEM_ALLOC_ENABLE', 'MALLOC_TRIM_THRESHOLD_') if k in os.environ])"
    )
    assert _python(code, {}) == "[]"


def test_the_command_sets_them_for_itself_and_its_workers() -> None:
    code = (
        "import io, os, contextlib; from kvmem.cli import main;"
        " f = io.StringIO();\n"
        "with contextlib.redirect_stdout(f): rc = main(['list'])\n"
        "print(rc, os.environ.get('THP_MEM_ALLOC_ENABLE'),"
        " os.environ.get('MALLOC_MMAP_THRESHOLD_'))"
    )
    assert _python(code, {}) == f"0 1 {32 << 20}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_mallopt_takes_valid_values_and_refuses_malformed_ones() -> None:
    # in a child: mallopt would fix this test process's own malloc thresholds
    code = (
        "from kvmem.process_memory import _mallopt;"
        " print([_mallopt(-3, str(32 << 20)), _mallopt(-1, str(256 << 20)),"
        " _mallopt(-4, '0'), _mallopt(-8, '1'), _mallopt(-2, str(1 << 30)),"
        " _mallopt(-1, 'lots'), _mallopt(-1, str(2**40))])"
    )
    assert _python(code, {}) == "[True, True, True, True, True, False, False]"


def _thp_available() -> bool:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    return "[never]" not in text


def _faults_per_64mib(env_changes: dict[str, str | None], *, thread: bool, warm: int) -> float:
    """Page faults per 64 MiB tensor (above the mmap threshold) allocated and freed in a
    fresh process with the command's settings, on the main thread or a worker thread,
    after ``warm`` such tensors (glibc's heap settles after a few aligned requests)."""
    code = (
        "import resource, threading; from kvmem.process_memory import configure; configure();"
        " import torch; x = torch.ones(1 << 20); del x\n"
        "def work(out):\n"
        f"    for _ in range({warm}):\n"
        "        x = torch.ones(16 << 20); del x\n"
        "    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(8):\n"
        "        x = torch.ones(16 << 20); del x\n"
        "    out.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 8)\n"
        "got = []\n"
        + (
            "t = threading.Thread(target=work, args=(got,)); t.start(); t.join()\n"
            if thread
            else "work(got)\n"
        )
        + "print(got[0])"
    )
    return float(_python(code, env_changes))


@pytest.mark.skipif(not _thp_available(), reason="transparent huge pages are off here")
def test_huge_pages_cut_the_faults_of_large_tensors() -> None:
    fresh = {"MALLOC_MMAP_MAX_": "65536"}  # glibc's default: each 64 MiB its own mapping
    on = _faults_per_64mib(fresh, thread=False, warm=0)
    off = _faults_per_64mib(fresh | {"THP_MEM_ALLOC_ENABLE": "0"}, thread=False, warm=0)
    # 64 MiB is 16,384 small pages or 32 huge ones; allow for huge pages not always granted
    assert off > 8000 and on < off / 4, (on, off)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_memory_is_reused_by_worker_threads() -> None:
    # A worker thread allocating and freeing 64 MiB tensors, as the experiments' task pools
    # do: with the defaults each new tensor reuses the freed memory; with glibc's own
    # settings (a mapping per large tensor, a pool per thread) it is fresh pages every time.
    small = {"THP_MEM_ALLOC_ENABLE": "0"}  # count 4 KiB pages: 16,384 per fresh 64 MiB
    kept = _faults_per_64mib(small, thread=True, warm=8)
    glibc = {"MALLOC_MMAP_MAX_": "65536", "MALLOC_ARENA_MAX": "8", "MALLOC_TOP_PAD_": "131072"}
    fresh = _faults_per_64mib(small | glibc, thread=True, warm=8)
    # (glibc still takes a few fresh pages per aligned request now and then: "most" reused)
    assert fresh > 8000 and kept < fresh / 4, (kept, fresh)


def test_the_command_collects_cycles_less_often_and_only_in_its_own_process() -> None:
    import gc

    from kvmem import cli

    # in its own process (torch not loaded before main): the young threshold is raised,
    # the older generations' ratios kept
    code = (
        "import gc, json; from kvmem.cli import main; before = gc.get_threshold();"
        " main(['list']); print(json.dumps([before, gc.get_threshold()]))"
    )
    before, after = json.loads(_python(code, {}))
    assert after == [max(before[0], cli.GC_YOUNG_THRESHOLD), before[1], before[2]]
    assert after[0] > before[0]
    # called in a process that already loaded torch (a notebook, this test): untouched
    mine = gc.get_threshold()
    assert cli.main(["list"]) == 0
    assert gc.get_threshold() == mine
