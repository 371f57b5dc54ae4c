/**
 * Silences (maintenance windows) through the contract: HTTP on the real
 * server as the identity of a personal token, the CLI, a signed Slack slash
 * command and the console page; the acts recorded on the automation chain
 * and `firebreak audit verify` passing; SilenceCache against the real
 * database with its clock moved.
 */
import { rm } from 'node:fs/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identity } from '../../src/access/index.js';
import { parseSilenceMatchers, SilenceCache, Silences, matcherText } from '../../src/rails/index.js';
import { DatabaseClock } from '../../src/store/index.js';
import { Timeline } from '../../src/timeline/index.js';
import { testAuditKey } from '../helpers/audit.js';
import { advanceDatabaseClock, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { commandBody, FORM, postSlack, SIGNING_SECRET, SRE1, testPolicies } from '../slack/helpers.js';
import { startFakeSlack, type FakeSlack } from '../slack/fake-slack.js';
import { writePlaybooks } from '../timeline/fixture.js';

const API_TOKEN = `svc-${Math.random().toString(36).slice(2)}-0123456789abcdef0123456789`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const audit = testAuditKey();

let db: TestDatabase;
let server: ServerProcess;
let slack: FakeSlack;
let dir: string;
let policies: string;
const tokens: Record<string, string> = {};

const PLAYBOOK = `
name: silence-target
triggers:
  - matchers: ['alertname="SilenceTarget"']
steps:
  - id: note
    action: note
    with: { text: "hello" }
`;

async function automationEvents(kind?: string): Promise<Array<{ kind: string; actor: string; data: any }>> {
  const { rows } = await db.pool.query(`select kind, actor, data from timeline_events where chain_id = 'automation' ${kind ? 'and kind = $1' : ''} order by seq`, kind ? [kind] : []);
  return rows;
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await writePlaybooks({ 'silence-target.yaml': PLAYBOOK });
  policies = await testPolicies();
  slack = await startFakeSlack();
  server = await startServer({
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_POLICIES: policies,
    FIREBREAK_API_TOKEN: API_TOKEN,
    FIREBREAK_AUDIT_KEY: audit.hex,
    SLACK_BOT_TOKEN: 'xoxb-test-token',
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: slack.apiUrl,
    SLACK_CHANNEL: '#firebreak',
  });
  // alice is SRE, carol on-call (policies/data.json); erin is in no group.
  for (const user of ['alice', 'carol', 'erin']) {
    const res = await runCli(['token', 'create', user], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: audit.hex });
    expect(res.code, res.stderr).toBe(0);
    tokens[user] = res.stdout.trim();
  }
});

afterAll(async () => {
  await server?.stop();
  await slack?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (policies) await rm(policies, { recursive: true, force: true });
});

