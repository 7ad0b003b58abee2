"""Notice edits to rule and alias files: a stat of each file, its content hashed when that moved."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from stat import S_ISREG

from bot.yamlfile import YAML_SUFFIXES

WATCH_INTERVAL = timedelta(seconds=1)  # at most one look at the files per interval
# A file changed less than this before a look may change again within the file system's time
# resolution without its stat showing it: its content is hashed again at the next look.
SETTLE_NS = 2_000_000_000

Stat = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns
Fingerprint = tuple[tuple[str, str], ...]  # (path, sha-256 of the content)


class FileWatch:
    """Says whether the files in `directories` changed since the last look (or `mark`).

    Each look stats every file and reads only those whose stat differs from the last look, or
    that had changed shortly before it: an edit that keeps the size and restores the mtime
    still moves the ctime, or falls in that settling window.
    """

    def __init__(
        self, directories: Sequence[Path | None], interval: timedelta = WATCH_INTERVAL
    ) -> None:
        self.directories = tuple(directories)
        self.interval = interval
        self._seen: Fingerprint | None = None
        self._looked_at: datetime | None = None
        self._hashes: dict[str, tuple[Stat, str]] = {}  # path → its stat and hash, when settled

    def mark(self) -> None:
        """Take the files as they are now as seen (call it right before loading them)."""
        self._seen = self.fingerprint()

    def changed(self, now: datetime) -> bool:
        """True once per change; looks at the files at most once per `interval`."""
        if self._looked_at is not None and now - self._looked_at < self.interval:
            return False
        self._looked_at = now
        current = self.fingerprint()
        if current == self._seen:
            return False
        self._seen = current
        return True

    def fingerprint(self) -> Fingerprint:
        """What the watched files hold now; a file that vanishes while being read is absent."""
        settled_before = time.time_ns() - SETTLE_NS
        found, hashes = [], {}
        for path, stat in _yaml_stats(self.directories):
            cached = self._hashes.get(path)
            if cached is not None and cached[0] == stat:
                digest = cached[1]
            else:
                try:
                    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                except OSError:
                    continue
            found.append((path, digest))
            if max(stat[2], stat[3]) < settled_before:
                hashes[path] = (stat, digest)
        self._hashes = hashes
        return tuple(found)


def _yaml_stats(directories: Sequence[Path | None]) -> list[tuple[str, Stat]]:
    """The YAML files `yaml_files` would list, each with its stat: one system call per file."""
    found = []
    for directory in directories:
        if directory is None:
            continue
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:  # missing, or not a folder
            continue
        for entry in entries:
            if Path(entry.name).suffix not in YAML_SUFFIXES:
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if S_ISREG(st.st_mode):
                found.append((entry.path, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)))
    return found
