"""The modules a source file imports, read from its syntax tree (for the wall tests).

Every `import` and `from ... import` anywhere in the file counts, inside functions too;
relative imports are resolved against the file's package, and `importlib.import_module` /
`__import__` calls with a literal name count as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _package_of(path: Path) -> list[str]:
    """The dotted package a file belongs to, as parts (`__init__.py`: its own package)."""
    parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    return parts[:-1]


def _literal_call(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imported_modules(source: str, path: Path, names: bool = False) -> list[tuple[str, int]]:
    """(dotted module name, line) of every import in `source`, the text of `path`.

    With `names`, `from package import name` gives `package.name` (the submodule when
    `name` is one; callers trim it to the module that exists), not `package`.
    """
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = _package_of(path)
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module and names:
                found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
            elif node.module:
                found.append((module, node.lineno))
            else:  # from . import name: each name may be a module
                found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and (name := _literal_call(node)):
            found.append((name, node.lineno))
    return found


def importers_of(package: str, folder: Path) -> dict[str, list[str]]:
    """Files under `folder` (relative to the repository) that import `package` or a module
    of it, each with the offending `module:line`s."""
    out: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        hits = [
            f"{module}:{line}"
            for module, line in imported_modules(path.read_text(), path)
            if module == package or module.startswith(package + ".")
        ]
        if hits:
            out[path.relative_to(ROOT).as_posix()] = hits
    return out


def _module_name(path: Path) -> str:
    parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports (anywhere in the file, inside
    functions too). An imported name that is not a module (`from pipeline.models import
    output_kind`) counts as its module; a module importing itself is left out."""
    modules = {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for imported, _ in imported_modules(path.read_text(), path, names=True):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `graph`: each strongly connected group of more than one
    module (Tarjan), sorted, so a circle reads the same however it is found."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (top := stack.pop()) != node:
                group.append(top)
            group.append(node)
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)
