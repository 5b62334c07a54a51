"""What every experiment module provides, and the machinery shared by all of them.

An experiment module (one file in ``kvmem/experiments/``) defines:

- ``NAME: str`` and ``DESCRIPTION: str`` (one line, shown by ``kvmem list``);
- ``Config``: a frozen dataclass whose defaults are the published protocol. It has an
  ``int`` field ``seed``. Field types are plain (``int``, ``float``, ``bool``, ``str``,
  ``tuple[float, ...]``, ``tuple[int, ...]``, ``tuple[str, ...]``, ``X | None``,
  ``Literal[...]``) so ``--set`` can parse them;
- ``quick(config) -> Config``: the same experiment shrunk for smoke tests (``--quick``);
- ``run(config, progress=null_progress) -> Result``: the computation; no file I/O;
- ``plot(result) -> matplotlib.figure.Figure``: the figure, drawn from the result alone
  (a bare ``Figure``, not pyplot, so runs need no display and leak no figures);
- optionally ``PUBLISHED: dict[str, tuple[float, str]]``: metric -> (published value,
  where it is published[, tolerance]), shown beside the measured value in reports;
- optionally ``CLAIMS: tuple[Claim, ...]``: the scientific claims the experiment tests,
  each a sentence and a check of a ``Result``; reports show which held on the run.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

from kvmem.errors import ConfigError

__all__ = [
    "Claim",
    "check_claims",
    "ConfigError",
    "ProgressFactory",
    "null_progress",
    "tqdm_progress",
    "single_thread",
    "TaskPool",
    "default_workers",
    "available_memory",
    "check_memory",
    "parse_overrides",
    "config_from_dict",
    "config_fields",
    "describe_type",
]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim an experiment tests: a sentence and a check over a ``Result``.

    ``check`` returns ``True``/``False``, or ``None`` when the claim does not apply to this
    run (e.g. a ``mode=dual`` claim on a weight-form run, or a missing metric).
    """

    text: str
    check: Callable[[Any], bool | None]


def check_claims(module: Any, result: Any) -> list[tuple[str, bool | None]]:
    """Evaluate ``module.CLAIMS`` on ``result``: ``[(text, held), ...]``.

    A check that raises ``KeyError``, ``IndexError``, ``TypeError`` or ``ValueError`` (a
    metric or series absent from this run, e.g. a ``--quick`` or other-mode run) counts as
    not applicable (``None``); the slow tests require every claim to apply and hold on the
    default protocol, so a broken check cannot hide there.
    """
    out: list[tuple[str, bool | None]] = []
    for claim in getattr(module, "CLAIMS", ()):
        try:
            held = claim.check(result)
        except (KeyError, IndexError, TypeError, ValueError):
            held = None
        out.append((claim.text, None if held is None else bool(held)))
    return out


#: A progress reporter: ``progress(iterable, total=None, desc="")`` wraps an iterable and
#: reports advancement, like ``tqdm``; ``null_progress`` is the silent one.
ProgressFactory = Callable[..., Iterable[Any]]


def null_progress(
    iterable: Iterable[T], *, total: int | None = None, desc: str = ""
) -> Iterator[T]:
    """The silent progress reporter: yields the items unchanged."""
    yield from iterable


def progress_wanted() -> bool:
    """Whether a command should draw progress bars: on a terminal, never in CI logs."""
    import sys

    return sys.stderr.isatty() and not os.environ.get("CI")


