"""Sessions' work kept on disk: round trips, bad tokens, caps, expiry, and a damaged or unwritable database."""

import json
import sqlite3
import time

import pytest
import torch

from vitcore.circuits.result import CircuitResult
from vitcore.session import SessionStore, StoreUnavailable, TokenError, Workspace, Workspaces, new_token
from vitcore.session.snapshot import FineTuneSettings, session_from_json, session_to_json


@pytest.fixture
def store(tmp_path):
    s = SessionStore(tmp_path / "sessions.sqlite")
    yield s
    s.close()


def a_result(scores=(0.5, -0.25, 0.125)) -> CircuitResult:
    return CircuitResult(
        "eap", "logit_diff", "mean", ["n01443537"], 10, 0, ["L0.H0", "L0.H1", "L0.C0"], list(scores), ["L0.H0"]
    )


def test_work_saved_under_a_token_comes_back_from_another_store_on_the_same_file(store, tmp_path):
    token = new_token()
    store.save(token, {"classes": ["n01443537"], "n": 3})
    again = SessionStore(tmp_path / "sessions.sqlite")  # a restarted server
    assert again.load(token) == {"classes": ["n01443537"], "n": 3}
    store.save(token, {"classes": []})  # saved again: replaced, not added
    assert again.load(token) == {"classes": []} and len(again) == 1


def test_tokens_are_random_and_url_safe():
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) == 22 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


@pytest.mark.parametrize(
    "token, why",
    [("", "malformed"), ("abc", "malformed"), ("../" * 8, "malformed"), ("x" * 22 + "'", "malformed")],
)
def test_a_malformed_token_is_refused_in_one_line(store, token, why):
    with pytest.raises(TokenError, match=why) as e:
        store.load(token)
    assert "\n" not in str(e.value)


def test_an_unknown_token_reads_nothing_of_anyone_else(store):
    store.save(new_token(), {"secret": "another session's work"})
    with pytest.raises(TokenError, match="unknown"):
        store.load(new_token())


def test_an_expired_session_is_refused_and_dropped(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite", ttl_s=0.2)
    token = new_token()
    store.save(token, {"a": 1})
    time.sleep(0.3)
    with pytest.raises(TokenError, match="expired"):
        store.load(token)
    assert len(store) == 0


def test_the_least_recently_used_sessions_beyond_the_cap_are_dropped(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite", max_sessions=2)
    first, second, third = new_token(), new_token(), new_token()
    for token in (first, second):
        store.save(token, {"t": token})
        time.sleep(0.01)
    store.load(first)  # a visit: first is now more recent than second
    time.sleep(0.01)
    store.save(third, {"t": third})
    assert len(store) == 2
    assert store.load(first) == {"t": first} and store.load(third) == {"t": third}
    with pytest.raises(TokenError, match="unknown"):
        store.load(second)


def test_work_over_the_size_cap_is_refused_and_a_planted_large_row_is_not_read(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite", max_bytes=1000)
    with pytest.raises(StoreUnavailable, match="over the 1,000 bytes kept per session"):
        store.save(new_token(), {"x": "y" * 2000})
    token = new_token()
    with sqlite3.connect(tmp_path / "s.sqlite") as db:  # written by someone else, around save()
        db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (token, time.time(), json.dumps({"x": "y" * 5000})))
    with pytest.raises(TokenError, match="larger than a session may keep"):
        store.load(token)


def test_saved_json_that_is_not_an_object_or_nests_too_deeply_is_refused(store, tmp_path):
    flat, deep = new_token(), new_token()
    with sqlite3.connect(tmp_path / "sessions.sqlite") as db:
        db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (flat, time.time(), "[1, 2]"))
        db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (deep, time.time(), "[" * 100_000 + "]" * 100_000))
    for token in (flat, deep):
        with pytest.raises(TokenError, match="cannot be read"):
            store.load(token)


def test_a_damaged_or_unwritable_database_is_one_line(tmp_path):
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"not a database at all " * 100)
    with pytest.raises(StoreUnavailable, match="damaged.sqlite") as e:
        SessionStore(damaged)
    assert "\n" not in str(e.value)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match="cannot keep sessions' work there"):
        SessionStore(blocker / "sessions.sqlite")  # its folder would be a file


def test_a_sessions_work_round_trips_through_json(tmp_path):
    workspaces = Workspaces()
    work = workspaces.open(("sha-a", "bundled"))
    work.keep = torch.tensor([1.0, 0.0, 1.0])
    work.results += [a_result(), a_result((1.0, 2.0, 3.0))]
    work.active_result = 0
    work.fine_tune_settings.append(FineTuneSettings((1, 0, 1), 40, 1e-4, True, False))
    workspaces.open(("sha-b", "/data/folder"))  # a second model: an empty workspace
    text = json.dumps(session_to_json({"classes": ["n01443537"]}, workspaces.items()))
    settings, back = session_from_json(json.loads(text))
    assert settings == {"classes": ["n01443537"]}
    assert [k for k, _ in back] == [("sha-a", "bundled"), ("sha-b", "/data/folder")]
    restored: Workspace = back[0][1]
    assert torch.equal(restored.keep, work.keep)
    assert [r.scores for r in restored.results] == [r.scores for r in work.results]
    assert restored.results[0] == work.results[0] and restored.active_result == 0
    assert restored.fine_tune_settings == work.fine_tune_settings
    assert back[1][1].keep is None and back[1][1].results == []


def test_saved_work_that_does_not_fit_is_left_out_field_by_field():
    good = json.loads(a_result().to_json())
    saved = {
        "version": 1,
        "settings": "not a dict",
        "workspaces": [
            {"model": "sha", "data": "bundled", "keep": [1, 0, 7], "results": ["{}", json.dumps(good), 3]},
            {"model": 5, "data": "bundled"},  # no usable key: dropped
            {
                "model": "sha2",
                "data": "bundled",
                "active_result": 9,
                "fine_tunes": [{"keep": [1], "steps": -1, "lr": 1e-4}, {"keep": [1], "steps": 5, "lr": float("nan")}],
            },
        ],
    }
    settings, back = session_from_json(saved)
    assert settings == {} and len(back) == 2
    (_, first), (_, second) = back
    assert first.keep is None  # 7 is no 0/1
    assert len(first.results) == 1 and first.results[0].scores == good["scores"]
    assert second.active_result is None and second.fine_tune_settings == []
    assert session_from_json({"version": 99}) == ({}, [])
