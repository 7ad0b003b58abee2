"""The shape of the code: each foreign I/O library is imported by one module only."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"

# Owner of each I/O library, relative to bot/: a module, or a package (ending in "/") whose
# modules share it.
OWNERS = {
    "httpx": "fetch.py",
    "feedparser": "parse.py",
    "slack_sdk": "slack.py",
    "aiohttp": "slack.py",
    "sqlalchemy": "store/",
    "apscheduler": "scheduler.py",
    "yaml": "yamlfile.py",
    "trafilatura": "extract.py",
    "ruamel": "configedit.py",
    "defusedxml": "opml.py",
    "ahocorasick": "index.py",
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
    "discover.py",
    "search.py",
    "backtest.py",
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


def modules() -> list[tuple[str, Path]]:
    """Every module of bot/, packages' included, by its path relative to bot/."""
    return [(path.relative_to(BOT).as_posix(), path) for path in sorted(BOT.rglob("*.py"))]


def owned_by(owner: str, module: str) -> bool:
    return module.startswith(owner) if owner.endswith("/") else module == owner


def test_each_io_library_is_imported_by_its_one_module() -> None:
    for module, path in modules():
        for name in imported_roots(path):
            root = name.split(".")[0]
            owner = OWNERS.get(root)
            assert owner is None or owned_by(owner, module), (
                f"{module} imports {root}; only {owner} may"
            )


def test_each_owner_imports_its_library() -> None:
    """So the walk reaches every owner, a package's modules included, and no entry is stale."""
    for library, owner in OWNERS.items():
        users = [
            module
            for module, path in modules()
            if owned_by(owner, module)
            and library in {name.split(".")[0] for name in imported_roots(path)}
        ]
        assert users, f"{owner} does not import {library}"


def test_a_package_owns_only_its_own_modules() -> None:
    assert owned_by("store/", "store/schema.py")
    assert not owned_by("store/", "poll.py")
    assert not owned_by("store/", "storefront.py")
    assert not owned_by("fetch.py", "fetcher.py")


def test_pure_modules_do_no_io() -> None:
    for name in PURE:
        roots = imported_roots(BOT / name)
        assert not roots & IO_MODULES, f"{name} imports {roots & IO_MODULES}"
        assert not {r.split(".")[0] for r in roots} & set(OWNERS), f"{name} imports an I/O library"


def test_every_module_says_what_it_is_for() -> None:
    for module, path in modules():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc, f"{module} has no module docstring"
        assert len(doc.splitlines()[0]) <= 100
