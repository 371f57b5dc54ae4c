import { describe, expect, it } from 'vitest';
import { isHostAllowed, parseDuration } from '../../src/actions/index.js';

describe('isHostAllowed', () => {
  it('allows nothing with an empty list', () => {
    expect(isHostAllowed('example.com:443', [])).toBe(false);
  });

  it('lets a bare host entry allow any port', () => {
    expect(isHostAllowed('deploy.internal:8443', ['deploy.internal'])).toBe(true);
    expect(isHostAllowed('deploy.internal', ['deploy.internal'])).toBe(true);
    expect(isHostAllowed('other.internal:80', ['deploy.internal'])).toBe(false);
  });

  it('limits a host:port entry to that port', () => {
    expect(isHostAllowed('prometheus:9090', ['prometheus:9090'])).toBe(true);
    expect(isHostAllowed('prometheus:9091', ['prometheus:9090'])).toBe(false);
    expect(isHostAllowed('prometheus', ['prometheus:9090'])).toBe(false);
  });

  it('matches *.suffix against subdomains, not the apex or look-alikes', () => {
    const allow = ['*.corp.example'];
    expect(isHostAllowed('api.corp.example:443', allow)).toBe(true);
    expect(isHostAllowed('a.b.corp.example:443', allow)).toBe(true);
    expect(isHostAllowed('corp.example:443', allow)).toBe(false);
    expect(isHostAllowed('evilcorp.example:443', allow)).toBe(false);
    expect(isHostAllowed('api.corp.example.evil.com:443', allow)).toBe(false);
    expect(isHostAllowed('api.corp.example:8443', ['*.corp.example:443'])).toBe(false);
  });

  it('compares lowercased and ignores a trailing dot', () => {
    expect(isHostAllowed('API.Example.COM:443', ['api.example.com'])).toBe(true);
    expect(isHostAllowed('api.example.com', ['API.EXAMPLE.COM'])).toBe(true);
    expect(isHostAllowed('api.example.com.:443', ['api.example.com'])).toBe(true);
  });

  it('handles IPv6 literals', () => {
    expect(isHostAllowed('[::1]:8080', ['[::1]'])).toBe(true);
    expect(isHostAllowed('[::1]:8080', ['[::1]:8081'])).toBe(false);
  });
});

describe('parseDuration', () => {
  it('parses units, combinations and plain milliseconds', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration(1500)).toBe(1500);
  });

  it('refuses ambiguous or bad values', () => {
    expect(() => parseDuration('30')).toThrow(/invalid duration/);
    expect(() => parseDuration('soon')).toThrow(/invalid duration/);
    expect(() => parseDuration(-1)).toThrow(/invalid duration/);
  });
});
