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


def imported_modules(source: str, path: Path) -> list[tuple[str, int]]:
    """(dotted module name, line) of every import in `source`, the text of `path`."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = _package_of(path)
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module:
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
