"""Quasi-interactive iteration: a warm :class:`Session` whose workers outlive each run, results to
look at and plot in a notebook, runs in the background with their partial results."""

from highrate.interactive.session import RunCancelled, RunHandle, Session, SessionResult

__all__ = ["RunCancelled", "RunHandle", "Session", "SessionResult"]
