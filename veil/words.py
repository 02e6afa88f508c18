"""Numbers in plain words, as the console and the CLI say them."""

from __future__ import annotations


def counted(number: int | None, thing: str, things: str | None = None) -> str:
    """``1 face``, ``2 faces``, ``0 faces``; ``things``: the plural where it is not
    ``thing + "s"``. A number not known (None) is said as ``? faces``."""
    if number is None:
        return f"? {things or thing + 's'}"
    return f"{number:,} {thing if number == 1 else things or thing + 's'}"
