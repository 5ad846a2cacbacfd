// The kit's version: runtime_py.__version__ is the source; web/package.json and this line repeat it,
// and tests/test_packages.py fails when they differ. The Pyodide engine installs the runtime wheel of
// this version.

export const VERSION = "0.1.0";

/** The file name `python -m build` gives runtime_py's wheel of `version` (builder/serve/wheels.py). */
export function runtimeWheelName(version = VERSION) {
  return `edge_intent_runtime-${version}-py3-none-any.whl`;
}
