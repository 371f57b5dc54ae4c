/** The redactor straight to JSON text gives exactly what the walking redactor gives, cheap path or not. */
import { describe, expect, it } from 'vitest';
import { createJsonRedactor, createRedactor } from '../../src/timeline/index.js';

const secrets = ['tok-9f8e7d6c5b4a', 'abc', 'quo"te\\back'];
const walk = createRedactor(secrets);
const json = createJsonRedactor(secrets);

describe('createJsonRedactor', () => {
  it.each([
    ['a clean payload', { labels: { alertname: 'X', service: 'checkout' }, n: 1, ok: true, list: [1, 'two', null] }],
    ['a long secret inside a string', { header: 'Bearer tok-9f8e7d6c5b4a please' }],
    ['a short secret as a whole value', { a: 'abc', b: 'abcd' }],
    ['a secret as a key', { 'tok-9f8e7d6c5b4a': 1 }],
    ['a secret with quotes and backslashes', { s: 'x quo"te\\back y' }],
    ['NUL in a string', { s: 'a\u0000b' }],
    ['a lone surrogate', { s: 'a\ud800b' }],
    ['a well-formed pair', { s: 'emoji \ud83d\ude00' }],
    ['dates and non-finite numbers', { d: new Date(Date.UTC(2025, 0, 1)), n: Number.NaN }],
  ])('%s', (_name, value) => {
    expect(json(value)).toBe(JSON.stringify(walk(value)));
  });
});
