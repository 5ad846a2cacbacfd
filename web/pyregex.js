// Python `re` patterns (as bundles store them: slot patterns, the BoW token pattern) turned into
// JavaScript RegExp sources with the same meaning for str patterns.
//
// Python's \w \d \s \b are Unicode-aware and `.` excludes only "\n"; JavaScript's are ASCII or
// differ, so they are rewritten with Unicode property classes (flag "u"). (?P<name>...) becomes
// (?<name>...), (?P=name) \k<name>, \A \Z become look-arounds, and a leading (?aimsx) group becomes
// flags. Constructs JavaScript cannot express the same way (scoped flags, atomic groups, possessive
// quantifiers, \N{...}, verbose mode) throw a SyntaxError naming them. Characters that are
// alphanumeric only in Unicode versions newer than the Python's differ, nothing else.

const UNI_WORD = "\\p{L}\\p{N}_";
const ASCII_WORD = "A-Za-z0-9_";
const UNI_SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const ASCII_SPACE = "\\t-\\r ";
const SYNTAX = new Set("^$\\.*+?()[]{}|/".split(""));
const QUANTIFIER = /^\{(\d*)(,?)(\d*)\}/;

/**
 * @typedef {{source: string, flags: string, groups: string[]}} ConvertedRegex
 */

/**
 * Convert a Python regular expression to a JavaScript source and flags ("u" always; "i", "m",
 * "s" from a leading inline flag group; `extraFlags` appended, e.g. "g").
 * @param {string} pattern
 * @param {string} [extraFlags]
 * @returns {ConvertedRegex}
 */