def tqdm_progress(enabled: bool = True) -> ProgressFactory:
    """A ``tqdm`` progress reporter, or the silent one when ``enabled`` is false."""
    if not enabled:
        return null_progress
    from tqdm.auto import tqdm

    def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterable[T]:
        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)

    return progress


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the enclosed torch code on one intra-op thread, restoring the setting after.

    The experiments are many small tensor operations: one thread is faster than two
    fighting over a busy machine, and float rounding no longer depends on the machine's
    thread count (the BLAS blocking changes with it), so results are reproducible.
    """
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def default_workers() -> int:
    """Threads a :class:`TaskPool` uses by default: torch's intra-op thread count (what
    ``OMP_NUM_THREADS`` / ``torch.set_num_threads`` allow), at most the CPU count."""
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


class TaskPool:
    """Independent pieces of one experiment run on ``workers`` threads, results in order.

    Torch releases the GIL in its kernels, so pieces of work that share no state (each
    model of a comparison, with its own generator) run side by side on the cores the user
    allows: ``workers`` defaults to torch's intra-op thread count *outside* the experiment's
    :func:`single_thread` block (``OMP_NUM_THREADS`` / ``torch.set_num_threads``), at most
    the CPU count. Every kernel still runs on one intra-op thread, so the results are those
    of a serial run bit for bit, whatever ``workers`` is. With one worker each piece runs
    inline at :meth:`submit` (no threads at all).

    ``submit(fn)`` returns a ``Future``; :meth:`completed` yields the submitted futures as
    they finish (for progress bars); :meth:`drive` runs job generators and yields the units
    of work they report; :meth:`close` (also on leaving a ``with`` block) drops
    pieces not yet started when an error or Ctrl-C ends the run, instead of running them.
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = default_workers()
        self.workers = max(1, int(workers))
        self._pool: Any = None
        if self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kvmem-task")
        self._pending: list[Any] = []

    def submit(self, fn: Callable[[], T]) -> Any:
        """Run ``fn()`` (on a worker, or now when ``workers == 1``); returns its ``Future``."""
        from concurrent.futures import Future

        if self._pool is not None:
            fut = self._pool.submit(fn)
        else:
            fut = Future()
            fut.set_result(fn())  # inline: an error is raised here, with its traceback
        self._pending.append(fut)
        return fut

    def completed(self, block: bool = True) -> Iterator[Any]:
        """The futures submitted so far that are done, as they finish (``block=False``:
        only those already done), each once; a piece's error is raised as it is met."""
        from concurrent.futures import as_completed

        if block:
            pending, self._pending = self._pending, []
            done: Iterable[Any] = as_completed(pending)
        else:
            done, waiting = [], []
            for f in self._pending:  # one test per future: none lost to a race
                (done if f.done() else waiting).append(f)
            self._pending = waiting
        for f in done:
            err = f.exception()
            if err is not None:
                raise err  # a failed piece ends the run now, not when its result is read
            yield f

    def stream(self, pieces: Iterable[Callable[[], Any]], futures: list[Any]) -> Iterator[Any]:
        """Submit each piece as ``pieces`` produces it (its ``Future`` appended to
        ``futures``, in order), yielding the futures as they finish: iterate it through a
        progress bar, then read ``futures[i].result()``. ``pieces`` may do work between
        pieces (drawing the data the next one reads) while the workers run."""
        for fn in pieces:
            futures.append(self.submit(fn))
            yield from self.completed(block=False)  # (inline, one worker: this piece)
        yield from self.completed()

    def drive(self, jobs: list[Iterator[Any]], total: int) -> Iterator[Any]:
        """Run job generators (each yields a unit after each piece of its work), yielding
        the units on the caller's thread as they are done: iterate it through a progress
        bar with ``total`` (the units all jobs yield). Jobs run whole, each on one worker
        (with one worker: one after another right here, lazily); a job may wait for
        another's result if that job comes earlier in ``jobs``.

        A failed job's error is raised as soon as it is seen; when the iteration ends
        early (that error, Ctrl-C), jobs not yet started are dropped by :meth:`close` and
        running ones leave off after their current unit instead of running to the end.
        """
        if self._pool is None:
            for job in jobs:
                yield from job
            return
        import functools
        import queue
        import threading

        ticks: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()

        def drain(job: Iterator[Any]) -> None:
            try:
                for unit in job:
                    ticks.put((True, unit))
                    if stop.is_set():
                        return  # the run has ended: leave the rest of the job
            except BaseException as err:
                ticks.put((False, err))  # seen at once, even while other jobs keep ticking
                raise

        futures = [self._pool.submit(functools.partial(drain, job)) for job in jobs]
        seen = 0
        try:
            while seen < total:
                try:
                    ok, unit = ticks.get(timeout=0.2)
                except queue.Empty:
                    if all(f.done() for f in futures) and ticks.empty():
                        break  # (fewer units than ``total``: do not wait forever)
                    continue
                if not ok:
                    raise unit
                seen += 1
                yield unit
            for f in futures:
                f.result()
        finally:
            stop.set()

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)

    def __enter__(self) -> TaskPool:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(cancel=exc_type is not None)


