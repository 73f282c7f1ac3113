"""The static import graph of some packages: every ``import`` / ``from ... import`` statement anywhere in a file
(module level, inside functions, under ``TYPE_CHECKING``), resolved to the file it names."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    """``app/viewer/gui.py`` -> ``app.viewer.gui``; ``app/viewer/__init__.py`` -> ``app.viewer``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass
class ImportGraph:
    """``modules``: name -> file of every module under the packages; ``imports``: ``(importer, target, names)`` per
    statement target, ``target`` the most specific module of ours it names (or the external name as written),
    ``names`` the names taken from it (``from target import a, b``)."""

    modules: dict[str, Path] = field(default_factory=dict)
    imports: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    @classmethod
    def of(cls, root: Path, packages: tuple[str, ...]) -> ImportGraph:
        graph = cls()
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                graph.modules[module_name(root, path)] = path
        for module, path in graph.modules.items():
            is_package = path.name == "__init__.py"
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        graph.imports.append((module, graph._resolve(alias.name), ()))
                elif isinstance(node, ast.ImportFrom):
                    base = graph._absolute(module, is_package, node.module, node.level)
                    plain = []
                    for alias in node.names:
                        submodule = f"{base}.{alias.name}"
                        if submodule in graph.modules:
                            graph.imports.append((module, submodule, ()))
                        else:
                            plain.append(alias.name)
                    if plain:
                        graph.imports.append((module, graph._resolve(base), tuple(plain)))
        return graph

    @staticmethod
    def _absolute(module: str, is_package: bool, name: str | None, level: int) -> str:
        if level == 0:
            return name or ""
        parts = module.split(".")
        anchor = parts if is_package else parts[:-1]
        anchor = anchor[: len(anchor) - (level - 1)]
        return ".".join([*anchor, name] if name else anchor)

    def _resolve(self, name: str) -> str:
        """The longest prefix of ``name`` that is one of our modules, else ``name`` itself."""
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in self.modules:
                return candidate
        return name

    def edges(self) -> dict[str, set[str]]:
        """importer -> the modules of ours it imports (self-imports dropped)."""
        out: dict[str, set[str]] = {m: set() for m in self.modules}
        for module, target, _ in self.imports:
            if target in self.modules and target != module:
                out[module].add(target)
        return out


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted; sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(components)
