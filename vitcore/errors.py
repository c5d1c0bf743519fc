"""The base of every error vitcore raises for bad user input."""


class VitcoreError(ValueError):
    """Bad input (data, checkpoint, image, config or argument); the message names the problem."""
