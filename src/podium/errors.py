"""Errors that users see: each names the file, row or key at fault and what to do."""


class PodiumInputError(ValueError):
    """Bad competition input or configuration, detected before any heavy work runs."""
