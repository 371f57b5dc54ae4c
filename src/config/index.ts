import { isIP } from 'node:net';
import { z } from 'zod';
import { ValidationError, type FieldProblem } from '../errors.js';

/** Secret values readable in playbooks as `secrets.NAME`; hidden from JSON and inspection. */
export class Secrets {
  readonly #values: Map<string, string>;
  constructor(values: Record<string, string>) {
    this.#values = new Map(Object.entries(values));
  }
  get(name: string): string | undefined {
    return this.#values.get(name);
  }
  names(): string[] {
    return [...this.#values.keys()];
  }
  /** Every secret value, longest first, for redaction. */
  values(): string[] {
    return [...this.#values.values()].filter((v) => v.length > 0).sort((a, b) => b.length - a.length);
  }
  asObject(): Record<string, string> {
    return Object.fromEntries(this.#values);
  }
  toJSON(): string {
    return '[secrets redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Secrets(${this.names().join(', ')})`;
  }
}

/**
 * The audit key's bytes, from FIREBREAK_AUDIT_KEY or the local key file:
 * hex (64+ digits) or base64/base64url, decoding to at least 32 bytes.
 * Returns the problem as text instead of throwing, so no caller ever echoes the value.
 */
export function decodeAuditKey(text: string): Buffer | string {
  const value = text.trim();
  let bytes: Buffer | undefined;
  if (/^(?:[0-9a-f]{2})+$/i.test(value)) bytes = Buffer.from(value, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) bytes = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (!bytes) return 'must be hex or base64 (generate one with: openssl rand -hex 32)';
  if (bytes.length < 32) return `must hold at least 32 bytes (256 bits), this one holds ${bytes.length} (generate one with: openssl rand -hex 32)`;
  return bytes;
}

/** Key material for the audit chain; hidden from JSON and inspection like Secrets. */
export class AuditKeyMaterial {
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) {
    this.#bytes = Buffer.from(bytes);
  }
  bytes(): Buffer {
    return Buffer.from(this.#bytes);
  }
  toJSON(): string {
    return '[audit key redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'AuditKeyMaterial([redacted])';
  }
}

const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();

const port = z.coerce.number().int('must be an integer').min(0).max(65535, 'must be a port number (0-65535)');

const urlString = (what: string) =>
  z.string().trim().refine((v) => {
    try {
      new URL(v);
      return true;
    } catch {
      return false;
    }
  }, `must be a valid ${what} URL`);

/** `10.0.0.0/8`, `fd00::/8`: an address range (FIREBREAK_ALLOWED_HOSTS, for pod IPs). */
function isCidr(value: string): boolean {
  const m = /^([0-9a-f.:]+)\/(\d{1,3})$/i.exec(value);
  if (!m) return false;
  const family = isIP(m[1]!);
  return family !== 0 && Number(m[2]) <= (family === 4 ? 32 : 128);
}

const hostPattern = /^(\*\.)?[a-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-f:]+\](:\d{1,5})?$/i;

/** A comma list of host names, lower-cased, empty entries dropped. */
const hostList = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );

/**
 * A URL's credentials hidden: the password in `user:password@` and in a
 * `password=` query parameter (libpq reads both) become `****`. Works on
 * text that is not a valid URL too, so a typo is never echoed with the password.
 */
export function maskUrlCredentials(text: string): string {
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*:)\S*@/gi, '$1****@')
    .replace(/([?&\s](?:password|sslpassword)\s*=\s*)[^&#\s]*/gi, '$1****');
}

const DATABASE_SCHEMES = ['postgres:', 'postgresql:'];

const databaseUrl = z
  .string()
  .trim()
  .superRefine((v, ctx) => {
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a postgres://user:password@host:port/database URL' });
      return;
    }
    if (!DATABASE_SCHEMES.includes(url.protocol)) {
      ctx.addIssue({ code: 'custom', message: `must be a postgres:// or postgresql:// URL, not ${url.protocol}//` });
      return;
    }
    try {
      // The driver percent-decodes user and password; a bad escape would fail later, with the URL in the error.
      decodeURIComponent(url.username);
      decodeURIComponent(url.password);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'has a bad %-escape in its user or password (encode special characters, e.g. @ as %40)' });
    }
  });

/** Variables whose values are never echoed in an error (tokens, secrets); DATABASE_URL is echoed masked. */
const SENSITIVE_VARIABLE = /TOKEN|SECRET|PASSWORD|KEY/;

function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return '""';
  if (name === 'DATABASE_URL') {
    // Only a value that parses as a URL can be masked with confidence; anything else is not echoed.
    if (!URL.canParse(value.trim())) return '(value hidden: not a URL)';
    return JSON.stringify(maskUrlCredentials(value));
  }
  if (SENSITIVE_VARIABLE.test(name)) return '(value hidden)';
  return JSON.stringify(value);
}

