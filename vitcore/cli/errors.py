"""The command line's own error type."""

from ..errors import VitcoreError


class UserError(VitcoreError):
    """A bad command-line argument."""
