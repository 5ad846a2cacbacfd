"""Pure-Python runtime of the edge intent-classifier kit: load a bundle, route text to intents.

Standard library only (onnxruntime is optional, for the transformer tier), so it also runs in
Pyodide. Typical use::

    from runtime_py import Router
    router = Router.from_bundle("models/bundles/finance")
    result = router.classify("how is AAPL doing this year")
    result.intent, result.confidence, result.slots
"""

from .bow import BowModel
from .bundle import BUNDLE_FORMAT_VERSION, Manifest, read_manifest
from .errors import BundleError, InputError, IntentKitError
from .features import FeatureConfig, FeatureExtractor, Vectorizer
from .router import RouteResult, Router, TierReport
from .slots import SlotExtractor
from .tiers import Tier, register_tier_kind

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "BowModel",
    "BundleError",
    "FeatureConfig",
    "FeatureExtractor",
    "InputError",
    "IntentKitError",
    "Manifest",
    "RouteResult",
    "Router",
    "SlotExtractor",
    "Tier",
    "TierReport",
    "Vectorizer",
    "read_manifest",
    "register_tier_kind",
]
__version__ = "0.1.0"
