"""The datasets shipped inside kvmem, checked against their sha256 on every load.

Two files live in ``kvmem/data/files`` (provenance in ``shared/data/README.md``):

- ``mnist01_fashion23.npz``: the two tasks of the paper's forgetting simulation
  (docs/science.md 3.2): MNIST digits 0/1 and Fashion-MNIST classes 2/3, uint8 pixels, in the
  order of the original files.
- ``mnist_test10k.npz``: the 10,000 MNIST test images and labels.

Files are read with ``np.load(allow_pickle=False)``: no code is ever unpickled. A missing or
corrupt file raises :class:`DataError`, whose one-line message says how to restore it.

:func:`load_forgetting_tasks` can also build the same two tasks from a folder of IDX files
(the original MNIST / Fashion-MNIST downloads), see its docstring for the layout.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kvmem.data.idx import read_idx

__all__ = [
    "BUNDLED",
    "DATA_DIR",
    "DataError",
    "Tasks",
    "bundled_path",
    "load_bundled",
    "load_forgetting_tasks",
    "load_mnist_test10k",
    "tasks_from_arrays",
]

#: Folder holding the bundled ``.npz`` files (module attribute so tests can point it elsewhere).
DATA_DIR: Path = Path(__file__).resolve().parent / "files"

#: name -> (file name, sha256 of the file, array names it must contain)
BUNDLED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mnist01_fashion23": (
        "mnist01_fashion23.npz",
        "0acf68f1aa45245340f7d41f923bc87a77e08db61fe3daa5587a410a6d447fd1",
        (
            "mnist_train_x",
            "mnist_train_y",
            "mnist_test_x",
            "mnist_test_y",
            "fashion_train_x",
            "fashion_train_y",
            "fashion_test_x",
            "fashion_test_y",
        ),
    ),
    "mnist_test10k": (
        "mnist_test10k.npz",
        "36415f49eff12da1fff91e2a8ca1262242e30b42b07238d4114d7b46365ec6f1",
        ("x", "y"),
    ),
}

_RESTORE = "reinstall kvmem, or run `python scripts/rebuild_data.py` from a source checkout"

# (path, size, mtime_ns, sha256) -> arrays; avoids re-hashing and re-inflating in one process
_CACHE: dict[tuple[str, int, int, str], dict[str, np.ndarray]] = {}


class DataError(OSError):
    """A bundled or user-supplied data file is missing, corrupt or malformed.

    The message is one line and says how to restore the file; the command line maps this
    error to exit code 2.
    """


def bundled_path(name: str) -> Path:
    """Path of bundled dataset ``name`` (one of :data:`BUNDLED`)."""
    if name not in BUNDLED:
        raise ValueError(f"name: unknown bundled dataset {name!r}; available: {', '.join(BUNDLED)}")
    return Path(DATA_DIR) / BUNDLED[name][0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_bundled(name: str) -> dict[str, np.ndarray]:
    """Load bundled dataset ``name`` as ``{array name: read-only uint8 array}``.

    The file's sha256 is checked against :data:`BUNDLED` before it is parsed. Raises
    :class:`DataError` if the file is missing, its checksum differs, or it lacks an array.
    """
    path = bundled_path(name)
    _, digest, keys = BUNDLED[name]
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(f"bundled data file {path} is missing; {_RESTORE}") from None
    cache_key = (str(path), stat.st_size, stat.st_mtime_ns, digest)
    if cache_key in _CACHE:
        return dict(_CACHE[cache_key])
    try:
        actual = _sha256(path)
    except OSError as err:
        raise DataError(f"bundled data file {path} cannot be read ({err}); {_RESTORE}") from None
    if actual != digest:
        raise DataError(
            f"bundled data file {path} is corrupt (sha256 {actual[:12]}..., "
            f"expected {digest[:12]}...); {_RESTORE}"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:  # pragma: no cover - the checksum guards this
        raise DataError(f"bundled data file {path} cannot be parsed ({err}); {_RESTORE}") from None
    missing = [k for k in keys if k not in arrays]
    if missing:  # pragma: no cover - the checksum guards this
        raise DataError(f"bundled data file {path} lacks arrays {missing}; {_RESTORE}")
    for a in arrays.values():
        a.setflags(write=False)
    _CACHE[cache_key] = arrays
    return dict(arrays)


def load_mnist_test10k() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test images, in the original order.

    Returns ``(x, y)``: ``x`` uint8 ``[10000, 784]`` (raw 0..255 pixels, row-major 28x28),
    ``y`` int64 ``[10000]`` (digits 0..9). ``x`` is read-only; copy it to modify.
    """
    d = load_bundled("mnist_test10k")
    return d["x"], d["y"].astype(np.int64)


@dataclass(frozen=True)
class Tasks:
    """The two class-incremental tasks of the forgetting simulation (docs/science.md 3.2).

    Images are float32 tensors ``[N, 784]`` with pixels in [0, 1] (``uint8 / 255``, exactly
    what torchvision's ``ToTensor`` gives); labels are int64 tensors ``[N]``. Task 1 is MNIST
    digits 0/1 (labels 0, 1); Task 2 is Fashion-MNIST classes 2/3 (labels 2, 3), so both
    tasks share one 4-way output. Examples are in the order of the original files.
    """

    task1_train_x: torch.Tensor
    task1_train_y: torch.Tensor
    task1_test_x: torch.Tensor
    task1_test_y: torch.Tensor
    task2_train_x: torch.Tensor
    task2_train_y: torch.Tensor
    task2_test_x: torch.Tensor
    task2_test_y: torch.Tensor


