"""Every file path a code comment, a docstring or a doc page names exists (pointers go stale when files move)."""

import re

from conftest import ROOT

# a path into the tree: a top-level folder, then path segments, ending in a file name with an extension
PATH = re.compile(
    r"(?<![\w/.-])((?:docs|assets|vitcore|benchmarks|tools|tests|ui|pages)/[\w./-]*\.(?:py|md|json|txt|sh|toml|csv))"
)
# examples of files a reader would write (a new method's module, a command line in a test)
EXAMPLES = {"vitcore/circuits/my_method.py", "benchmarks/x.py"}


def named_paths(text: str) -> set[str]:
    """The paths ``text`` names, less placeholders (``NAME``, ``METHOD``) and what a captured command output says
    it wrote at the time ("wrote docs/...")."""
    return {
        m.group(1).rstrip(".")
        for m in PATH.finditer(text)
        if not re.search(r"[A-Z]{3,}", m.group(1)) and not text[: m.start()].endswith("wrote ")
    }


def test_every_named_path_exists():
    sources = [
        *ROOT.glob("*.md"),
        *(ROOT / "docs").rglob("*.md"),
        *(
            p
            for folder in ("vitcore", "ui", "pages", "benchmarks", "tools", "tests")
            for p in (ROOT / folder).rglob("*.py")
        ),
        ROOT / "app.py",
        ROOT / "serve.py",
    ]
    missing = []
    for source in sources:
        for path in sorted(named_paths(source.read_text())):
            if path in EXAMPLES:
                continue
            if not (ROOT / path).exists():
                missing.append(f"{source.relative_to(ROOT)} names {path}")
    assert not missing, "\n".join(missing)


def test_the_scan_finds_paths():
    text = (
        "see docs/results/methods.md, (docs/measurements/sweep.json) and vitcore/circuits/exact.py; "
        "docs/measurements/NAME.json is a placeholder; wrote docs/old.csv"
    )
    assert named_paths(text) == {"docs/results/methods.md", "docs/measurements/sweep.json", "vitcore/circuits/exact.py"}
