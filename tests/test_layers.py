"""veil's imports go one way (docs/architecture.md, "Layers"): no import circle among
its modules, counting imports inside functions too, and no module importing another's
private (``_``) names."""

from __future__ import annotations

import ast
from pathlib import Path

import veil

ROOT = Path(veil.__file__).parent


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def imports(name: str, tree: ast.Module, known: set[str]) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every veil module ``name`` imports, anywhere in it."""
    found: list[tuple[str, list[str]]] = []
    package = (
        name
        if name in {"veil", "veil.api", "veil.storage", "veil.video"}
        else name.rsplit(".", 1)[0]
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names = [a.name for a in node.names]
            if base in known:
                found.append((base, [n for n in names if f"{base}.{n}" not in known]))
            found += [(f"{base}.{n}", []) for n in names if f"{base}.{n}" in known]
    return [(target, names) for target, names in found if target != name]


def test_no_import_circle():
    trees = modules()
    graph = {name: {t for t, _ in imports(name, tree, set(trees))} for name, tree in trees.items()}
    circles = []
    for start in graph:
        # Every module reachable from ``start``; a path back to it is a circle.
        seen, todo = set(), [(start, [start])]
        while todo:
            name, path = todo.pop()
            for target in graph[name]:
                if target == start:
                    circles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    todo.append((target, [*path, target]))
    assert not circles, "\n".join(sorted(set(circles))[:10])


def test_no_private_name_is_imported_across_modules():
    trees = modules()
    private = [
        f"{name} imports {target}.{n}"
        for name, tree in trees.items()
        for target, names in imports(name, tree, set(trees))
        for n in names
        if n.startswith("_")
    ]
    assert not private, private
