"""Every import a docstring shows works, and every name an `__all__` lists can be imported.

A docstring's code example (an indented line, or one after `>>>`) that says `from X import a, b`
or `import X` is what a newcomer pastes first; when it raises ImportError the package's front door
is wrong. The docstrings of every module, class, function and attribute under `agent_tracer/`,
`integrations/` and `trainer/` are read with `ast` (nothing is imported to find them), and each
documented import is then run. The same goes for each name in a module's `__all__`, which is
what `from X import *` and the reader of `__init__.py` both rely on.

Nothing is skipped unless `CANNOT_IMPORT` names it with its reason; the extras (`train`:
torch, transformers, TRL) are installed where the suite runs.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent_tracer", "integrations", "trainer")

CANNOT_IMPORT: dict[str, str] = {}
"""Module name → why it cannot be imported where the tests run; such cases are skipped, saying so."""

_FROM = re.compile(r"^from\s+([\w.]+)\s+import\s+\(?([\w\s,]+?)\)?\s*$")
_IMPORT = re.compile(r"^import\s+([\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*)\s*$")


def _source_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _docstrings(tree: ast.AST) -> list[ast.Constant]:
    """Every string that stands as a statement: module, class, function and attribute docstrings."""
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    ]


def _code_lines(doc: str) -> list[tuple[int, str]]:
    """(line offset, code) of the docstring's example lines: indented below its prose, or doctest."""
    lines = inspect.cleandoc(doc).splitlines()
    found = []
    for offset, line in enumerate(lines):
        code = line.strip()
        if code.startswith(">>> "):
            code = code[4:].strip()
        elif offset == 0 or not line[:1].isspace():
            continue  # prose: a sentence may well begin with "import" or "from"
        found.append((offset, code.split("#", 1)[0].strip()))
    return found


def documented_imports() -> list[tuple[str, str, tuple[str, ...]]]:
    """(where, module, names) for each import statement in a docstring's code; names empty for `import X`."""
    cases = []
    for path in _source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for string in _docstrings(tree):
            for offset, code in _code_lines(string.value):
                where = f"{path.relative_to(ROOT)}:{string.lineno + offset}: {code}"
                if match := _FROM.match(code):
                    names = tuple(name.split(" as ")[0].strip() for name in match[2].split(",") if name.strip())
                    cases.append((where, match[1], names))
                elif match := _IMPORT.match(code):
                    for module in match[1].split(","):
                        cases.append((where, module.split(" as ")[0].strip(), ()))
    return cases


def modules_with_all() -> list[str]:
    """Every package, and every module that assigns `__all__` (found without importing anything)."""
    names = []
    for path in _source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        assigns_all = any(
            isinstance(target, ast.Name) and target.id == "__all__"
            for node in tree.body
            for target in (node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)])
        )
        if path.name == "__init__.py" or assigns_all:
            names.append(_module_name(path))
    return names


DOCUMENTED = documented_imports()


def _import(module: str):
    if module in CANNOT_IMPORT:
        pytest.skip(f"{module} cannot be imported here: {CANNOT_IMPORT[module]}")
    return importlib.import_module(module)


def test_the_scan_finds_the_examples() -> None:
    """A guard on the parser: the examples the package docstrings are known to hold are found."""
    found = {(module, names) for _, module, names in DOCUMENTED}
    assert ("agent_tracer", ()) in found
    assert ("agent_tracer.store", ("TraceStore",)) in found
    assert ("trainer.data", ("Selection", "SFTConfig", "build_sft")) in found
    assert ("trainer.train.sft", ("train_sft",)) in found


def test_prose_is_not_taken_for_code() -> None:
    doc = "Title.\n\nimport goes through this package.\n\n    from a.b import c, d as e  # two\n    >>> import x.y\n"
    assert _code_lines(doc) == [(4, "from a.b import c, d as e"), (5, "import x.y")]


@pytest.mark.parametrize(("where", "module", "names"), DOCUMENTED, ids=[case[0] for case in DOCUMENTED])
def test_documented_import_works(where: str, module: str, names: tuple[str, ...]) -> None:
    _import(module)
    for name in names:  # as a user writes it, so lazy exports and submodules count too
        try:
            exec(f"from {module} import {name}", {})
        except ImportError as exc:
            pytest.fail(f"{where}: {exc}")


@pytest.mark.parametrize("module", modules_with_all())
def test_every_name_in_all_imports(module: str) -> None:
    imported = _import(module)
    listed = getattr(imported, "__all__", None)
    if listed is None:
        return  # a package that declares no public names (trainer.commands, trainer.train, ...)
    assert len(set(listed)) == len(listed), f"{module}.__all__ lists a name twice"
    for name in listed:
        namespace: dict[str, object] = {}
        exec(f"from {module} import {name}", namespace)  # the statement a user writes, lazy exports included
        assert name in namespace
