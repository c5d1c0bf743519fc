"""The Pareto frontier of (latency, error) points."""

from __future__ import annotations


def pareto_frontier(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (latency, error), both minimised, sorted by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    frontier, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            frontier.append(i)
            best = points[i][1]
    return frontier
