"""The container image installs the project's runtime dependencies only (no test extras):
every third-party module that shared/, services/ and pluto/ import must come from
them, or a container fails where the test venv works. Checked without Docker, from
the import statements and the installed distributions' metadata."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement

from tests.deploy_helpers import ROOT

PACKAGES = ("shared", "services", "pluto")
FIRST_PARTY = {"shared", "services", "pluto", "tests", "benchmarks"}


def imported_top_levels() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def runtime_closure() -> set[str]:
    """pyproject.toml's runtime dependencies and what they pull in (installed metadata)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    seen: set[str] = set()
    todo = []
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            todo.append(requirement.name)
    while todo:
        name = _normalize(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            declared = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in declared:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            todo.append(requirement.name)
    return seen


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_module_comes_from_a_runtime_dependency() -> None:
    provided = runtime_closure()
    owners = packages_distributions()
    missing = {}
    for module, where in sorted(imported_top_levels().items()):
        if module in FIRST_PARTY or module in sys.stdlib_module_names or module == "__future__":
            continue
        distributions = {_normalize(d) for d in owners.get(module, [])}
        if not distributions & provided:
            missing[module] = sorted(where)[:3]
    assert not missing, f"imported but not a runtime dependency in pyproject.toml: {missing}"


def test_the_image_copies_every_package_and_their_data() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in PACKAGES:
        assert f"COPY {package} ./{package}" in dockerfile
    # data files the services read at run time travel with the packages (no wheel install)
    assert list((ROOT / "services" / "dashboards" / "templates").glob("*.j2"))
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert not any(line.startswith("!") and "tests" in line for line in ignore)
    assert Path(ROOT / "pyproject.toml").exists()
