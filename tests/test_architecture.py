"""The dependency direction the design promises: experience and authenticators use identity, never
the reverse; no module of identity imports another in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules_of(app: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[module] = imported_modules(path)
    return found


def test_identity_never_imports_experience_or_authenticators():
    offenders = {
        module: sorted(name for name in names if name.split(".")[0] in ("experience", "authenticators"))
        for module, names in modules_of("identity").items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_authenticators_never_import_experience():
    offenders = {
        module: sorted(name for name in names if name.split(".")[0] == "experience")
        for module, names in modules_of("authenticators").items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_identity_modules_import_each_other_without_circles():
    modules = modules_of("identity")
    graph = {module: set() for module in modules}
    for module, names in modules.items():
        for name in names:
            parts = name.split(".")
            for depth in (2, 3):  # "identity.x" and "identity.x.y", or a name from "identity" itself
                target = ".".join(parts[:depth])
                if target in graph and target not in (module, "identity"):
                    graph[module].add(target)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        assert node not in visiting, f"import circle: {' -> '.join([*visiting[visiting.index(node):], node])}"
        if node in done:
            return
        visiting.append(node)
        for target in sorted(graph[node]):
            visit(target)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_experience_and_authenticators_reach_identity_through_its_modules_not_its_views():
    """identity's pages are its own: the engine reaches the provider through identity.authentication
    (resume markers, sign-in), identity.applications and identity.tokens, never identity.views."""
    offenders = {
        module: sorted(name for name in names if name == "identity.views" or name.startswith("identity.views."))
        for app in ("experience", "authenticators")
        for module, names in modules_of(app).items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_no_app_uses_the_http_clients_whose_logs_the_secret_check_leaves_out():
    """tests/log_capture.py does not check the logs of urllib3, requests, httpx (the tests' own clients):
    that is sound only while no app of Portcullis sends its requests through them."""
    from tests.log_capture import CLIENT_LOGGERS

    offenders = {
        module: sorted(name for name in names if name.split(".")[0] in CLIENT_LOGGERS)
        for app in ("identity", "experience", "authenticators", "config") for module, names in modules_of(app).items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}