describe('silences over HTTP', () => {
  let id: string;

  it('creates a silence as the token identity, in any of Alertmanager matcher forms, and lists it', async () => {
    const res = await httpJson('POST', `${server.url}/api/silences`, { matchers: '{service="checkout", env=~"prod|stage"}', for: '2h', reason: 'database maintenance' }, bearer(tokens.carol!));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ matchers: ['service="checkout"', 'env=~"prod|stage"'], reason: 'database maintenance', createdBy: 'token:carol', state: 'active', expiredAt: null, expiredBy: null });
    expect(Date.parse(res.body.endsAt) - Date.parse(res.body.startsAt)).toBe(2 * 3_600_000);
    id = res.body.id;

    // Alertmanager's v2 body: objects, `comment`, `createdBy` equal to who authenticated, a future start (pending).
    const start = new Date(Date.now() + 3_600_000).toISOString();
    const end = new Date(Date.now() + 5 * 3_600_000).toISOString();
    const am = await httpJson(
      'POST',
      `${server.url}/api/silences`,
      { matchers: [{ name: 'team', value: 'payments', isRegex: false, isEqual: true }, { name: 'severity', value: 'info|debug', isRegex: true, isEqual: false }], startsAt: start, endsAt: end, comment: 'payments freeze', createdBy: 'alice' },
      bearer(tokens.alice!),
    );
    expect(am.status, JSON.stringify(am.body)).toBe(201);
    expect(am.body).toMatchObject({ matchers: ['team="payments"', 'severity!~"info|debug"'], reason: 'payments freeze', createdBy: 'token:alice', state: 'pending' });

    const list = await httpJson('GET', `${server.url}/api/silences`, undefined, bearer(tokens.erin!));
    expect(list.status).toBe(200);
    expect(list.body.items.map((s: any) => [s.id, s.state])).toEqual([
      [am.body.id, 'pending'],
      [id, 'active'],
    ]);
    const one = await httpJson('GET', `${server.url}/api/silences/${id}`, undefined, bearer(tokens.erin!));
    expect(one.body).toMatchObject({ id, state: 'active', createdBy: 'token:carol' });
  });

  it('refuses bad matchers, a missing reason, bad durations and a createdBy that is not who authenticated (400)', async () => {
    const post = (body: unknown, token = tokens.alice!) => httpJson('POST', `${server.url}/api/silences`, body, bearer(token));
    const bad = await post({ matchers: ['service="checkout"', 'env=~"(unclosed"'], for: '1h', reason: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.body.details[0].path).toBe('matchers[1]');
    expect(bad.body.details[0].message).toMatch(/invalid regex/);
    const empty = await post({ matchers: 'foo=""', for: '1h', reason: 'x' });
    expect(empty.status).toBe(400);
    expect(empty.body.error).toMatch(/must not match the empty string/);
    expect((await post({ matchers: [], for: '1h', reason: 'x' })).body.details[0].path).toBe('matchers');
    const noReason = await post({ matchers: 'service="checkout"', for: '1h' });
    expect(noReason.status).toBe(400);
    expect(noReason.body.details[0].path).toBe('reason');
    const tooLong = await post({ matchers: 'service="checkout"', for: '31d', reason: 'x' });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error).toMatch(/at most 30 days/);
    expect((await post({ matchers: 'service="checkout"', for: '0s', reason: 'x' })).status).toBe(400);
    expect((await post({ matchers: 'service="checkout"', for: 'soon', reason: 'x' })).body.details[0].path).toBe('for');
    const past = await post({ matchers: 'service="checkout"', endsAt: new Date(Date.now() - 60_000).toISOString(), reason: 'x' });
    expect(past.status).toBe(400);
    expect(past.body.error).toMatch(/endsAt must be in the future/);
    const someoneElse = await post({ matchers: 'service="checkout"', for: '1h', reason: 'x', createdBy: 'bob' });
    expect(someoneElse.status).toBe(400);
    expect(someoneElse.body.details[0].path).toBe('createdBy');
    // None of them was stored.
    const all = await httpJson('GET', `${server.url}/api/silences?state=all`, undefined, bearer(tokens.alice!));
    expect(all.body.items).toHaveLength(2);
  });

  it('refuses an identity the policy does not let manage silences (403), and records the refusal', async () => {
    const res = await httpJson('POST', `${server.url}/api/silences`, { matchers: 'service="checkout"', for: '1h', reason: 'I am not on call' }, bearer(tokens.erin!));
    expect(res.status).toBe(403);
    expect(res.body.action).toBe('silence.create');
    const del = await httpJson('DELETE', `${server.url}/api/silences/${id}`, undefined, bearer(tokens.erin!));
    expect(del.status).toBe(403);
    const { rows } = await db.pool.query(`select actor, data->>'action' as action from timeline_events where chain_id = 'access' and kind = 'access.denied' order by seq`);
    expect(rows).toEqual(expect.arrayContaining([{ actor: 'token:erin', action: 'silence.create' }, { actor: 'token:erin', action: 'silence.expire' }]));
    expect((await httpJson('GET', `${server.url}/api/silences/${id}`, undefined, bearer(tokens.erin!))).body.state).toBe('active');
  });

  it('expires a silence as the token identity; expiring it again is a 409', async () => {
    const res = await httpJson('DELETE', `${server.url}/api/silences/${id}`, { reason: 'maintenance done early' }, bearer(tokens.alice!));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ id, state: 'expired', expiredBy: 'token:alice' });
    expect(res.body.expiredAt).toBeTruthy();
    const again = await httpJson('DELETE', `${server.url}/api/silences/${id}`, undefined, bearer(tokens.alice!));
    expect(again.status).toBe(409);
    expect(again.body.error).toMatch(/already expired at .*\(by token:alice\)/);
    expect((await httpJson('DELETE', `${server.url}/api/silences/00000000-0000-4000-8000-000000000000`, undefined, bearer(tokens.alice!))).status).toBe(404);
    const current = await httpJson('GET', `${server.url}/api/silences`, undefined, bearer(tokens.alice!));
    expect(current.body.items.map((s: any) => s.id)).not.toContain(id);
    const expired = await httpJson('GET', `${server.url}/api/silences?state=expired`, undefined, bearer(tokens.alice!));
    expect(expired.body.items.map((s: any) => s.id)).toEqual([id]);
  });

  it('records who created and expired each silence, and why, on the automation chain', async () => {
    const created = await automationEvents('silence.created');
    expect(created.map((e) => [e.actor, e.data.matchers, e.data.reason])).toEqual([
      ['token:carol', ['service="checkout"', 'env=~"prod|stage"'], 'database maintenance'],
      ['token:alice', ['team="payments"', 'severity!~"info|debug"'], 'payments freeze'],
    ]);
    const expired = await automationEvents('silence.expired');
    expect(expired).toEqual([{ kind: 'silence.expired', actor: 'token:alice', data: { silenceId: id, matchers: ['service="checkout"', 'env=~"prod|stage"'], reason: 'maintenance done early' } }]);
  });
});

