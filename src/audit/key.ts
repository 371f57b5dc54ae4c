/**
 * The audit key: FIREBREAK_AUDIT_KEY, or in local mode a key file that the
 * first process to need it creates in the data dir. Every replica and
 * `firebreak audit verify` must end up with the same bytes.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { decodeAuditKey, type AuditKeyMaterial } from '../config/index.js';
import { FirebreakError } from '../errors.js';

/** Name of the local-mode key file inside FIREBREAK_DATA_DIR. */
export const AUDIT_KEY_FILE = 'audit.key';

/** The audit key is missing, unreadable or malformed. Start-up and verify stop with this message. */
export class AuditKeyError extends FirebreakError {
  readonly code = 'audit_key';
  constructor(message: string, readonly file?: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * HMAC-SHA256 under the audit key. The bytes never leave this object: no
 * getter, hidden from JSON and inspection. `id` is a public fingerprint
 * (not the key) so replicas, checkpoints and verify can tell keys apart.
 */
export class AuditKey {
  readonly #bytes: Buffer;
  readonly id: string;

  /** `source` says where the key came from, for messages ("FIREBREAK_AUDIT_KEY" or the file path). */
  constructor(bytes: Buffer, readonly source: string) {
    this.#bytes = Buffer.from(bytes);
    this.id = createHmac('sha256', this.#bytes).update('firebreak.audit-key-id.v1').digest('hex').slice(0, 16);
  }

  /** Hex HMAC-SHA256 over the parts, fed in order. */
  mac(...parts: string[]): string {
    const hmac = createHmac('sha256', this.#bytes);
    for (const part of parts) hmac.update(part);
    return hmac.digest('hex');
  }

  toJSON(): string {
    return `[audit key ${this.id}]`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AuditKey(${this.id} from ${this.source})`;
  }
}

export interface LoadedAuditKey {
  key: AuditKey;
  /** Set when this call created the key file. */
  created?: string;
  /** Something the operator should fix (a key file others can read). */
  warning?: string;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

async function readKeyFile(file: string): Promise<AuditKey | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw new AuditKeyError(`cannot read the audit key file ${file}: ${(err as Error).message}`, file, { cause: err });
  }
  const decoded = decodeAuditKey(text);
  if (typeof decoded === 'string') throw new AuditKeyError(`the audit key file ${file} is not a valid key: it ${decoded}`, file);
  return new AuditKey(decoded, file);
}

/**
 * Create the key file atomically: the whole key is written to a private
 * temporary file, then hard-linked to the final name, which fails if another
 * process got there first. Nobody ever sees a half-written key, and two
 * replicas (or a CLI) starting at once end with one key: the loser re-reads
 * the winner's. File systems without hard links fall back to O_EXCL.
 */
/** Write a new file readable by its owner only; fails if it exists. */
async function writeNewPrivateFile(path: string, content: string): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function createKeyFile(dir: string, file: string): Promise<boolean> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const content = `${randomBytes(32).toString('hex')}\n`;
  const temp = join(dir, `.${AUDIT_KEY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await writeNewPrivateFile(temp, content);
  try {
    await link(temp, file);
    return true;
  } catch (err) {
    if (errno(err) === 'EEXIST') return false;
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(errno(err) ?? '')) throw err;
    try {
      await writeNewPrivateFile(file, content);
      return true;
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      throw e;
    }
  } finally {
    await unlink(temp).catch(() => {});
  }
}

/**
 * The audit key: FIREBREAK_AUDIT_KEY when set, else `<dataDir>/audit.key`.
 * `create` (the server) makes the file when it is missing; verify does not,
 * since a fresh key could never check the chains already written.
 */
export async function loadAuditKey(options: { material: AuditKeyMaterial | undefined; dataDir: string; create: boolean }): Promise<LoadedAuditKey> {
  if (options.material) return { key: new AuditKey(options.material.bytes(), 'FIREBREAK_AUDIT_KEY') };
  const dir = resolve(options.dataDir);
  const file = join(dir, AUDIT_KEY_FILE);
  let created: string | undefined;
  let key = await readKeyFile(file);
  if (!key) {
    if (!options.create) {
      throw new AuditKeyError(
        `no audit key: FIREBREAK_AUDIT_KEY is unset and ${file} does not exist. Use the server's FIREBREAK_AUDIT_KEY, or its FIREBREAK_DATA_DIR (the server creates the key file there on first start)`,
        file,
      );
    }
    if (await createKeyFile(dir, file).catch((err: unknown) => {
      throw new AuditKeyError(`cannot create the audit key file ${file}: ${(err as Error).message}`, file, { cause: err });
    })) created = file;
    // With the O_EXCL fallback a reader can catch the winner between create and write: re-read briefly.
    for (let attempt = 0; !key; attempt++) {
      try {
        key = await readKeyFile(file);
      } catch (err) {
        if (attempt >= 20) throw err;
      }
      if (!key && attempt >= 20) throw new AuditKeyError(`the audit key file ${file} disappeared while it was being created`, file);
      if (!key) await new Promise((r) => setTimeout(r, 50));
    }
  }
  const mode = (await stat(file)).mode & 0o777;
  const warning = mode & 0o077 ? `the audit key file ${file} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it` : undefined;
  return { key, ...(created && { created }), ...(warning && { warning }) };
}
