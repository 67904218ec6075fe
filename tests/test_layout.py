"""The package's shape (README "Layout"): no import cycle among the course's modules, lazy imports included; the
course tooling apart from the lessons; the self-check a chapter calls imports no notebook tooling."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "utils"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every course module ``path`` imports, wherever the import statement sits (a function-level import closes a
    cycle as surely as one at the top)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from . import plotting` imports the submodule; `from .data import X` imports utils.data itself
            targets = ([base] if node.module else []) + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, known) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_course_modules():
    graph = import_graph()
    assert "utils.speed" in graph and "utils.data" in graph["utils.speed"], "the graph should see relative imports"
    found = cycles(graph)
    assert not found, f"import cycles (a module that imports, even lazily, one that imports it back): {found}"


def test_lessons_never_import_the_course_tooling():
    graph = import_graph()
    offenders = {m: sorted(t for t in targets if t.startswith("utils.course"))
                 for m, targets in graph.items() if not m.startswith("utils.course")}
    assert not {m: t for m, t in offenders.items() if t}, "only `make` targets live in utils.course"
    for chapter in sorted((ROOT / "chapters").glob("*.py")):
        known = {"utils.course", *{m for m in graph if m.startswith("utils.course.")}}
        assert not imported_modules(chapter, known), f"{chapter.name} imports course tooling"


def test_the_self_check_a_chapter_calls_imports_no_notebook_tooling():
    code = ("import sys, utils.exercises; heavy = sorted({'jupytext', 'nbformat', 'nbclient', 'nbconvert'} & "
            "set(sys.modules)); print(heavy); sys.exit(bool(heavy))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"utils.exercises pulled in {done.stdout.strip()} {done.stderr[-500:]}"