describe('silences from the CLI', () => {
  it('adds, lists and expires as FIREBREAK_TOKEN', async () => {
    const env = { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.carol! };
    const add = await runCli(['silence', 'add', 'service="search"', 'env=~"prod.*"', '--for', '90m', '--reason', 'reindexing'], env);
    expect(add.code, add.stderr).toBe(0);
    const id = add.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const list = await runCli(['silence', 'list'], env);
    expect(list.code, list.stderr).toBe(0);
    const line = list.stdout.split('\n').find((l) => l.startsWith(id));
    expect(line).toContain('service="search",env=~"prod.*"');
    expect(line).toContain('token:carol');
    expect(line).toContain('reindexing');
    const json = JSON.parse((await runCli(['silence', 'list', '--json'], env)).stdout);
    expect(json.find((s: any) => s.id === id)).toMatchObject({ state: 'active', createdBy: 'token:carol' });

    const noReason = await runCli(['silence', 'add', 'service="search"', '--for', '1h'], env);
    expect(noReason.code).toBe(1);
    expect(noReason.stderr).toMatch(/reason/);
    const refused = await runCli(['silence', 'add', 'service="search"', '--for', '1h', '--reason', 'x'], { ...env, FIREBREAK_TOKEN: tokens.erin! });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/HTTP 403/);

    const expire = await runCli(['silence', 'expire', id, '--reason', 'done'], env);
    expect(expire.code, expire.stderr).toBe(0);
    expect(expire.stdout).toContain('by token:carol');
    expect((await runCli(['silence', 'list'], env)).stdout).not.toContain(id);
    expect((await runCli(['silence', 'list', '--all'], env)).stdout).toContain(id);
    const again = await runCli(['silence', 'expire', id], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/HTTP 409/);
  });
});

describe('silences from Slack', () => {
  it('creates, lists and expires as the Slack user, and refuses someone the policy does not allow', async () => {
    const created = await postSlack(server, { body: commandBody('silence service=“checkout” env=~"prod|stage" for 2h deploy of v42', SRE1), contentType: FORM });
    expect(created.status).toBe(200);
    expect(created.body.response_type).toBe('ephemeral');
    expect(created.body.text).toContain('service="checkout", env=~"prod|stage"');
    const id = /Silence `([0-9a-f-]{36})`/.exec(created.body.text)?.[1];
    expect(id, created.body.text).toBeTruthy();
    const view = await httpJson('GET', `${server.url}/api/silences/${id}`, undefined, bearer(tokens.alice!));
    expect(view.body).toMatchObject({ createdBy: 'slack:U0SRE1', reason: 'deploy of v42', state: 'active' });

    const list = await postSlack(server, { body: commandBody('silence list', SRE1), contentType: FORM });
    expect(list.body.text).toContain(id!.slice(0, 8));
    expect(list.body.text).toContain('deploy of v42');

    const usage = await postSlack(server, { body: commandBody('silence service="checkout" 2h', SRE1), contentType: FORM });
    expect(usage.body.text).toMatch(/for how long/);
    const refused = await postSlack(server, { body: commandBody('silence service="checkout" for 1h because', 'UNOBODY1'), contentType: FORM });
    expect(refused.body.text).toMatch(/You may not manage silences/);

    const expired = await postSlack(server, { body: commandBody(`silence expire ${id!.slice(0, 8)} deploy finished`, SRE1), contentType: FORM });
    expect(expired.body.text).toContain('expired');
    const after = await httpJson('GET', `${server.url}/api/silences/${id}`, undefined, bearer(tokens.alice!));
    expect(after.body).toMatchObject({ state: 'expired', expiredBy: 'slack:U0SRE1' });
    const events = await automationEvents('silence.expired');
    expect(events.at(-1)).toMatchObject({ actor: 'slack:U0SRE1', data: { silenceId: id, reason: 'deploy finished' } });

    const help = await postSlack(server, { body: commandBody('help', SRE1), contentType: FORM });
    expect(help.body.text).toContain('/firebreak silence <matcher>... for <duration> <reason>');
  });
});

