"""The rules the package's layout keeps, read from its source (AST), so that a change that breaks one fails here:

- no stage imports another stage, and below the stages nothing imports them (only the wiring and the tasks do);
- ``umami/`` (reading Umami) and ``users/`` (the users collection) never import each other or ``stages/``;
- the database hooks (``connections``) import nothing of the package;
- only the wiring module constructs hooks or clients.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "plugins" / "umami_sync"
COMPOSERS = {"wiring", "tasks"}
HOOKS_AND_CLIENTS = {"UmamiHook", "UmamiDatabaseHook", "UsersMongoHook", "HttpHook", "PostgresHook", "MongoHook",
                     "MongoClient"}


def part(module: str) -> str:
    """The part of the package a module belongs to: ``stages.<stage>``, or its first level below ``umami_sync``."""
    parts = module.split(".")[1:]
    return ".".join(parts[:2]) if parts[:1] == ["stages"] else ".".join(parts[:1])


def imported(tree: ast.AST) -> set[str]:
    """The package's modules ``tree`` imports, anywhere in it (type-checking imports included)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the package uses absolute imports only"
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("umami_sync.") and name != "umami_sync.stages"}


def built(tree: ast.AST) -> list[str]:
    """The hooks and clients ``tree`` constructs."""
    calls = (node.func for node in ast.walk(tree) if isinstance(node, ast.Call))
    names = (call.id if isinstance(call, ast.Name) else getattr(call, "attr", "") for call in calls)
    return [name for name in names if name in HOOKS_AND_CLIENTS]


def graph() -> dict[str, set[str]]:
    """Each part of the package, and the other parts it imports."""
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        own = part(module)
        edges.setdefault(own, set()).update(part(name) for name in imported(ast.parse(path.read_text()))
                                            if part(name) != own)
    return edges


def test_no_stage_imports_another_and_only_the_composers_import_stages() -> None:
    assert {(source, target) for source, targets in graph().items() for target in targets
            if target.startswith("stages.") and source not in COMPOSERS} == set()


def test_reading_umami_and_the_users_collection_stay_apart() -> None:
    edges = graph()
    assert {target for target in edges["umami"] | edges["users"]
            if target in {"umami", "users"} or target.startswith("stages")} == set()


def test_the_database_hooks_import_nothing_of_the_package() -> None:
    assert graph()["connections"] == set()


def test_only_the_wiring_constructs_hooks_and_clients() -> None:
    assert {str(path.relative_to(PACKAGE)): found for path in sorted(PACKAGE.rglob("*.py"))
            if path.name != "wiring.py" and (found := built(ast.parse(path.read_text())))} == {}


def test_the_checks_see_a_break() -> None:
    """What the tests above look for is found when it is there."""
    tree = ast.parse("from umami_sync.stages.sessions import plan\nimport umami_sync.users.store\n"
                     "def f():\n    return UmamiHook('c'), pymongo.MongoClient()\n")
    assert imported(tree) == {"umami_sync.stages.sessions", "umami_sync.users.store"}
    assert [part(name) for name in sorted(imported(tree))] == ["stages.sessions", "users"]
    assert built(tree) == ["UmamiHook", "MongoClient"]
