"""The README stays short and its Python example runs as printed (the API reference shows the same code)."""

import re
import subprocess
import sys

import pytest
from conftest import ROOT

README = (ROOT / "README.md").read_text()


def _python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_readme_is_short_and_has_the_two_commands():
    assert len(README.splitlines()) <= 200
    assert "python -m streamlit run serve.py" in README
    test_command = (
        "python3 -m pip install -r requirements-dev.txt && "
        "python3 -m pip install --no-deps -r requirements-reference.txt && python3 -m pytest -q"
    )
    assert test_command in README
    assert "python3 -m pytest -q" in (ROOT / ".ci" / "run").read_text()


def test_every_local_link_of_the_readme_exists():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith("http")]
    assert local and [link for link in local if not (ROOT / link).exists()] == []


@pytest.mark.slow
def test_the_python_example_runs_as_printed():
    code = _python_block(README)
    assert code == _python_block((ROOT / "docs" / "reference" / "api.md").read_text())
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    # keep 0.5 of the shipped model's 216 components
    assert re.fullmatch(r"kept 108 of 216 components; \[(\d+, ){8}\d+\] heads per layer\n", done.stdout), done.stdout
