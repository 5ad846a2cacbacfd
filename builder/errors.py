"""Errors the builder reports to the user as one clear line (no stack trace)."""

from __future__ import annotations

from runtime_py.errors import IntentKitError


class BuildError(IntentKitError):
    """Bad input to a build step: a file, a field, an option. The message names where."""
