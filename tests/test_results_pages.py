"""The docs' results pages are rendered from the measurement files and are current."""

import subprocess
import sys

from conftest import ROOT


def test_results_pages_are_current():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "render_docs.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