describe('the console Silences page', () => {
  it('lists active and pending silences with their matchers, end, reason, author and an Expire button', async () => {
    const created = await httpJson('POST', `${server.url}/api/silences`, { matchers: 'service="billing"', for: '3h', reason: 'ledger <migration>' }, bearer(tokens.alice!));
    expect(created.status).toBe(201);
    const res = await httpJson('GET', `${server.url}/silences`, undefined, bearer(tokens.alice!));
    expect(res.status).toBe(200);
    const page = res.body as string;
    expect(page).toContain('<h1>Silences</h1>');
    expect(page).toContain('<code class="matcher">service=&quot;billing&quot;</code>');
    expect(page).toContain('ledger &lt;migration&gt;');
    expect(page).toContain('token:alice');
    expect(page).toContain(`data-action="expire-silence" data-silence="${created.body.id}"`);
    expect(page).toContain(`datetime="${created.body.endsAt}"`);
    expect(page).toContain('id="silence-form"');
    expect(page).toContain('<a href="/silences">Silences</a>');
    const runs = await httpJson('GET', `${server.url}/`, undefined, bearer(tokens.alice!));
    expect(runs.body).toContain('<a href="/silences">Silences</a>');
  });

  it('adds and expires as the console session, with the console header the CSRF rule wants', async () => {
    const login = await request(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: tokens.carol!, next: '/silences' }).toString() });
    await login.body.text();
    expect(login.statusCode).toBe(303);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const body = { matchers: 'service="console"', for: '45m', reason: 'from the console form' };
    // What another page could send with the cookie: refused.
    const forged = await httpJson('POST', `${server.url}/api/silences`, body, { cookie });
    expect(forged.status).toBe(403);
    const added = await httpJson('POST', `${server.url}/api/silences`, body, { cookie, 'x-firebreak-console': '1', origin: server.url });
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    expect(added.body.createdBy).toBe('token:carol');
    const page = await httpJson('GET', `${server.url}/silences`, undefined, { cookie });
    expect(page.body).toContain('from the console form');
    const expired = await httpJson('DELETE', `${server.url}/api/silences/${added.body.id}`, { reason: 'clicked Expire' }, { cookie, 'x-firebreak-console': '1', origin: server.url });
    expect(expired.status).toBe(200);
    expect(expired.body.expiredBy).toBe('token:carol');
    const fragment = await httpJson('GET', `${server.url}/silences`, undefined, { cookie, 'x-firebreak-fragment': '1' });
    expect(fragment.body).not.toContain('from the console form');
    expect(fragment.body).not.toContain('<html');
  });
});

describe('audit', () => {
  it('firebreak audit verify passes with the silence events on the automation chain', async () => {
    expect((await automationEvents()).length).toBeGreaterThanOrEqual(5);
    const res = await runCli(['audit', 'verify'], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: audit.hex });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    // The access chain and the automation chain (no run was started here).
    expect(res.stdout).toMatch(/^audit ok: 2 chain\(s\)/);
  });
});

describe('silence matchers', () => {
  const texts = (input: unknown) => parseSilenceMatchers(input).map(matcherText);

  it('reads every Alertmanager form and prints them back as Alertmanager text', () => {
    expect(texts('service=checkout')).toEqual(['service="checkout"']);
    expect(texts('{ service="checkout" , env=~"prod|stage" }')).toEqual(['service="checkout"', 'env=~"prod|stage"']);
    expect(texts(['a="x, y"', 'b!="q\\"uote"'])).toEqual(['a="x, y"', 'b!="q\\"uote"']);
    expect(texts([{ name: 'code', value: '5\\d\\d', isRegex: true }])).toEqual(['code=~"5\\\\d\\\\d"']);
    // Printed text parses back to the same matcher.
    const printed = texts([{ name: 'code', value: '5\\d\\d', isRegex: true, isEqual: false }, 'service="x"']);
    expect(parseSilenceMatchers(printed)[0]).toMatchObject({ name: 'code', op: '!~', value: '5\\d\\d' });
  });

  it('refuses what Alertmanager refuses, naming the matcher', () => {
    expect(() => parseSilenceMatchers('{}')).toThrow(/invalid silence matchers|at least one matcher/);
    expect(() => parseSilenceMatchers(['env=~".*"', 'team=""'])).toThrow(/must not match the empty string/);
    expect(() => parseSilenceMatchers('{service="x"')).toThrow(/invalid silence matchers/);
    expect(() => parseSilenceMatchers([{ name: 'x', value: 1 }])).toThrow(/invalid silence matchers/);
    expect(parseSilenceMatchers(['env=~".*"', 'team="a"'])).toHaveLength(2);
  });
});

