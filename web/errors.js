// Errors the runtime throws on purpose, mirroring runtime_py/errors.py. Each has a `name`, so the
// worker can send {name, message} to the page and the client can rebuild the same class.

/** Base class of every error this kit throws on purpose. */
export class IntentKitError extends Error {
  /** @param {string} message @param {ErrorOptions} [options] */
  constructor(message, options) {
    super(message, options);
    this.name = "IntentKitError";
  }
}

/** A bundle or one of its files is missing, corrupt, or of an unsupported format. */
export class BundleError extends IntentKitError {
  /** @param {string} message @param {ErrorOptions} [options] */
  constructor(message, options) {
    super(message, options);
    this.name = "BundleError";
  }
}

/** The text given to classify cannot be classified (wrong type, too long). */
export class InputError extends IntentKitError {
  /** @param {string} message @param {ErrorOptions} [options] */
  constructor(message, options) {
    super(message, options);
    this.name = "InputError";
  }
}

const CLASSES = { IntentKitError, BundleError, InputError };

/**
 * A plain {name, message} for postMessage; errors that are not ours keep their class name.
 * @param {unknown} error
 * @returns {{name: string, message: string}}
 */
export function errorToObject(error) {
  if (error instanceof Error) return { name: error.name || "Error", message: error.message };
  return { name: "Error", message: String(error) };
}

/**
 * Rebuild an error sent by errorToObject: our classes come back as themselves, others as Error
 * with the original name.
 * @param {{name?: string, message?: string}} data
 * @returns {Error}
 */
export function errorFromObject(data) {
  const name = (data && data.name) || "Error";
  const message = (data && data.message) || "unknown error";
  const Cls = CLASSES[/** @type {keyof typeof CLASSES} */ (name)];
  if (Cls) return new Cls(message);
  const error = new Error(message);
  error.name = name;
  return error;
}
