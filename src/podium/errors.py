"""Errors that users see: each names the file, row or key at fault and what to do."""

import difflib
from collections.abc import Iterable


class PodiumInputError(ValueError):
    """Bad competition input or configuration, detected before any heavy work runs."""


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.3) -> str:
    """" Did you mean a, b?" with up to three known names close to a misspelt one, or "":
    the hint every unknown-name error in the config carries."""
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=cutoff)
    return f" Did you mean {', '.join(close)}?" if close else ""
