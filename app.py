"""ViT circuit pruning: find the heads and MLP chunks a class needs, prune the rest, measure it."""

import streamlit as st

st.set_page_config(page_title="ViT circuit pruning", layout="wide")

from ui.shell import run_app  # noqa: E402

run_app()
