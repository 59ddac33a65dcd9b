"""The layout is the architecture: import graph, installed surface, and a user's own folders.

- Layers: ``rdbpfn`` <- ``priors`` <- ``eval`` <- ``training``; a module imports only from its
  own package or a package to its left, so ``rdbpfn`` imports none of the others and nothing
  imports ``training``. ``checkpoints/`` holds data only.
- No import circles between modules; project imports sit at the top of modules (typing-only
  imports under ``if TYPE_CHECKING:`` are not edges); no ``importlib`` between our modules.
- A wheel holds one top-level import, ``rdbpfn``, with the shipped weights inside it, and the
  classifier works from a working directory holding folders named like our developer packages.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import networkx as nx

from tests.common import ROOT

LAYERS = {"rdbpfn": 0, "priors": 1, "eval": 2, "training": 3}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in LAYERS
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module) -> list[tuple[ast.stmt, list[str], bool]]:
    """(node, imported dotted names, at module level) for every runtime import."""
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking_block(child):
                continue
            if isinstance(child, ast.Import):
                found.append((child, [alias.name for alias in child.names], top))
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
                found.append((child, [child.module, *names], top))
            else:
                nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                visit(child, top and not nested)

    visit(tree, True)
    return found


def _graph() -> tuple[nx.DiGraph, list[str]]:
    """Module import graph of our four packages, and the rule violations found on the way."""
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    problems = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, targets, top in _imports(tree):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if "importlib" in targets and name != "rdbpfn":
                problems.append(f"{where} imports importlib")
            ours = [t for t in targets if t.split(".")[0] in LAYERS]
            if not ours:
                continue
            if not top:
                problems.append(f"{where} imports {ours[0]} inside a function or class")
            # the most specific module each import names: a submodule when one exists
            edges = {t for t in ours if t in modules} or {targets[0]}
            for target in sorted(edges):
                if target != name:
                    graph.add_edge(name, target)
                source_layer = LAYERS[name.split(".")[0]]
                target_layer = LAYERS[target.split(".")[0]]
                if target_layer > source_layer:
                    problems.append(f"{where}: {name} (layer {source_layer}) imports upward "
                                    f"{target} (layer {target_layer})")
    return graph, problems


def test_imports_follow_the_layers_and_sit_at_the_top() -> None:
    _, problems = _graph()
    assert problems == []


def test_no_import_circles() -> None:
    graph, _ = _graph()
    assert list(nx.simple_cycles(graph)) == []
    assert graph.number_of_edges() > 50  # the scan sees the real graph


def test_checkpoints_folder_is_data_only() -> None:
    files = sorted(p.name for p in (ROOT / "checkpoints").iterdir())
    assert "rdbpfn.pt" in files and "rdbpfn.json" in files
    assert not [f for f in files if f.endswith(".py")]


_USER_FOLDERS = ("checkpoints", "eval", "training", "priors")
_FIT_AND_PREDICT = """
import numpy as np
import rdbpfn
from rdbpfn import RDBPFNClassifier
rng = np.random.default_rng(0)
X = rng.normal(size=(60, 4))
y = (X[:, 0] > 0).astype(int)
proba = RDBPFNClassifier(n_estimators=2).fit(X[:40], y[:40]).predict_proba(X[40:])
assert proba.shape == (20, 2), proba.shape
print(rdbpfn.__file__)
"""


def _user_directory(tmp_path: Path) -> Path:
    """A working directory whose own packages carry our developer packages' names."""
    work = tmp_path / "work"
    for name in _USER_FOLDERS:
        (work / name).mkdir(parents=True)
        (work / name / "__init__.py").write_text(
            f"raise ImportError('the user\\'s own {name} package was imported')\n"
        )
    return work


def _run(code: str, cwd: Path, pythonpath: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    env.pop("RDBPFN_CHECKPOINT", None)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_users_own_folders_change_nothing(tmp_path: Path) -> None:
    result = _run(_FIT_AND_PREDICT, _user_directory(tmp_path), pythonpath=None)
    assert result.returncode == 0, result.stderr[-2000:]


def test_wheel_holds_only_rdbpfn_with_weights_and_works_installed(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("rdbpfn", "checkpoints"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("rdbpfn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"rdbpfn"}
    assert {"rdbpfn/checkpoints/rdbpfn.pt", "rdbpfn/checkpoints/rdbpfn.json"} <= set(names)

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
         str(site), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    result = _run(_FIT_AND_PREDICT, _user_directory(tmp_path), pythonpath=str(site))
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(result.stdout.strip()).is_relative_to(site)  # the installed copy ran


def test_tests_mirror_the_packages() -> None:
    for package in LAYERS:
        tests = sorted((ROOT / "tests" / package).glob("test_*.py"))
        assert tests, f"tests/{package}/ has no tests"