def _images(x: np.ndarray) -> torch.Tensor:
    # the arithmetic of torchvision's ToTensor: uint8 -> float32 (exact), then torch's / 255
    x = np.asarray(x).reshape(len(x), -1).astype(np.float32)
    return torch.from_numpy(x).div_(255)


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(y).astype(np.int64))


def tasks_from_arrays(
    mnist_train: tuple[np.ndarray, np.ndarray],
    mnist_test: tuple[np.ndarray, np.ndarray],
    fashion_train: tuple[np.ndarray, np.ndarray],
    fashion_test: tuple[np.ndarray, np.ndarray],
) -> Tasks:
    """Select the published subsets from full MNIST / Fashion-MNIST arrays.

    Each argument is ``(images uint8 [N, 28, 28] or [N, 784], labels [N])``. Keeps MNIST
    labels 0 and 1 and Fashion-MNIST labels 2 and 3, in the original order (the selection
    ``label < 2`` and ``1 < label < 4`` of the published notebook).
    """

    def pick(pair: tuple[np.ndarray, np.ndarray], lo: int, hi: int) -> tuple[np.ndarray, ...]:
        x, y = pair
        keep = (y >= lo) & (y <= hi)
        return x[keep], y[keep]

    m_tr, m_te = pick(mnist_train, 0, 1), pick(mnist_test, 0, 1)
    f_tr, f_te = pick(fashion_train, 2, 3), pick(fashion_test, 2, 3)
    return Tasks(
        _images(m_tr[0]),
        _labels(m_tr[1]),
        _images(m_te[0]),
        _labels(m_te[1]),
        _images(f_tr[0]),
        _labels(f_tr[1]),
        _images(f_te[0]),
        _labels(f_te[1]),
    )


#: Sub-folders searched for each dataset under ``data_dir`` (first match wins).
IDX_SUBDIRS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist", "MNIST/raw", "MNIST"),
    "fashion": ("fashion", "fashion-mnist", "FashionMNIST/raw", "FashionMNIST"),
}
#: The four standard IDX file names (each may also carry a ``.gz`` suffix).
IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _find_idx(root: Path, subdirs: Sequence[str], stem: str) -> Path:
    for sub in subdirs:
        for name in (stem, stem + ".gz"):
            p = root / sub / name
            if p.is_file():
                return p
    raise DataError(
        f"IDX file {stem}[.gz] not found under {root} (looked in "
        f"{', '.join(str(root / s) for s in subdirs)})"
    )


def _read_dataset(root: Path, key: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    paths = [_find_idx(root, IDX_SUBDIRS[key], stem) for stem in IDX_FILES]
    try:
        arrays = [read_idx(p) for p in paths]
    except ValueError as err:
        raise DataError(str(err)) from None
    xtr, ytr, xte, yte = arrays
    for x, y, p in ((xtr, ytr, paths[0]), (xte, yte, paths[2])):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{p}: images {x.shape} and labels {y.shape} do not match "
                "(expected [N, rows, cols] and [N])"
            )
    return (xtr, ytr), (xte, yte)


def load_forgetting_tasks(data_dir: str | os.PathLike[str] | None = None) -> Tasks:
    """The two tasks of the forgetting simulation (docs/science.md 3.2) as float tensors.

    With ``data_dir=None`` (default) they come from the bundled ``mnist01_fashion23.npz``.
    Otherwise ``data_dir`` is a folder holding the original IDX files of both datasets,
    raw or gzipped (``NAME`` or ``NAME.gz``)::

        data_dir/mnist/train-images-idx3-ubyte      data_dir/fashion/train-images-idx3-ubyte
        data_dir/mnist/train-labels-idx1-ubyte      data_dir/fashion/train-labels-idx1-ubyte
        data_dir/mnist/t10k-images-idx3-ubyte       data_dir/fashion/t10k-images-idx3-ubyte
        data_dir/mnist/t10k-labels-idx1-ubyte       data_dir/fashion/t10k-labels-idx1-ubyte

    (torchvision's download layout ``MNIST/raw`` and ``FashionMNIST/raw`` is accepted too),
    from which MNIST digits 0/1 and Fashion-MNIST classes 2/3 are selected in file order.
    Raises :class:`DataError` for a missing or malformed file.
    """
    if data_dir is None:
        d = load_bundled("mnist01_fashion23")
        return Tasks(
            _images(d["mnist_train_x"]),
            _labels(d["mnist_train_y"]),
            _images(d["mnist_test_x"]),
            _labels(d["mnist_test_y"]),
            _images(d["fashion_train_x"]),
            _labels(d["fashion_train_y"]),
            _images(d["fashion_test_x"]),
            _labels(d["fashion_test_y"]),
        )
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data_dir {root} is not a folder")
    m_tr, m_te = _read_dataset(root, "mnist")
    f_tr, f_te = _read_dataset(root, "fashion")
    return tasks_from_arrays(m_tr, m_te, f_tr, f_te)
