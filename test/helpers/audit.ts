/** A fresh audit key for a test: the hex to hand a server or the CLI (FIREBREAK_AUDIT_KEY), and the key for in-process writers. */
import { randomBytes } from 'node:crypto';
import { AuditKey } from '../../src/audit/index.js';

export function testAuditKey(): { hex: string; key: AuditKey } {
  const bytes = randomBytes(32);
  return { hex: bytes.toString('hex'), key: new AuditKey(bytes, 'test') };
}
