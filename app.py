"""ViT circuit pruning: find the heads and MLP chunks a class needs, prune the rest, measure it."""

import streamlit as st

st.set_page_config(page_title="ViT circuit pruning", layout="wide")

from pages.common import apply_thread_share, sidebar, trace_event  # noqa: E402

pages = [
    st.Page("pages/model.py", title="Model", default=True),
    st.Page("pages/circuits.py", title="Circuits"),
    st.Page("pages/graph.py", title="Circuit graph"),
    st.Page("pages/prune.py", title="Prune"),
    st.Page("pages/compare.py", title="Compare"),
    st.Page("pages/atlas.py", title="Atlas"),
    st.Page("pages/export.py", title="Export"),
]
page = st.navigation(pages)
apply_thread_share()
trace_event("run", page=page.title)
for problem in sidebar():
    st.error(problem)
trace_event("sidebar")
page.run()
trace_event("done", page=page.title)
