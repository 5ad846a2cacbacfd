"""Errors the runtime raises. Each message says what is wrong and where."""

from __future__ import annotations


class IntentKitError(Exception):
    """Base class of every error this kit raises on purpose."""


class BundleError(IntentKitError):
    """A bundle or one of its files is missing, corrupt, or of an unsupported format."""


class InputError(IntentKitError, ValueError):
    """The text given to classify cannot be classified (wrong type, too long)."""