describe('SilenceCache against the database', () => {
  let cdb: TestDatabase;
  let silences: Silences;
  const alice = identity('token', 'alice', { groups: ['sre'] });
  // The acts' policy is not what is tested here: an Access that allows everything.
  const access = { require: async () => {} } as unknown as ConstructorParameters<typeof Silences>[0]['access'];

  beforeAll(async () => {
    cdb = await createTestDatabase();
    silences = new Silences({ pool: cdb.pool, timeline: new Timeline(testAuditKey().key), access });
  });
  afterAll(async () => {
    await cdb?.drop();
  });

  it('matches with =, !=, =~ and !~; pending and expired silences do not match; ends when the database clock passes ends_at', async () => {
    const cache = new SilenceCache(cdb.pool, new DatabaseClock(), { maxAgeMs: 0 });
    expect(await cache.match({ service: 'checkout' })).toBeUndefined();
    const eq = await silences.create(alice, { matchers: ['service="checkout"', 'env!="dev"'], duration: '1h', reason: 'eq' });
    const re = await silences.create(alice, { matchers: 'team=~"pay.*", severity!~"info|debug"', duration: '2h', reason: 're' });
    const pending = await silences.create(alice, { matchers: 'service="search"', startsAt: new Date(Date.now() + 2 * 3_600_000).toISOString(), duration: '1h', reason: 'later' });
    const gone = await silences.create(alice, { matchers: 'service="ledger"', duration: '1h', reason: 'gone' });
    await silences.expire(alice, gone.id, 'no longer needed');

    expect(await cache.match({ service: 'checkout', env: 'prod' })).toMatchObject({ id: eq.id, matchers: ['service="checkout"', 'env!="dev"'], createdBy: 'token:alice', reason: 'eq', endsAt: eq.endsAt });
    expect(await cache.match({ service: 'checkout' })).toMatchObject({ id: eq.id }); // a missing env is "" (!= "dev")
    expect(await cache.match({ service: 'checkout', env: 'dev' })).toBeUndefined();
    expect(await cache.match({ service: 'checkouts', env: 'prod' })).toBeUndefined();
    expect(await cache.match({ team: 'payments', severity: 'critical' })).toMatchObject({ id: re.id });
    expect(await cache.match({ team: 'payments', severity: 'info' })).toBeUndefined();
    expect(await cache.match({ team: 'xpay', severity: 'critical' })).toBeUndefined(); // anchored
    expect(await cache.match({ service: 'search' })).toBeUndefined(); // pending
    expect(await cache.match({ service: 'ledger' })).toBeUndefined(); // expired by a person

    await advanceDatabaseClock(cdb.pool, '90 minutes');
    expect(await cache.match({ service: 'checkout', env: 'prod' })).toBeUndefined(); // past ends_at
    expect(await cache.match({ team: 'payments' })).toMatchObject({ id: re.id });
    await advanceDatabaseClock(cdb.pool, '1 hour');
    expect(await cache.match({ service: 'search' })).toMatchObject({ id: pending.id }); // started
    expect(await cache.match({ team: 'payments' })).toBeUndefined();
    expect((await silences.list()).map((s) => s.id)).toEqual([pending.id]);
  });

  it('loads at most once per maxAgeMs; acts through Silences invalidate it at once', async () => {
    const cache = new SilenceCache(cdb.pool, new DatabaseClock(), { maxAgeMs: 60_000 });
    expect(await cache.match({ service: 'cached' })).toBeUndefined();
    // Written behind the cache's back (another replica): not seen until the cache is stale or invalidated.
    await cdb.pool.query(`insert into silences (id, matchers, ends_at, reason, created_by) values (gen_random_uuid(), '[{"name":"service","op":"=","value":"cached"}]', fb_now() + interval '1 hour', 'elsewhere', 'token:bob')`);
    expect(await cache.match({ service: 'cached' })).toBeUndefined();
    cache.invalidate();
    expect(await cache.match({ service: 'cached' })).toMatchObject({ createdBy: 'token:bob' });

    const own = new Silences({ pool: cdb.pool, timeline: new Timeline(testAuditKey().key), access, cache });
    expect(await cache.match({ service: 'own' })).toBeUndefined();
    const s = await own.create(alice, { matchers: 'service="own"', duration: '1h', reason: 'mine' });
    expect(await cache.match({ service: 'own' })).toMatchObject({ id: s.id });
    await own.expire(alice, s.id);
    expect(await cache.match({ service: 'own' })).toBeUndefined();
  });
});
