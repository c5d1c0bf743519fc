"""A session's work, kept apart from any user interface (the app's ``ui/`` adapts it to Streamlit)."""

from .workspace import InWorkspace, Workspace, Workspaces

__all__ = ["InWorkspace", "Workspace", "Workspaces"]
