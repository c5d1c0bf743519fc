"""Server-wide computation for the app: one scheduler shared by every session, and the figure tasks it runs."""

from .scheduler import Dropped, Scheduler

__all__ = ["Dropped", "Scheduler"]
