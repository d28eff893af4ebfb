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


MAX_REPORTED = 20
"""Problems listed in one error; the rest are counted."""


class Problems:
    """Collects validation problems so that they are reported together, in one round."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self, what: str) -> None:
        if not self.items:
            return
        shown = "\n  - ".join(self.items[:MAX_REPORTED])
        more = len(self.items) - MAX_REPORTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise PodiumInputError(f"{what}: {len(self.items)} problem(s)\n  - {shown}{tail}")
