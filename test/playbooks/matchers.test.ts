import { describe, expect, it } from 'vitest';
import type { Alert } from '../../src/ingest/types.js';
import { matchesAlert, matcherHolds, parseMatcher, parsePlaybookSource, scheduleTriggers, type Playbook } from '../../src/playbooks/index.js';

const holds = (m: string, labels: Record<string, string>) => matcherHolds(parseMatcher(m), labels);

describe('Alertmanager matcher syntax', () => {
  it('parses the four operators, quoted or not, with spaces around the operator', () => {
    expect(parseMatcher('alertname="HighErrorRate"')).toEqual({ name: 'alertname', op: '=', value: 'HighErrorRate' });
    expect(parseMatcher('severity != warning')).toEqual({ name: 'severity', op: '!=', value: 'warning' });
    expect(parseMatcher('severity=~critical|page')).toMatchObject({ op: '=~', value: 'critical|page' });
    expect(parseMatcher('env!~"dev|staging"')).toMatchObject({ op: '!~', value: 'dev|staging' });
    expect(parseMatcher('msg="say \\"hi\\" \\\\ bye"').value).toBe('say "hi" \\ bye');
    expect(parseMatcher('path=~"/api\\.v[0-9]+"').value).toBe('/api\\.v[0-9]+');
  });

  it('keeps the compiled regex out of the serialised model', () => {
    expect(JSON.stringify(parseMatcher('a=~"x.*"'))).toBe('{"name":"a","op":"=~","value":"x.*"}');
  });

  it('rejects malformed matchers', () => {
    for (const bad of ['alertname', '="x"', '9abc="x"', 'a=~"("', 'a="x', 'a="x"y"', 'a=x"y', 'a==b']) {
      expect(() => parseMatcher(bad), bad).toThrow(/bad matcher/);
    }
  });

  it('equality and inequality', () => {
    expect(holds('a="x"', { a: 'x' })).toBe(true);
    expect(holds('a="x"', { a: 'xy' })).toBe(false);
    expect(holds('a!="x"', { a: 'y' })).toBe(true);
    expect(holds('a!="x"', { a: 'x' })).toBe(false);
  });

  it('regexes are fully anchored, like Alertmanager', () => {
    expect(holds('severity=~"crit"', { severity: 'critical' })).toBe(false);
    expect(holds('severity=~"crit.*"', { severity: 'critical' })).toBe(true);
    expect(holds('severity=~"critical|page"', { severity: 'page' })).toBe(true);
    expect(holds('severity=~"critical|page"', { severity: 'pager' })).toBe(false);
    expect(holds('severity!~"critical|page"', { severity: 'warning' })).toBe(true);
    expect(holds('severity!~"critical|page"', { severity: 'critical' })).toBe(false);
  });

  it('matches with RE2 semantics: linear time on a label built to make a backtracking engine explode', () => {
    // (a+)+$ against "aaaa...b" takes exponential time in JS RegExp; RE2 answers at once.
    const m = parseMatcher('service=~"(a+)+"');
    const started = process.hrtime.bigint();
    expect(matcherHolds(m, { service: `${'a'.repeat(50_000)}b` })).toBe(false);
    expect(matcherHolds(m, { service: 'a'.repeat(50_000) })).toBe(true);
    // A loose bound: a backtracking engine would not finish this in minutes.
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(10_000);
  });

  it('refuses what RE2 (and so Alertmanager) refuses: lookaround, backreferences', () => {
    for (const bad of ['a=~"(?=x)y"', 'a=~"(?!x)"', 'a=~"(x)\\1"', 'a=~"(?<=x)y"']) {
      expect(() => parseMatcher(bad), bad).toThrow(/invalid regex \(RE2 syntax/);
    }
    // RE2 syntax JS lacks is fine: named groups the Go way, \z.
    expect(holds('a=~"(?P<x>ab)c"', { a: 'abc' })).toBe(true);
    expect(holds('a=~"\\Qa.b\\E"', { a: 'a.b' })).toBe(true);
    expect(holds('a=~"\\Qa.b\\E"', { a: 'axb' })).toBe(false);
  });

  it('a missing label is the empty string', () => {
    expect(holds('team=""', {})).toBe(true);
    expect(holds('team!=""', {})).toBe(false);
    expect(holds('team!="sre"', {})).toBe(true);
    expect(holds('team=~".*"', {})).toBe(true);
    expect(holds('team=~".+"', {})).toBe(false);
    expect(holds('team!~"sre"', {})).toBe(true);
  });
});

function load(yaml: string): Playbook {
  const { playbook, problems } = parsePlaybookSource('t.yaml', yaml, new Set(['note']));
  expect(problems).toEqual([]);
  return playbook!;
}

const alert = (source: Alert['source'], labels: Record<string, string>): Pick<Alert, 'source' | 'labels'> => ({ source, labels });
const STEPS = 'steps: [{ id: a, action: note, with: { text: hi } }]\n';

describe('matchesAlert', () => {
  const pb = load(`
name: t
triggers:
  - source: alertmanager
    matchers: [alertname="HighErrorRate", severity=~"critical|page"]
  - matchers: [alertname="Other"]
  - schedule: "0 * * * *"
${STEPS}`);

  it('needs every matcher of one trigger to hold', () => {
    expect(matchesAlert(pb, alert('alertmanager', { alertname: 'HighErrorRate', severity: 'page' }))).toBe(true);
    expect(matchesAlert(pb, alert('alertmanager', { alertname: 'HighErrorRate', severity: 'warning' }))).toBe(false);
    expect(matchesAlert(pb, alert('alertmanager', { severity: 'critical' }))).toBe(false);
  });

  it('a trigger with a source only matches that source; without one, any source', () => {
    expect(matchesAlert(pb, alert('grafana', { alertname: 'HighErrorRate', severity: 'page' }))).toBe(false);
    expect(matchesAlert(pb, alert('grafana', { alertname: 'Other' }))).toBe(true);
    expect(matchesAlert(pb, alert('pagerduty', { alertname: 'Other' }))).toBe(true);
  });

  it('a source-only trigger matches every alert from that source', () => {
    const all = load(`name: t\ntriggers: [{ source: datadog }]\n${STEPS}`);
    expect(matchesAlert(all, alert('datadog', { anything: 'x' }))).toBe(true);
    expect(matchesAlert(all, alert('generic', { anything: 'x' }))).toBe(false);
  });

  it('schedule triggers never match alerts, and a playbook without triggers matches nothing', () => {
    const cron = load(`name: t\ntriggers: [{ schedule: "*/5 * * * *", timezone: UTC }]\n${STEPS}`);
    expect(matchesAlert(cron, alert('generic', {}))).toBe(false);
    expect(scheduleTriggers(cron)).toEqual([{ kind: 'schedule', schedule: '*/5 * * * *', timezone: 'UTC' }]);
    expect(scheduleTriggers(pb)).toEqual([{ kind: 'schedule', schedule: '0 * * * *' }]);
    expect(matchesAlert(load(`name: t\n${STEPS}`), alert('generic', {}))).toBe(false);
  });
});
