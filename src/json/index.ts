/**
 * JSON with a depth limit, checked on the text before it is parsed. JSON.parse
 * itself copes with deep input, but everything that walks the result
 * afterwards (validation, redaction, canonical hashing, the policy engine)
 * recurses; no request body or response may be deeper than this.
 */
import { ValidationError } from '../errors.js';

/** Nesting of arrays and objects allowed in any JSON we read. Real payloads use well under 20. */
export const MAX_JSON_DEPTH = 64;

/**
 * The depth at which `text` first goes deeper than `max`, or undefined. A
 * linear scan that skips strings (with their escapes), so `"[[[["` counts zero.
 */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return undefined;
}

/** Parse JSON text, refusing it (ValidationError naming `path`) when it nests deeper than MAX_JSON_DEPTH. */
export function parseJson(text: string, path = '(body)'): unknown {
  if (jsonTooDeep(text) !== undefined) {
    throw new ValidationError(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`, [{ path, message: `nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects` }]);
  }
  return JSON.parse(text);
}
