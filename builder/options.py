"""Option dataclasses filled from names: the command line's arguments, or a recipe a bundle recorded."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def known_fields(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `values` named like fields of the dataclass `cls`; lists back to tuples (as
    JSON and argparse's ``append`` give them)."""
    names = {f.name for f in fields(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}


def from_args(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """`cls` from the arguments whose ``dest`` names one of its fields, then `given` (which wins);
    an argument left unset (None) keeps the field's default."""
    values = {k: v for k, v in known_fields(cls, vars(args)).items() if v is not None}
    return cls(**{**values, **given})