const envSchema = z.object({
  DATABASE_URL: databaseUrl.optional(),
  FIREBREAK_DATA_DIR: z.string().min(1).default('.firebreak'),
  PORT: port.default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  FIREBREAK_PLAYBOOKS: z.string().min(1).default('playbooks'),
  FIREBREAK_POLICIES: z.string().min(1).default('policies'),
  FIREBREAK_WEBHOOK_TOKEN: optionalString,
  FIREBREAK_PUBLIC_URL: urlString('http(s)').optional(),
  FIREBREAK_HTTP_ALLOW: hostList
    .refine((hosts) => hosts.every((h) => hostPattern.test(h)), 'must be a comma list of host or host:port (*.suffix allowed)'),
  FIREBREAK_GRAFANA_SECRET: optionalString,
  FIREBREAK_PAGERDUTY_SECRET: optionalString,
  SLACK_BOT_TOKEN: optionalString,
  SLACK_SIGNING_SECRET: optionalString,
  SLACK_APP_TOKEN: optionalString,
  SLACK_API_URL: urlString('http(s)').optional(),
  SLACK_CHANNEL: optionalString,
  FIREBREAK_API_TOKEN: optionalString,
  FIREBREAK_OIDC_ISSUER: urlString('http(s)').optional(),
  FIREBREAK_OIDC_CLIENT_ID: optionalString,
  FIREBREAK_OIDC_CLIENT_SECRET: optionalString,
  FIREBREAK_OIDC_GROUPS_CLAIM: z.string().trim().min(1).max(200).default('groups'),
  FIREBREAK_OIDC_SCOPES: z
    .string()
    .trim()
    .default('openid profile email')
    .refine((v) => v.split(/\s+/).includes('openid'), 'must include openid'),
  FIREBREAK_METRICS_TOKEN: optionalString,
  FIREBREAK_ALLOWED_HOSTS: hostList
    .refine((hosts) => hosts.every((h) => (hostPattern.test(h) && !h.startsWith('*.')) || isCidr(h)), 'must be a comma list of host, host:port or address/prefix (10.0.0.0/8)'),
  // Reverse proxies whose X-Forwarded-For names the real client (login throttling counts clients by it).
  FIREBREAK_TRUSTED_PROXIES: hostList.refine((entries) => entries.every((h) => isIP(h) !== 0 || isCidr(h)), 'must be a comma list of addresses or address/prefix ranges (10.0.0.0/8)'),
  FIREBREAK_AUDIT_KEY: optionalString.superRefine((value, ctx) => {
    const decoded = value === undefined ? undefined : decodeAuditKey(value);
    if (typeof decoded === 'string') ctx.addIssue({ code: 'custom', message: decoded });
  }),
  FIREBREAK_AUDIT_CHECKPOINT_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(10_000),
  FIREBREAK_INSECURE: z
    .enum(['', '0', '1', 'true', 'false'], { message: 'must be 1 or 0' })
    .optional()
    .transform((v) => v === '1' || v === 'true'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  FIREBREAK_WORKERS: z.coerce.number().int().min(0).max(64).default(4),
  FIREBREAK_LEASE_MS: z.coerce.number().int().min(500).max(600_000).default(15_000),
  FIREBREAK_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(500),
});

export interface Config {
  databaseUrl: string | undefined;
  dataDir: string;
  port: number;
  host: string;
  playbooksDir: string;
  policiesDir: string;
  webhookToken: string | undefined;
  publicUrl: string;
  httpAllow: string[];
  grafanaSecret: string | undefined;
  pagerdutySecret: string | undefined;
  slack: {
    botToken: string | undefined;
    signingSecret: string | undefined;
    appToken: string | undefined;
    apiUrl: string | undefined;
    defaultChannel: string | undefined;
  };
  apiToken: string | undefined;
  /** Console single sign-on; undefined when FIREBREAK_OIDC_ISSUER is unset. */
  oidc: OidcConfig | undefined;
  /** When set, GET /metrics needs `Authorization: Bearer <token>`. */
  metricsToken: string | undefined;
  /**
   * Addresses and ranges of reverse proxies in front (FIREBREAK_TRUSTED_PROXIES): only a request from one of
   * them has its X-Forwarded-For / -Proto believed; empty: nobody's are (the socket's address is the client).
   */
  trustedProxies: string[];
  /** Host names (host or host:port) accepted besides the public URL's and loopback (FIREBREAK_ALLOWED_HOSTS). */
  allowedHosts: string[];
  /** FIREBREAK_AUDIT_KEY, decoded; unset: local mode uses the data dir's key file. */
  auditKey: AuditKeyMaterial | undefined;
  /** How often a replica signs a checkpoint of the timeline's chain heads. */
  auditCheckpointMs: number;
  insecure: boolean;
  logLevel: string;
  workers: number;
  leaseMs: number;
  pollMs: number;
  secrets: Secrets;
}

export interface OidcConfig {
  issuer: string;
  clientId: string;
  clientSecret: string | undefined;
  /** The ID token / userinfo claim holding the user's groups. */
  groupsClaim: string;
  scopes: string;
}

/**
 * Local mode: no authentication configured (no FIREBREAK_API_TOKEN, no
 * OpenID Connect). Names are then claims, recorded as unverified; start-up
 * allows it on loopback only (or with FIREBREAK_INSECURE=1).
 */
export function isLocalMode(config: Pick<Config, 'apiToken' | 'oidc'>): boolean {
  return !config.apiToken && !config.oidc;
}

const SECRET_PREFIX = 'FIREBREAK_SECRET_';
/** Variables whose value is never repeated in an error message. */
const NEVER_ECHOED = new Set(['FIREBREAK_AUDIT_KEY', 'FIREBREAK_API_TOKEN', 'FIREBREAK_WEBHOOK_TOKEN', 'SLACK_BOT_TOKEN', 'SLACK_SIGNING_SECRET', 'SLACK_APP_TOKEN', 'FIREBREAK_OIDC_CLIENT_SECRET', 'FIREBREAK_METRICS_TOKEN']);

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1';
  return false;
}

