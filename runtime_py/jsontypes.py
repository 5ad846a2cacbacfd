"""JSON value checks shared by the bundle readers, matching what the JavaScript runtime can tell apart.

JSON has one number type: ``JSON.parse`` reads ``5.0`` as ``5``, so a whole-valued float counts
as an integer here too, and a boolean never counts as a number (Python's ``True == 1`` would).
"""

from __future__ import annotations

import math
from typing import Any


def is_number(value: Any) -> bool:
    """A finite JSON number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    """A JSON integer: an int, or a float without a fraction (not a boolean)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_string_list(value: Any, non_empty_items: bool = False) -> bool:
    """A list of strings (each non-empty when `non_empty_items`)."""
    return isinstance(value, list) and all(isinstance(x, str) and (x or not non_empty_items) for x in value)
