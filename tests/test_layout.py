"""The layout as contracts: the core is pure, layers point down, no import cycles, no clock in the core.

import-linter checks the contracts in pyproject.toml. `flows/` and `connectors/` install as
`sloguard.flows` and `sloguard.connectors` by a package-dir mapping that import-linter's graph
builder cannot follow, so the tests copy the tree as it is installed into a temporary directory
and check that copy (which also lets a probe module show that a broken contract is caught).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(),
                                reason="import-linter is not installed (pip install -e '.[dev]')")


def installed_tree(dest: Path) -> Path:
    """dest/sloguard laid out as the wheel installs it: sloguard/, with flows/ and connectors/ inside."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "sloguard", dest / "sloguard", ignore=ignore)
    for top in ("flows", "connectors"):
        shutil.copytree(ROOT / top, dest / "sloguard" / top, ignore=ignore)
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"], capture_output=True,
                          text=True, env=env, cwd=tree, check=False)


def test_the_import_contracts_hold(tmp_path):
    done = lint_imports(installed_tree(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "source", "broken"), [
    ("core/stats/_probe.py", "import bytewax.operators\n", "the core is pure"),
    ("core/stats/_probe.py", "def f():\n    from sloguard.connectors import kafka_io\n", "the core is pure"),
    ("connectors/_probe.py", "from sloguard.apps import cli\n", "layers"),
    ("flows/_probe.py", "from sloguard.connectors import kafka_io\n", "layers"),
])
def test_a_broken_contract_is_caught(tmp_path, module, source, broken):
    tree = installed_tree(tmp_path)
    (tree / "sloguard" / module).write_text(source)
    done = lint_imports(tree)
    report = " ".join(done.stdout.split())
    assert done.returncode == 1
    assert re.search(re.escape(broken) + r"((?!KEPT).)*? BROKEN", report), report  # that contract, not another


def import_cycles(tree: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (function-level imports count)."""
    code = (
        "import grimp, json, sys\n"
        "sys.setrecursionlimit(10000)\n"
        "g = grimp.build_graph('sloguard', exclude_type_checking_imports=True)\n"
        "index, low, stack, on, out = {}, {}, [], set(), []\n"
        "def visit(v):\n"
        "    index[v] = low[v] = len(index); stack.append(v); on.add(v)\n"
        "    for w in sorted(g.find_modules_directly_imported_by(v)):\n"
        "        if w not in index:\n"
        "            visit(w); low[v] = min(low[v], low[w])\n"
        "        elif w in on:\n"
        "            low[v] = min(low[v], index[w])\n"
        "    if low[v] == index[v]:\n"
        "        part = []\n"
        "        while not part or part[-1] != v:\n"
        "            part.append(stack.pop()); on.discard(part[-1])\n"
        "        if len(part) > 1: out.append(sorted(part))\n"
        "for m in sorted(g.modules):\n"
        "    if m not in index: visit(m)\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tree,
                          check=True)
    import json

    return json.loads(done.stdout)


def test_no_import_cycles(tmp_path):
    tree = installed_tree(tmp_path)
    assert import_cycles(tree) == []
    # a cycle hidden behind a function-level import is still one
    (tree / "sloguard" / "core" / "stats" / "_a.py").write_text("from sloguard.core.stats import _b\n")
    (tree / "sloguard" / "core" / "stats" / "_b.py").write_text("def f():\n    from sloguard.core.stats import _a\n")
    assert import_cycles(tree) == [["sloguard.core.stats._a", "sloguard.core.stats._b"]]


CLOCK_CALLS = {("time", "time"), ("time", "monotonic"), ("datetime", "now"), ("datetime", "utcnow"),
               ("date", "today"), ("time", "perf_counter"), ("time", "sleep")}


def test_the_core_reads_no_clock():
    """Time comes into the core as data (event time, or an argument the edge read): no module of
    sloguard/core calls the wall clock."""
    for path in sorted((ROOT / "sloguard" / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = node.func.value
                owner = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                assert (owner, node.func.attr) not in CLOCK_CALLS, f"{path}:{node.lineno} reads the clock"


MAX_MODULE_LINES = 520


def test_no_module_is_over_about_500_lines():
    long = {str(p.relative_to(ROOT)): n for top in ("sloguard", "flows", "connectors")
            for p in (ROOT / top).rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_every_package_of_the_tree_is_installed():
    """pyproject lists the packages explicitly (the package-dir mapping needs it): a new subpackage
    missing there would import from a checkout and be absent from the wheel."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool["package-dir"]
    on_disk = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if name == "sloguard" and rel.parts[:1] in (("flows",), ("connectors",)):
                continue
            on_disk.add(".".join((name, *rel.parts)))
    # data-only folders (no __init__.py, such as the alert policies' YAML) are packages too, so their
    # files ship as package data: each must exist and hold what its globs name
    def folder_of(package: str) -> Path:
        root = max((k for k in mapping if package == k or package.startswith(k + ".")), key=len)
        rest = package[len(root):].lstrip(".")
        return ROOT / mapping[root] / Path(*rest.split(".")) if rest else ROOT / mapping[root]

    data = {package: [f for g in globs for f in folder_of(package).glob(g)]
            for package, globs in tool.get("package-data", {}).items()}
    assert all(data.values()), f"package data that matches no file: {data}"
    assert set(tool["packages"]) == on_disk | set(data)
