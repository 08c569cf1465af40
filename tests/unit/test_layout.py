"""The shared library's dependency rule, read from its imports: core <- providers <- domain <- api."""

import ast
from pathlib import Path

from tests.support.paths import ROOT

LIBRARY = ROOT / "layers" / "shared" / "smsplatform"
LAYER = {"core": 0, "providers": 1, "accounts": 2, "contacts": 2, "campaigns": 2, "sending": 2, "billing": 2, "api": 3}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("smsplatform."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "smsplatform":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("smsplatform."))
    return found


def test_every_module_sits_in_a_context_and_imports_only_inward() -> None:
    modules = sorted(LIBRARY.rglob("*.py"))
    assert len(modules) > 40
    for module in modules:
        parts = module.relative_to(LIBRARY).parts
        if len(parts) == 1:
            assert parts == ("__init__.py",), f"{module.name} is outside every context"
            continue
        own = LAYER[parts[0]]
        for package in _imported_packages(module):
            assert LAYER[package] <= own, f"{'/'.join(parts)} imports smsplatform.{package}, an outer layer"


def test_package_files_are_empty_of_code() -> None:
    for init in LIBRARY.rglob("__init__.py"):
        body = [node for node in ast.parse(init.read_text()).body if not isinstance(node, ast.Expr)]
        assert body == [], f"{init.relative_to(LIBRARY)} re-exports or runs code"


def test_the_command_lines_dependencies_are_pinned_as_the_dev_environment_pins_them() -> None:
    """`pip install .` (an operator's laptop) and `make` (.venv) install the same smsctl dependencies."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {
        line.split("==")[0].split("[")[0].lower(): line.strip()
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert declared
    for requirement in declared:
        assert pinned[requirement.split("==")[0].lower()] == requirement
