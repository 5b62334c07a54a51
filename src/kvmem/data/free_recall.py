"""Murdock's (1962) free-recall data, bundled, and conversions to and from ``psifr`` tables.

``murdock1962_ll20.csv`` (in ``kvmem/data/files``) holds free recall of 20-word lists at
1 s per word from Murdock (1962), "The serial position effect of free recall",
J. Exp. Psychol. 64, 482-488: 1,200 lists (15 subjects x 80 lists), trial by trial, in the
long format that ``psifr`` reads (``psifr.fr.merge_free_recall``):

=========== ==========================================================================
column      content
=========== ==========================================================================
subject     1..15
list        1..1200
trial_type  ``study`` or ``recall``
position    study: serial position 1..20; recall: output position 1, 2, ...
item        ``LL20-L{list}-P{serial position}``; an intrusion (a word not on the list)
            is ``LL20-L{list}-INTRUSION{k}``
=========== ==========================================================================

The words themselves are not in the source, only their serial positions. Repeats are kept
as recorded. Summary of the data (psifr): recall probability at serial positions 1, 2, 3:
0.461, 0.275, 0.197; at 18, 19, 20: 0.718, 0.822, 0.950; lag-CRP at lag +1: 0.444, at lag
-1: 0.145.

Source: the trial-level file ``data/MurdData.mat`` of the public repository
mkclairhong/CMRX_repfr (field ``data.LL(1)``: ``recalls``, 1200 x 15, serial positions in
output order, -1 = intrusion, 0 = padding; ``subject``), converted to this table without
any other change. The file's sha256 is checked on every load; a missing or corrupt file
raises :class:`kvmem.data.bundled.DataError`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from kvmem.data.bundled import DataError

__all__ = [
    "MURDOCK_FILE",
    "MURDOCK_SHA256",
    "load_murdock1962",
    "recall_matrix",
    "recalls_to_table",
]

#: The bundled CSV (module attribute so tests can point it elsewhere).
MURDOCK_FILE: Path = Path(__file__).resolve().parent / "files" / "murdock1962_ll20.csv"
MURDOCK_SHA256 = "baae917a2d439b3b2ee9d68ede7c1d5dd31d5afa5c0405a62b8b2b408cf82477"
_COLUMNS = ("subject", "list", "trial_type", "position", "item")
_RESTORE = "reinstall kvmem, or copy shared/data/murdock1962_ll20.csv into kvmem/data/files"


def load_murdock1962() -> pd.DataFrame:
    """Murdock (1962) LL20 free recall as the raw long table (columns above).

    The file's sha256 is checked before parsing. Returns a fresh ``DataFrame``
    (33,118 rows: 24,000 study events and the recall events) that
    ``psifr.fr.merge_free_recall`` accepts as is.
    """
    path = Path(MURDOCK_FILE)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"bundled data file {path} is missing; {_RESTORE}") from None
    except OSError as err:
        raise DataError(f"bundled data file {path} cannot be read ({err}); {_RESTORE}") from None
    actual = hashlib.sha256(blob).hexdigest()
    if actual != MURDOCK_SHA256:
        raise DataError(
            f"bundled data file {path} is corrupt (sha256 {actual[:12]}..., "
            f"expected {MURDOCK_SHA256[:12]}...); {_RESTORE}"
        )
    df = pd.read_csv(path)
    if tuple(df.columns) != _COLUMNS:  # pragma: no cover - the checksum guards this
        raise DataError(f"bundled data file {path} has columns {list(df.columns)}")
    return df


def recall_matrix(raw: pd.DataFrame, list_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Valid recalls per list as a padded matrix of 0-based serial positions.

    ``raw``: a long table as :func:`load_murdock1962` returns. Intrusions and repeats are
    dropped (the convention of likelihood fits of context models, e.g. cymr), the order of
    the remaining recalls is kept. Returns ``(recalls int64 [n_lists, list_length],
    subjects int64 [n_lists])`` with ``-1`` after the last recall, lists in table order.
    """
    study = raw[raw.trial_type == "study"]
    rec = raw[raw.trial_type == "recall"].sort_values(["list", "position"], kind="stable")
    pairs = zip(study["list"], study["item"], strict=True)
    lookup = dict(zip(pairs, study["position"], strict=True))
    lists = pd.unique(study["list"])
    index = {lst: i for i, lst in enumerate(lists)}
    subjects = study.groupby("list", sort=False)["subject"].first().loc[lists].to_numpy()
    out = np.full((len(lists), list_length), -1, dtype=np.int64)
    count = np.zeros(len(lists), dtype=np.int64)
    seen: set[tuple[int, int]] = set()
    for lst, item in zip(rec["list"], rec["item"], strict=True):  # I/O-time conversion
        pos = lookup.get((lst, item))
        if pos is None or (lst, pos) in seen:
            continue
        seen.add((lst, pos))
        i = index[lst]
        out[i, count[i]] = pos - 1
        count[i] += 1
    return out, subjects.astype(np.int64)


def recalls_to_table(
    recalls: np.ndarray, subjects: np.ndarray | None = None, prefix: str = "SIM"
) -> pd.DataFrame:
    """A padded recall matrix (0-based serial positions, ``-1`` = none) as a psifr table.

    ``recalls``: int ``[n_lists, R]``; the list length is taken as ``R`` (every list
    studies positions 1..R). ``subjects``: ``[n_lists]`` (default: all 1). Items are
    named ``{prefix}-L{list}-P{position}``. Built with array operations, no loop over lists.
    """
    recalls = np.asarray(recalls, dtype=np.int64)
    n, length = recalls.shape
    subj = np.ones(n, dtype=np.int64) if subjects is None else np.asarray(subjects, np.int64)
    lists = np.arange(1, n + 1)
    pos = np.tile(np.arange(1, length + 1), n)
    lst = np.repeat(lists, length)
    study = pd.DataFrame(
        {
            "subject": np.repeat(subj, length),
            "list": lst,
            "trial_type": "study",
            "position": pos,
            "item": [f"{prefix}-L{a}-P{b}" for a, b in zip(lst, pos, strict=True)],
        }
    )
    r_list, r_out = np.nonzero(recalls >= 0)
    r_pos = recalls[r_list, r_out] + 1
    recall = pd.DataFrame(
        {
            "subject": subj[r_list],
            "list": lists[r_list],
            "trial_type": "recall",
            "position": r_out + 1,
            "item": [f"{prefix}-L{a}-P{b}" for a, b in zip(lists[r_list], r_pos, strict=True)],
        }
    )
    return pd.concat([study, recall], ignore_index=True)
