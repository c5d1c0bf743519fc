"""No measured figure in a code comment or docstring: they link to the results pages instead (numbers go stale)."""

import ast
import io
import re
import tokenize

from conftest import ROOT

# "measured ... <number>", and in the product's code any timing, rate or share with a unit (not "batch-64 img/s"):
# what a benchmark, not the code, decides. Tests may describe their own hand-made inputs with units
# ("an exact line: 2 ms + ...").
MEASURED = re.compile(r"\bmeasured\b[^.;]*?\b\d+\.\d+")
FIGURE = re.compile(
    MEASURED.pattern + r"|(?<!-)\b\d+(\.\d+)?\s?(ms|img/s|images/s|seconds|minutes)\b|\b\d+\.\d+\s?(s|x|%)(\W|$)"
)
FOLDERS = {"vitcore": FIGURE, "ui": FIGURE, "pages": FIGURE, "benchmarks": FIGURE, "tools": FIGURE, "tests": MEASURED}


def _comments(path):
    """Every comment and docstring of a file, with its line."""
    with open(path, "rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc


def test_no_comment_quotes_a_measured_figure():
    found = []
    for folder, pattern in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, text in _comments(path):
                if pattern.search(text):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text.strip()}")
    assert not found, "comments quoting figures (link docs/results/ instead):\n" + "\n".join(found)


def test_the_scan_finds_a_quoted_figure():
    source = "x = 1  # measured 0.828 on the 30-epoch model\ny = 2  # batch-1 took 3.84 ms\nz = 3  # 64 MiB cap\n"
    tokens = [t.string for t in tokenize.tokenize(io.BytesIO(source.encode()).readline) if t.type == tokenize.COMMENT]
    assert [bool(FIGURE.search(t)) for t in tokens] == [True, True, False]