/**
 * Parse and validate the environment once at start-up. `client` (CLI
 * commands other than serve) skips rules that only bind a listening server. Throws a ValidationError
 * whose details name each bad variable; the CLI prints them one per line.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: { client?: boolean } = {}): Config {
  const parsed = envSchema.safeParse(env);
  const problems: FieldProblem[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? 'environment');
      problems.push({ path: name, message: NEVER_ECHOED.has(name) ? issue.message : `${issue.message} (got ${shownValue(name, env[name])})` });
    }
  }
  const secrets: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith(SECRET_PREFIX) || value === undefined) continue;
    const name = key.slice(SECRET_PREFIX.length);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      problems.push({ path: key, message: 'secret name must be letters, digits and _' });
      continue;
    }
    secrets[name] = value;
  }
  if (parsed.success) {
    const e = parsed.data;
    if (!isLoopbackHost(e.HOST) && !e.FIREBREAK_INSECURE) {
      if (!e.FIREBREAK_WEBHOOK_TOKEN)
        problems.push({ path: 'FIREBREAK_WEBHOOK_TOKEN', message: `required when HOST (${e.HOST}) is not loopback; set it, or FIREBREAK_INSECURE=1 to run open` });
      if (!e.FIREBREAK_API_TOKEN)
        problems.push({ path: 'FIREBREAK_API_TOKEN', message: `required when HOST (${e.HOST}) is not loopback; set it, or FIREBREAK_INSECURE=1 to run open` });
    }
    if (e.FIREBREAK_OIDC_ISSUER) {
      if (!e.FIREBREAK_OIDC_CLIENT_ID) problems.push({ path: 'FIREBREAK_OIDC_CLIENT_ID', message: 'required with FIREBREAK_OIDC_ISSUER (the client id registered at the provider)' });
      const issuer = new URL(e.FIREBREAK_OIDC_ISSUER);
      if (issuer.protocol !== 'https:' && !(issuer.protocol === 'http:' && isLoopbackHost(issuer.hostname)))
        problems.push({ path: 'FIREBREAK_OIDC_ISSUER', message: `must be an https URL (http only for a provider on loopback), got ${issuer.protocol}//${issuer.host}` });
    } else if (e.FIREBREAK_OIDC_CLIENT_ID || e.FIREBREAK_OIDC_CLIENT_SECRET) {
      problems.push({ path: 'FIREBREAK_OIDC_ISSUER', message: 'required when FIREBREAK_OIDC_CLIENT_ID or FIREBREAK_OIDC_CLIENT_SECRET is set' });
    }
    // Off loopback the chain's key must be shared by every replica and kept by the operator; a key file on one pod's disk would be neither.
    // FIREBREAK_INSECURE=1 (logged loudly) waives it like the tokens: the data dir's key file is used then.
    if (!options.client && !isLoopbackHost(e.HOST) && !e.FIREBREAK_AUDIT_KEY && !e.FIREBREAK_INSECURE)
      problems.push({ path: 'FIREBREAK_AUDIT_KEY', message: `required when HOST (${e.HOST}) is not loopback: the key that signs the timeline, the same on every replica (generate one with: openssl rand -hex 32), or FIREBREAK_INSECURE=1 to use a local key file` });
    if (e.SLACK_BOT_TOKEN && !e.SLACK_SIGNING_SECRET && !e.SLACK_APP_TOKEN)
      problems.push({ path: 'SLACK_SIGNING_SECRET', message: 'required with SLACK_BOT_TOKEN (HTTP mode verifies every Slack request)' });
    if (!e.SLACK_BOT_TOKEN && (e.SLACK_SIGNING_SECRET || e.SLACK_APP_TOKEN))
      problems.push({ path: 'SLACK_BOT_TOKEN', message: 'required when SLACK_SIGNING_SECRET or SLACK_APP_TOKEN is set' });
  }
  if (problems.length > 0 || !parsed.success) {
    throw new ValidationError('invalid configuration', problems);
  }
  const e = parsed.data;
  const displayHost = e.HOST === '0.0.0.0' || e.HOST === '::' ? '127.0.0.1' : e.HOST;
  return {
    databaseUrl: e.DATABASE_URL,
    dataDir: e.FIREBREAK_DATA_DIR,
    port: e.PORT,
    host: e.HOST,
    playbooksDir: e.FIREBREAK_PLAYBOOKS,
    policiesDir: e.FIREBREAK_POLICIES,
    webhookToken: e.FIREBREAK_WEBHOOK_TOKEN,
    publicUrl: (e.FIREBREAK_PUBLIC_URL ?? `http://${displayHost.includes(':') ? `[${displayHost}]` : displayHost}:${e.PORT}`).replace(/\/+$/, ''),
    httpAllow: e.FIREBREAK_HTTP_ALLOW,
    grafanaSecret: e.FIREBREAK_GRAFANA_SECRET,
    pagerdutySecret: e.FIREBREAK_PAGERDUTY_SECRET,
    slack: {
      botToken: e.SLACK_BOT_TOKEN,
      signingSecret: e.SLACK_SIGNING_SECRET,
      appToken: e.SLACK_APP_TOKEN,
      apiUrl: e.SLACK_API_URL,
      defaultChannel: e.SLACK_CHANNEL,
    },
    apiToken: e.FIREBREAK_API_TOKEN,
    oidc: e.FIREBREAK_OIDC_ISSUER
      ? {
          issuer: e.FIREBREAK_OIDC_ISSUER,
          clientId: e.FIREBREAK_OIDC_CLIENT_ID!,
          clientSecret: e.FIREBREAK_OIDC_CLIENT_SECRET,
          groupsClaim: e.FIREBREAK_OIDC_GROUPS_CLAIM,
          scopes: e.FIREBREAK_OIDC_SCOPES.split(/\s+/).join(' '),
        }
      : undefined,
    metricsToken: e.FIREBREAK_METRICS_TOKEN,
    allowedHosts: e.FIREBREAK_ALLOWED_HOSTS,
    trustedProxies: e.FIREBREAK_TRUSTED_PROXIES,
    auditKey: e.FIREBREAK_AUDIT_KEY === undefined ? undefined : new AuditKeyMaterial(decodeAuditKey(e.FIREBREAK_AUDIT_KEY) as Buffer),
    auditCheckpointMs: e.FIREBREAK_AUDIT_CHECKPOINT_MS,
    insecure: e.FIREBREAK_INSECURE,
    logLevel: e.LOG_LEVEL,
    workers: e.FIREBREAK_WORKERS,
    leaseMs: e.FIREBREAK_LEASE_MS,
    pollMs: e.FIREBREAK_POLL_MS,
    secrets: new Secrets(secrets),
  };
}

/**
 * Every credential the process holds, for redacting logs and error messages:
 * playbook secrets, tokens, signing secrets and the database password.
 */
export function sensitiveValues(config: Config): string[] {
  const values = [
    ...config.secrets.values(),
    config.webhookToken,
    config.apiToken,
    config.grafanaSecret,
    config.pagerdutySecret,
    config.slack.botToken,
    config.slack.signingSecret,
    config.slack.appToken,
  ];
  const audit = config.auditKey?.bytes();
  if (audit) values.push(audit.toString('hex'), audit.toString('base64'), audit.toString('base64url'));
  if (config.databaseUrl) {
    try {
      const url = new URL(config.databaseUrl);
      values.push(decodeURIComponent(url.password), url.searchParams.get('password') ?? undefined);
    } catch {
      // validated at start-up; nothing more to hide
    }
  }
  return values.filter((v): v is string => typeof v === 'string' && v.length > 0);
}
