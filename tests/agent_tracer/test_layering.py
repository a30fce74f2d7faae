"""The seams DESIGN.md and ARCHITECTURE.md draw, checked on the source: library code never imports a
CLI module, production code never imports `agent_tracer.testing`, and the capture side never
imports the training stack. Read by AST, so nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent_tracer", "trainer", "integrations")
CLI_MODULES = ("agent_tracer.cli", "agent_tracer.commands", "trainer.commands")


def modules() -> dict[str, Path]:
    """Dotted name → file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in the file (inside functions too), as dotted names;
    `from a import b` counts as both `a` and `a.b`, since b may be a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def test_the_walk_sees_the_cli_and_the_library():
    found = modules()
    assert {"agent_tracer.cli", "agent_tracer.commands.traces", "trainer.commands.train"} <= set(found)
    assert {"agent_tracer.console", "trainer.data.sft", "integrations.openai_chat"} <= set(found)
    assert "agent_tracer.console" in imported("trainer.data.sft", found["trainer.data.sft"])


def test_library_code_never_imports_a_cli_module():
    wrong = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if not within(name, CLI_MODULES)
        for target in sorted(imported(name, path))
        if within(target, CLI_MODULES)
    ]
    assert not wrong, "\n".join(wrong)


def test_production_code_never_imports_testing():
    wrong = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if not within(name, ("agent_tracer.testing",))
        for target in sorted(imported(name, path))
        if within(target, ("agent_tracer.testing",))
    ]
    assert not wrong, "\n".join(wrong)


HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "trainer")
"""What the capture side never imports: the training stack, and the trainer package that imports it."""


def test_the_capture_side_never_imports_the_training_stack():
    """Capture, store, proxy, formats and codecs install and start without the `train` extra. The
    commands may reach the trainer (the quickstart runs it), only from inside a function."""
    wrong = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if within(name, ("agent_tracer", "integrations"))
        and not within(name, ("agent_tracer.commands", "agent_tracer.testing"))
        for target in sorted(imported(name, path))
        if within(target, HEAVY)
    ]
    assert not wrong, "\n".join(wrong)
