// The package's entry point ("edge-intent-kit"): the page-side client and what its callers catch.
// Every module is importable on its own too ("edge-intent-kit/router.js").

export { IntentClient } from "./client.js";
export { BUNDLE_FORMAT_VERSION } from "./bundle.js";
export { BundleError, InputError, IntentKitError } from "./errors.js";
export { VERSION } from "./version.js";
