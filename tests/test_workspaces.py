"""A session's work per model: kept while another model is in use, back when the session returns to it."""

import pytest
import torch

from vitcore.session import InWorkspace, Workspace, Workspaces


def test_workspaces_come_back_and_stay_bounded():
    spaces = Workspaces(limit=2)
    a = spaces.open(("sha-a", "bundled"))
    a.results.append("a result")
    a.keep = torch.tensor([1.0, 0.0])
    b = spaces.open(("sha-b", "bundled"))
    assert b is not a and b.results == [] and b.keep is None  # a new model starts empty
    assert spaces.open(("sha-a", "bundled")) is a and a.results == ["a result"]  # and the old one comes back
    spaces.open(("sha-a", "other data"))  # a third: the least recently used (sha-b) is dropped
    assert len(spaces) == 2 and ("sha-b", "bundled") not in spaces and ("sha-a", "bundled") in spaces
    assert spaces.open(("sha-b", "bundled")) is not b  # dropped means new
    with pytest.raises(ValueError, match="limit"):
        Workspaces(limit=0)


def test_in_workspace_attributes_follow_the_current_workspace():
    class Holder:
        results = InWorkspace()

        def __init__(self):
            self.work = Workspace()

    holder = Holder()
    first = holder.work
    holder.results = ["x"]
    holder.work = Workspace()
    assert holder.results == [] and first.results == ["x"]
    holder.work = first
    assert holder.results == ["x"]


@pytest.mark.slow
def test_a_model_switch_and_back_restores_the_sessions_work():
    from test_app import new_app, run_eap

    from ui.sidebar import SHORTCUT_MODEL

    at = run_eap(new_app())
    state = at.session_state["app"]
    result, keep = state.results[-1], state.keep_mask().clone()
    assert int(keep.sum()) == len(result.kept) < len(keep)
    at.session_state["model_source"] = SHORTCUT_MODEL
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    state = at.session_state["app"]
    assert state.ckpt.sha256 != result.model_sha256 and state.results == []  # the planted model's own, empty
    assert int(state.keep_mask().sum()) == len(keep)
    assert state.classes == ["n01443537"]  # the chosen classes stay: both models know them
    at.session_state["model_source"] = "Shipped model"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    state = at.session_state["app"]
    assert [r.to_json() for r in state.results] == [result.to_json()]
    assert torch.equal(state.keep_mask(), keep)
