"""Notice edits to rule and alias files by a cheap fingerprint: names, sizes and content hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

WATCH_INTERVAL = timedelta(seconds=1)  # at most one look at the files per interval
WATCHED_SUFFIXES = (".yaml", ".yml")

Fingerprint = tuple[tuple[str, int, str], ...]  # (path, size, sha-256 of the content)


def fingerprint(directories: Sequence[Path | None]) -> Fingerprint:
    """What the watched files hold now; a file that vanishes while being read counts as absent.

    The content hash (files are small) catches an edit that keeps the size and the mtime.
    """
    found = []
    for directory in directories:
        if directory is None or not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in WATCHED_SUFFIXES:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found.append((str(path), len(data), hashlib.sha256(data).hexdigest()))
    return tuple(found)


class FileWatch:
    """Says whether the files in `directories` changed since the last look (or `mark`)."""

    def __init__(
        self, directories: Sequence[Path | None], interval: timedelta = WATCH_INTERVAL
    ) -> None:
        self.directories = tuple(directories)
        self.interval = interval
        self._seen: Fingerprint | None = None
        self._looked_at: datetime | None = None

    def mark(self) -> None:
        """Take the files as they are now as seen (call it right before loading them)."""
        self._seen = fingerprint(self.directories)

    def changed(self, now: datetime) -> bool:
        """True once per change; looks at the files at most once per `interval`."""
        if self._looked_at is not None and now - self._looked_at < self.interval:
            return False
        self._looked_at = now
        current = fingerprint(self.directories)
        if current == self._seen:
            return False
        self._seen = current
        return True
