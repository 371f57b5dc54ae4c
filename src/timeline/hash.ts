import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AuditKey } from '../audit/index.js';

// canonicalize is CommonJS with a default-export typing that NodeNext cannot call.
const canonicalize = createRequire(import.meta.url)('canonicalize') as (input: unknown) => string | undefined;

/** prev_hash of the first event in every chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** The fields covered by an event's hash. Changing this breaks every existing chain. */
export interface HashedEvent {
  chainId: string;
  seq: number;
  runId: string | null;
  time: string;
  kind: string;
  actor: string;
  data: unknown;
  prevHash: string;
}

export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON representation');
  return text;
}

/**
 * An event's hash: HMAC-SHA256 under the audit key over the previous hash and
 * the event's RFC 8785 canonical JSON. Every writer of the timeline calls
 * this, and only this; without the key nobody can re-hash an edited chain.
 */
export function hashEvent(event: HashedEvent, key: AuditKey): string {
  return key.mac(event.prevHash, '\n', canonicalJson(event));
}

/**
 * How events were hashed before the audit key (plain SHA-256, same input).
 * Only `audit verify` uses it, for chain prefixes frozen as legacy by
 * migration 0014; nothing writes with it any more.
 */
export function legacyHashEvent(event: HashedEvent): string {
  return createHash('sha256').update(event.prevHash).update('\n').update(canonicalJson(event)).digest('hex');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
