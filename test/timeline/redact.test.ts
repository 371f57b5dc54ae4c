import { describe, expect, it } from 'vitest';
import { createRedactor, REDACTED } from '../../src/timeline/index.js';

const SECRET = 'p/ss w+rd&"x"\\é';

describe('createRedactor', () => {
  const redact = createRedactor([SECRET, 'abc']);

  it('replaces the secret in every form a request or a message gives it', () => {
    const forms = [
      SECRET,
      encodeURIComponent(SECRET),
      encodeURIComponent(SECRET).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()), // lower-case hex
      encodeURI(SECRET),
      new URLSearchParams({ s: SECRET }).toString().slice(2),
      JSON.stringify(SECRET).slice(1, -1),
      SECRET.replace(/&/g, '&amp;'),
      Buffer.from(SECRET).toString('base64'),
      Buffer.from(SECRET).toString('base64url'),
    ];
    for (const form of forms) {
      expect(redact(`GET https://h/x/${form}/y answered 500`), form).toBe(`GET https://h/x/${REDACTED}/y answered 500`);
    }
    expect(redact({ [`k-${SECRET}`]: [{ deep: `Bearer ${SECRET}` }] })).toEqual({ [`k-${REDACTED}`]: [{ deep: `Bearer ${REDACTED}` }] });
  });

  it('redacts short secrets only as whole strings', () => {
    expect(redact('abc')).toBe(REDACTED);
    expect(redact('abcdef')).toBe('abcdef');
  });

  it('cannot be made to recurse without bound', () => {
    let value: unknown = 'leaf';
    for (let i = 0; i < 200_000; i++) value = [value];
    expect(() => redact(value)).not.toThrow();
    expect(JSON.stringify(redact(value))).toContain('[nested too deep]');
  });

  it('keeps data JSON-safe: no NUL, no lone surrogates, dates as ISO strings', () => {
    expect(redact({ a: 'x\u0000y', b: '\ud800', c: new Date(0), d: Infinity })).toEqual({ a: 'x\uFFFDy', b: '\uFFFD', c: '1970-01-01T00:00:00.000Z', d: null });
  });
});
