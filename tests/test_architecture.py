"""The layout rules of docs/ARCHITECTURE.md, checked on the source itself.

* Imports only point down the layer table below (function-level imports included): a module may
  import its own package and packages of a lower layer, never a peer or a higher one.
* No import cycle between modules.
* No module over ~500 lines without a reason written in its docstring ("Long because: ...").
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vidcls"

# Layer of each top-level unit of the package (a subpackage or a top-level module). A unit may
# import units of a strictly lower layer and itself. Keep in step with docs/ARCHITECTURE.md.
LAYERS = {
    "ops": 0, "viz": 0, "resources": 0,
    "data": 1,
    "models": 2,
    "engine": 3, "info": 3,
    "convert": 4, "export": 4,
    "zoo": 5,
    "inference": 6,
    "serve": 7,
    "repro": 7,
    "demo": 8,
    "cli": 9,
    # the public facade and the re-exports of moved modules: nothing inside vidcls imports them
    "__init__": 10, "__main__": 10, "streaming": 10, "predict": 10, "stream": 10,
    "explain": 10,
}
FACADE = 10
MAX_LINES = 500


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every vidcls import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from vidcls.models import tsn`` names a module, not only a package
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
            found.append((node.lineno, module))
    return [(line, m) for line, m in found if m == "vidcls" or m.startswith("vidcls.")]


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The longest existing module prefix of an imported dotted name."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in modules:
            return candidate
    return None


def _unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _graph() -> dict[str, set[tuple[int, str]]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for line, target in _imports(path):
            resolved = _resolve(target, modules)
            if resolved and resolved != name:
                edges.add((line, resolved))
        graph[name] = edges
    return graph


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in _modules()}
    missing = sorted(units - set(LAYERS))
    assert not missing, f"add these to LAYERS (and docs/ARCHITECTURE.md): {missing}"


def test_imports_point_down():
    bad = []
    for name, edges in _graph().items():
        src_unit = _unit(name)
        for line, target in sorted(edges):
            dst_unit = _unit(target)
            if target == "vidcls" and LAYERS[src_unit] != FACADE:
                bad.append(f"{name}:{line} imports the vidcls facade")
                continue
            if dst_unit == src_unit:
                continue
            if LAYERS[dst_unit] == FACADE and LAYERS[src_unit] != FACADE:
                bad.append(f"{name}:{line} imports {target}, a re-export kept for users")
            elif LAYERS[dst_unit] >= LAYERS[src_unit] and LAYERS[src_unit] != FACADE:
                bad.append(f"{name}:{line} imports {target} (layer {LAYERS[dst_unit]} "
                           f"{dst_unit} from layer {LAYERS[src_unit]} {src_unit})")
    assert not bad, "imports that do not point down:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {n: {t for _, t in e} for n, e in _graph().items()}
    # the facade imports lazily and nothing imports it; leave it out
    graph = {n: {t for t in e if t != "vidcls"} for n, e in graph.items() if n != "vidcls"}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_long_modules_say_why():
    long = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and "Long because:" not in doc:
            long.append(f"{name} ({lines} lines)")
    assert not long, ("modules over ~500 lines need a reason in their docstring "
                      "('Long because: ...') or a split: " + ", ".join(long))
