"""Where the real-world test data lives: `../shared` beside the repository (read in place)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEWSWATCH_SHARED", REPO.parent / "shared")).resolve()
CORPUS = SHARED / "corpus"
SAMPLES = SHARED / "samples"
SAMPLE_ARTICLE = SAMPLES / "menafn-us-korea-alliance-2025-07-31.txt"


def need(path: Path) -> Path:
    """Return `path`, or skip the calling test with a reason when the shared data is absent."""
    if not path.exists():
        pytest.skip(f"real-world data not available: {path} (set NEWSWATCH_SHARED)")
    return path
