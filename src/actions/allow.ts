/**
 * Host allow list for network actions (FIREBREAK_HTTP_ALLOW).
 * Entries: `host` (any port), `host:port` (that port only), `*.suffix` (any
 * subdomain of suffix, not suffix itself; may carry `:port`). Empty list: nothing.
 */

interface HostPort {
  host: string;
  port: string | undefined;
}

function split(value: string): HostPort {
  const v = value.trim().toLowerCase();
  // IPv6 literals keep their brackets so `[::1]:80` splits at the right colon.
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(v);
  if (!m) return { host: v, port: undefined };
  // A trailing dot names the same host; strip it so `example.com.` cannot dodge an entry.
  return { host: m[1]!.replace(/\.$/, ''), port: m[2] };
}

/** `hostWithPort` is `host` or `host:port` (IPv6 as `[::1]:port`), as in a URL authority. */
export function isHostAllowed(hostWithPort: string, allowList: readonly string[]): boolean {
  const target = split(hostWithPort);
  if (target.host === '') return false;
  return allowList.some((raw) => {
    const entry = split(raw);
    if (entry.host === '') return false;
    if (entry.port !== undefined && entry.port !== target.port) return false;
    if (entry.host.startsWith('*.')) {
      const suffix = entry.host.slice(1); // ".example.com"
      return target.host.endsWith(suffix) && target.host.length > suffix.length;
    }
    return entry.host === target.host;
  });
}

const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' };

/** `host:port` of a URL with the scheme's default port filled in, so `host:443` entries match `https://host/`. */
export function urlHostPort(url: URL): string {
  return `${url.hostname}:${url.port || DEFAULT_PORT[url.protocol] || ''}`;
}
