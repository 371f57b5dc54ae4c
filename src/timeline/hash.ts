import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

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

/** SHA-256 over the previous hash and the event's RFC 8785 canonical JSON. */
export function hashEvent(event: HashedEvent): string {
  return createHash('sha256').update(event.prevHash).update('\n').update(canonicalJson(event)).digest('hex');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
