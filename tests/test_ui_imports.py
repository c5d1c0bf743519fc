"""The app's Streamlit layer has no import cycle, and only one module of it touches Streamlit's private APIs."""

import ast

from conftest import ROOT

UI = ROOT / "ui"


def ui_imports(path) -> set[str]:
    """The ``ui`` modules a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ui."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "ui":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ui.")}
    return found


def test_the_ui_modules_import_one_another_without_a_cycle():
    graph = {p.stem: ui_imports(p) - {p.stem} for p in UI.glob("*.py") if p.stem != "__init__"}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, "import cycle: " + " -> ".join([*path[path.index(node) :], node])
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_the_cycle_check_finds_a_cycle(tmp_path):
    (tmp_path / "a.py").write_text("from ui.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from ui import a\n")
    assert ui_imports(tmp_path / "a.py") == {"b"} and ui_imports(tmp_path / "b.py") == {"a"}


def test_only_one_module_reaches_into_private_streamlit():
    private = ("streamlit.runtime",)
    users = []
    for path in [*UI.glob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py", ROOT / "serve.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in getattr(node, "names", [])]
            )
            if isinstance(node, (ast.Import, ast.ImportFrom)) and any(n.startswith(private) for n in names):
                users.append(path.relative_to(ROOT).as_posix())
    assert set(users) == {"ui/streamlit_private.py"}, users
