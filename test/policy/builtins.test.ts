/**
 * time.parse_rfc3339_ns, which the wasm runtime gets from us, must agree with
 * OPA's own (Go) implementation, or `opa test` and the bot would disagree.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseRfc3339Ns } from '../../src/policy/builtins.js';
import { opa } from './helpers.js';

const CASES = [
  '2026-12-18T00:00:00Z',
  '2026-12-17T23:30:00-01:00',
  '2026-12-18T05:30:00+05:30',
  '2026-11-02T10:00:00.123456789Z',
  '2026-11-02T10:00:00.1234567891234Z',
  '2026-11-02T10:00:00,5Z',
  '2024-02-29T12:00:00Z',
  '1970-01-01T00:00:00Z',
  '1969-12-31T23:59:59.999999999Z',
  '2262-04-11T23:47:16.854775807Z',
  '1677-09-21T00:12:43.145224192Z',
  '0099-01-01T00:00:00Z',
  '2262-04-11T23:47:16.854775808Z',
  '2025-02-29T12:00:00Z',
  '2026-13-01T00:00:00Z',
  '2026-11-02T24:00:00Z',
  '2026-11-02T10:00:60Z',
  '2026-11-02 10:00:00Z',
  '2026-11-02T10:00:00',
  '2026-11-02T10:00:00z',
  '2026-11-02',
  'yesterday',
  '',
];

describe('time.parse_rfc3339_ns for wasm', () => {
  it('is exact to the nanosecond and undefined on bad input', () => {
    expect(parseRfc3339Ns('2026-11-02T10:00:00.123456789Z')).toBe(1793613600123456789n);
    expect(parseRfc3339Ns('2026-12-17T23:30:00-01:00')).toBe(parseRfc3339Ns('2026-12-18T00:30:00Z'));
    expect(parseRfc3339Ns('2025-02-29T12:00:00Z')).toBeUndefined();
    expect(parseRfc3339Ns(42)).toBeUndefined();
  });

  it.skipIf(!opa)('agrees with opa on every case', () => {
    // OPA's own built-in leaves errors undefined (non-strict), so failed cases are absent from the object;
    // sprintf("%d") in Go keeps all 19 digits, which a JSON number in JS would not.
    const query = `{s: sprintf("%d", [time.parse_rfc3339_ns(s)]) | some s in ${JSON.stringify(CASES)}}`;
    const out = JSON.parse(execFileSync(opa!, ['eval', '--format', 'json', query], { encoding: 'utf8' }));
    const theirs: Record<string, string> = out.result[0].expressions[0].value;
    const ours = Object.fromEntries(CASES.flatMap((c) => {
      const ns = parseRfc3339Ns(c);
      return ns === undefined ? [] : [[c, ns.toString()]];
    }));
    expect(ours).toEqual(theirs);
    expect(Object.keys(theirs).length).toBeGreaterThan(5);
  });
});
