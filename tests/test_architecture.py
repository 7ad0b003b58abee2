"""The shape of the code: each foreign I/O library is imported by one module only."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"

OWNERS = {
    "httpx": "fetch.py",
    "feedparser": "parse.py",
    "slack_sdk": "slack.py",
    "aiohttp": "slack.py",
    "sqlalchemy": "store.py",
    "apscheduler": "scheduler.py",
    "yaml": "yamlfile.py",
}
PURE = (
    "textnorm.py",
    "query.py",
    "expr.py",
    "match.py",
    "normalize.py",
    "summarize.py",
    "render.py",
    "dedup.py",
    "models.py",
    "pacing.py",
)
IO_MODULES = {"socket", "sqlite3", "urllib.request", "http.client", "requests", "asyncio"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module)
    return roots


def test_each_io_library_is_imported_by_its_one_module() -> None:
    for path in sorted(BOT.glob("*.py")):
        for name in imported_roots(path):
            root = name.split(".")[0]
            owner = OWNERS.get(root)
            assert owner in (None, path.name), f"{path.name} imports {root}; only {owner} may"


def test_pure_modules_do_no_io() -> None:
    for name in PURE:
        roots = imported_roots(BOT / name)
        assert not roots & IO_MODULES, f"{name} imports {roots & IO_MODULES}"
        assert not {r.split(".")[0] for r in roots} & set(OWNERS), f"{name} imports an I/O library"


def test_every_module_says_what_it_is_for() -> None:
    for path in sorted(BOT.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc, f"{path.name} has no module docstring"
        assert len(doc.splitlines()[0]) <= 100
