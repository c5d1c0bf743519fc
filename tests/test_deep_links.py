"""Every page opens by its own link on a freshly started server, and the navigation lists only pages."""

from pathlib import Path

import pytest
from conftest import ROOT

from benchmarks.appserver import app_server

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (.ci/run installs it)"),
]


def page_titles() -> dict[str, str]:
    """Each page file's ``st.title``, read from its source."""
    titles = {}
    for p in (ROOT / "pages").glob("*.py"):
        line = next(l for l in p.read_text().splitlines() if l.startswith("st.title("))
        titles[p.stem] = line.split('"')[1]
    return titles


@pytest.mark.parametrize("script", ["serve.py", "app.py"])
@pytest.mark.parametrize("page", sorted(page_titles()))
def test_a_page_link_opened_first_on_a_fresh_server_opens_that_page(page, script):
    from playwright.sync_api import sync_playwright

    title = page_titles()[page]
    with app_server(ROOT, timeout_s=120, script=script) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(120_000)
            tab.goto(f"{url}/{page}")
            tab.locator("h1", has_text=title).first.wait_for()
            tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
            assert tab.locator('[data-testid="stException"]').count() == 0, tab.locator("body").inner_text()[:2000]
            nav = tab.locator('[data-testid="stSidebarNav"] a')
            listed = sorted(nav.nth(i).get_attribute("href").rstrip("/").rsplit("/", 1)[-1] for i in range(nav.count()))
            # every page is listed by its own link (the default page at the root), and no helper module is
            assert len(listed) == len(page_titles()) and set(listed) - {"", str(url.rsplit("/", 1)[-1])} <= set(
                page_titles()
            ), listed
            path = tab.url.split("?")[0]  # the query holds the session's link (ui/persist.py)
            assert path.rstrip("/").endswith(page) or page == "model", tab.url
            assert "session=" in tab.url
        finally:
            browser.close()
