"""Progress reporting and cancellation hooks for long core operations.

Core functions accept two optional plain callables, so they need no QGIS:
``progress(fraction, message)`` with ``fraction`` in [0, 1], and
``cancel() -> bool``, polled between steps (and windows).
"""

__all__ = ["Canceled", "step"]


class Canceled(RuntimeError):
    """The caller's ``cancel`` callback asked to stop; nothing was produced."""


def step(progress, cancel, fraction, message=None):
    """Raise :class:`Canceled` if asked to, else report ``fraction`` done."""
    if cancel is not None and cancel():
        raise Canceled("canceled by the user")
    if progress is not None:
        progress(fraction, message)
