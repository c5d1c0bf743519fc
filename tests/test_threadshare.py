"""Per-session CPU shares: the split by hand, expiry of idle sessions, and torch's per-thread setting."""

import threading

import torch

from vitcore.threadshare import ThreadShare


def test_cores_are_split_among_active_sessions_and_idle_ones_expire():
    now = [0.0]
    share = ThreadShare(cores=8, window_s=60, clock=lambda: now[0])
    assert share.threads_for("a") == 8
    assert share.threads_for("b") == 4
    assert share.threads_for("c") == 2  # 8 // 3
    now[0] = 30.0
    assert share.threads_for("a") == 2
    now[0] = 80.0  # b and c were last seen at 0 s: gone; a (30 s) stays
    assert share.threads_for("a") == 1 + 7 and share.active() == 1
    many = ThreadShare(cores=2, clock=lambda: 0.0)
    assert [many.threads_for(str(i)) for i in range(4)] == [2, 1, 1, 1]  # never below one thread


def test_a_session_thread_setting_its_share_leaves_other_threads_counts_alone():
    torch.set_num_threads(2)
    assert torch.get_num_threads() == 2  # this thread has run torch code with its count (a session mid-run)
    seen = {}

    def session_run():
        share = ThreadShare(cores=2, clock=lambda: 0.0)
        share.threads_for("other")
        seen["applied"] = share.apply("me")
        seen["inside"] = torch.get_num_threads()

    t = threading.Thread(target=session_run)
    t.start()
    t.join()
    assert seen == {"applied": 1, "inside": 1}
    assert torch.get_num_threads() == 2  # the main thread (another session's run) keeps its own count


def test_a_closed_tab_stops_counting_at_once():
    connected = {"a", "b", "c"}
    share = ThreadShare(cores=6, clock=lambda: 0.0, is_connected=lambda s: s in connected)
    assert [share.threads_for(s) for s in ("a", "b", "c")] == [6, 3, 2]
    connected.discard("c")  # c's browser tab closed: its session is no longer active on the server
    assert share.threads_for("a") == 3 and share.active() == 2  # not after the 120 s window
    connected.discard("a")  # a session asking for its share is running, whatever the check says of it
    assert share.threads_for("a") == 3