export function convertPythonRegex(pattern, extraFlags = "") {
  if (typeof pattern !== "string") throw new SyntaxError(`expected a pattern string, got ${typeof pattern}`);
  let pos = 0;
  const flags = new Set();
  const lead = /^\(\?([aiLmsux]+)\)/.exec(pattern);
  if (lead) {
    for (const f of lead[1]) {
      if (f === "x") throw new SyntaxError("verbose patterns (?x) are not supported");
      if (f === "L") throw new SyntaxError("locale patterns (?L) are not supported");
      flags.add(f);
    }
    pos = lead[0].length;
  }
  const ascii = flags.has("a");
  const word = ascii ? ASCII_WORD : UNI_WORD;
  const space = ascii ? ASCII_SPACE : UNI_SPACE;
  const digit = ascii ? "0-9" : "\\p{Nd}";
  const multiline = flags.has("m");
  const dotall = flags.has("s");
  const groups = [];
  let out = "";
  let inClass = false;
  let classStart = false;

  const fail = (what) => {
    throw new SyntaxError(`${what} at position ${pos} of ${JSON.stringify(pattern)} is not supported`);
  };

  while (pos < pattern.length) {
    const c = pattern[pos];
    if (c === "\\") {
      const e = pattern[pos + 1];
      if (e === undefined) throw new SyntaxError(`pattern ${JSON.stringify(pattern)} ends with a lone backslash`);
      pos += 2;
      out += escape(e);
      classStart = false;
      continue;
    }
    if (inClass) {
      if (c === "]" && !classStart) {
        inClass = false;
        out += "]";
      } else if (c === "[" || (c === "]" && classStart)) {
        out += "\\" + c;
      } else {
        out += c;
      }
      classStart = false;
      pos++;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += "[";
      pos++;
      if (pattern[pos] === "^") {
        out += "^";
        pos++;
      }
      classStart = true;
      continue;
    }
    if (c === "(" && pattern[pos + 1] === "?") {
      const rest = pattern.slice(pos);
      let m;
      if ((m = /^\(\?P<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest))) {
        groups.push(m[1]);
        out += `(?<${m[1]}>`;
        pos += m[0].length;
      } else if ((m = /^\(\?P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest))) {
        out += `\\k<${m[1]}>`;
        pos += m[0].length;
      } else if ((m = /^\(\?#[^)]*\)/.exec(rest))) {
        pos += m[0].length;
      } else if (/^\(\?(?::|=|!|<=|<!)/.test(rest)) {
        m = /^\(\?(?::|=|!|<=|<!)/.exec(rest);
        out += m[0];
        pos += m[0].length;
      } else if (rest.startsWith("(?>")) {
        fail("an atomic group (?>...)");
      } else if (rest.startsWith("(?(")) {
        fail("a conditional group (?(...)...)");
      } else {
        fail("an inline flag group");
      }
      continue;
    }
    if (c === "{") {
      const q = QUANTIFIER.exec(pattern.slice(pos));
      if (q && (q[1] !== "" || q[2] === ",")) {
        out += q[2] ? `{${q[1] || "0"},${q[3]}}` : `{${q[1]}}`;
        pos += q[0].length;
        if (pattern[pos] === "+") fail("a possessive quantifier");
      } else {
        out += "\\{";
        pos++;
      }
      continue;
    }
    if (c === "}") {
      out += "\\}";
    } else if (c === ".") {
      out += dotall ? "[\\s\\S]" : "[^\\n]";
    } else if (c === "$") {
      out += multiline ? "(?=\\n|(?![\\s\\S]))" : "(?=\\n?(?![\\s\\S]))";
    } else if (c === "^") {
      out += multiline ? "(?:(?<![\\s\\S])|(?<=\\n))" : "^";
    } else if ((c === "*" || c === "+" || c === "?") && pattern[pos + 1] === "+") {
      fail("a possessive quantifier");
    } else if (c === "/") {
      out += "\\/";
    } else {
      out += c;
    }
    pos++;
  }
  if (inClass) throw new SyntaxError(`unterminated character set in ${JSON.stringify(pattern)}`);

  /** One escape \e, inside or outside a character class. */
  function escape(e) {
    switch (e) {
      case "w":
        return inClass ? word : `[${word}]`;
      case "W":
        if (inClass) fail("\\W inside a character set");
        return `[^${word}]`;
      case "d":
        return inClass ? digit : ascii ? "[0-9]" : digit;
      case "D":
        if (inClass && ascii) fail("\\D inside a character set");
        return ascii ? "[^0-9]" : "\\P{Nd}";
      case "s":
        return inClass ? space : `[${space}]`;
      case "S":
        if (inClass) fail("\\S inside a character set");
        return `[^${space}]`;
      case "b":
        if (inClass) return "\\x08";
        return `(?:(?<=[${word}])(?![${word}])|(?<![${word}])(?=[${word}]))`;
      case "B":
        if (inClass) fail("\\B inside a character set");
        return `(?:(?<=[${word}])(?=[${word}])|(?<![${word}])(?![${word}]))`;
      case "A":
        return "(?<![\\s\\S])";
      case "Z":
        return "(?![\\s\\S])";
      case "a":
        return "\\x07";
      case "n":
      case "t":
      case "r":
      case "f":
      case "v":
        return "\\" + e;
      case "x": {
        const hex = /^[0-9A-Fa-f]{2}/.exec(pattern.slice(pos));
        if (!hex) fail("an incomplete \\x escape");
        pos += 2;
        return "\\x" + hex[0];
      }
      case "u": {
        const hex = /^[0-9A-Fa-f]{4}/.exec(pattern.slice(pos));
        if (!hex) fail("an incomplete \\u escape");
        pos += 4;
        return "\\u" + hex[0];
      }
      case "U": {
        const hex = /^[0-9A-Fa-f]{8}/.exec(pattern.slice(pos));
        if (!hex) fail("an incomplete \\U escape");
        pos += 8;
        return `\\u{${hex[0].replace(/^0+(?=.)/, "")}}`;
      }
      case "0": {
        const oct = /^[0-7]{0,2}/.exec(pattern.slice(pos))[0];
        pos += oct.length;
        return `\\u{${parseInt("0" + oct, 8).toString(16)}}`;
      }
      default:
        if (/[1-9]/.test(e)) {
          if (inClass) fail("an octal escape inside a character set");
          const more = /^[0-9]?/.exec(pattern.slice(pos))[0];
          pos += more.length;
          return "\\" + e + more;
        }
        if (/[A-Za-z]/.test(e)) fail(`the escape \\${e}`);
        if (SYNTAX.has(e) || (inClass && e === "-")) return "\\" + e;
        // Python lets any other character be escaped; JavaScript's "u" mode does not.
        return e;
    }
  }

  // m and s are already spelled out in the source: only "i" remains a flag.
  const jsFlags = (flags.has("i") ? "i" : "") + "u" + extraFlags;
  return { source: out, flags: jsFlags, groups };
}

/**
 * A RegExp with the meaning of the Python pattern (see convertPythonRegex).
 * @param {string} pattern
 * @param {string} [extraFlags]
 */
export function pythonRegExp(pattern, extraFlags = "") {
  const { source, flags } = convertPythonRegex(pattern, extraFlags);
  return new RegExp(source, flags);
}

/**
 * Escape text for a "u"-mode RegExp (Python's re.escape for str patterns).
 * @param {string} text
 */
export function escapeRegExp(text) {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
}
