"""Where the default bundle, data and templates live (under models/, as the design fixes)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DEFAULT_DATA = MODELS / "data" / "finance"
DEFAULT_TEMPLATES = MODELS / "templates" / "finance.json"


def default_bundle() -> Path:
    """``$INTENT_BUNDLE`` if set, else ``models/bundles/finance``."""
    return Path(os.environ.get("INTENT_BUNDLE") or MODELS / "bundles" / "finance")