def available_memory() -> int:
    """Bytes of memory this process can still use: ``MemAvailable`` (Linux), else total."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**63 - 1


def charge_to_most_grown(grown: dict[str, float], need: int) -> dict[str, int]:
    """An ``estimate_bytes`` answer: all of ``need`` charged to the field that grew most.

    ``grown`` maps size fields to how far each grew over the default config (squared for
    fields the memory grows with quadratically), so ``check_memory`` names the field a user
    should lower.
    """
    return {max(grown, key=grown.__getitem__): int(need)}


def check_memory(module: Any, config: Any) -> None:
    """Refuse a run whose estimated peak memory exceeds what this machine has free.

    An experiment module may define ``estimate_bytes(config) -> dict[str, int]``: the
    bytes its largest allocations need, keyed by the ``Config`` field that drives each.
    The run is refused, before any work, with a ``ConfigError`` naming the field when the
    total exceeds :func:`available_memory`.
    """
    estimate = getattr(module, "estimate_bytes", None)
    if estimate is None:
        return
    parts: dict[str, int] = estimate(config)
    need, free = sum(parts.values()), available_memory()
    if need > free:
        field_name = max(parts, key=parts.__getitem__)
        raise ConfigError(
            f"{field_name}={getattr(config, field_name, '?')}: this run would need about "
            f"{need / 2**30:.1f} GiB of memory and this machine has {free / 2**30:.1f} GiB "
            "free; lower it"
        )


# ----------------------------------------------------------------------------- config parsing


def config_fields(cls: type) -> dict[str, Any]:
    """Map each field name of a ``Config`` dataclass to its resolved type."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def describe_type(tp: Any) -> str:
    """Say in words what ``--set`` accepts for a field of type ``tp``."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        return f"comma-separated {args[0].__name__} values" if args else "comma-separated values"
    if tp is type(None):
        return "none"
    if tp is bool:
        return "true or false"
    return getattr(tp, "__name__", str(tp))


def _parse_value(text: str, tp: Any) -> Any:
    """Parse ``text`` to type ``tp``; raise ``ValueError`` on failure."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        for option in typing.get_args(tp):
            try:
                if _parse_value(text, type(option)) == option:
                    return option
            except ValueError:
                continue
        raise ValueError
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.strip().lower() in ("none", "null", ""):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _parse_value(text, a)
            except ValueError:
                continue
        raise ValueError
    if origin is tuple:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis] or [str]
        items = [s for s in text.replace(" ", "").split(",") if s != ""]
        if not items:
            raise ValueError
        return tuple(_parse_value(s, args[0]) for s in items)
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError
    if tp is int:
        value = int(text)
        if abs(value) > 2**63 - 1:
            raise ValueError
        return value
    if tp is float:
        return float(text)
    if tp is str:
        return text
    raise ValueError


def _check_value(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_check_value(value, a) for a in typing.get_args(tp))
    if origin is tuple:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return (
            isinstance(value, (tuple, list)) and all(_check_value(v, args[0]) for v in value)
            if args
            else isinstance(value, (tuple, list))
        )
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def parse_overrides(cls: type, items: Sequence[str]) -> dict[str, Any]:
    """Parse ``["key=value", ...]`` against the fields of ``cls``.

    Raises ``ConfigError`` with a one-line message naming the field and accepted values.
    """
    fields = config_fields(cls)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in fields:
            raise ConfigError(
                f"unknown config field {key!r}; accepted fields: {', '.join(sorted(fields))}"
            )
        try:
            out[key] = _parse_value(text, fields[key])
        except ValueError:
            raise ConfigError(
                f"bad value {text!r} for {key}: expected {describe_type(fields[key])}"
            ) from None
    return out


def config_from_dict(cls: type, values: dict[str, Any], base: Any | None = None) -> Any:
    """Build a ``Config`` from ``base`` (or the defaults) updated with ``values``.

    Runs the dataclass's own ``__post_init__`` checks; a ``ValueError`` there becomes
    a ``ConfigError``.
    """
    fields = config_fields(cls)
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown config field {key!r}; accepted fields: {', '.join(sorted(fields))}"
            )
        if isinstance(value, list):
            value = tuple(value)
            values[key] = value
        if not _check_value(value, fields[key]):
            raise ConfigError(
                f"bad value {value!r} for {key}: expected {describe_type(fields[key])}"
            )
    try:
        if base is None:
            return cls(**values)
        return dataclasses.replace(base, **values)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err).splitlines()[0] if str(err) else repr(err)) from None
