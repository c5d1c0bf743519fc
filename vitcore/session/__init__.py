"""A session's work, kept apart from any user interface (the app's ``ui/`` adapts it to Streamlit)."""

from .store import SessionStore, StoreUnavailable, TokenError, new_token
from .workspace import InWorkspace, Workspace, Workspaces

__all__ = ["InWorkspace", "SessionStore", "StoreUnavailable", "TokenError", "Workspace", "Workspaces", "new_token"]
