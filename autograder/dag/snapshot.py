"""What a DAG run left on disk: content hashes of every file under its data folder, and their difference.

Idempotency is judged on content, not on timestamps: a task that rewrites the same bytes is idempotent; one
that appends, or names files after the clock, is not. Pure Python, so the worker and the tests share it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

# Caches that Python or tools drop beside data; they say nothing about what the tasks produced.
_IGNORED_PARTS = {"__pycache__", ".ipynb_checkpoints"}


def snapshot(folder: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file under `folder` (empty when it does not exist)."""
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or _IGNORED_PARTS.intersection(path.relative_to(folder).parts):
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return out


@dataclass
class SnapshotDiff:
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.changed or self.added or self.removed)


def diff(before: dict[str, str], after: dict[str, str]) -> SnapshotDiff:
    return SnapshotDiff(
        changed=sorted(p for p in before.keys() & after.keys() if before[p] != after[p]),
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
    )
