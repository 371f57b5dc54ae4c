/**
 * The automation safety rails through the contract (issue 16): storm limits
 * and cooldowns counted in the database (two replicas racing on one limit),
 * an outcome for every alert (webhook answer, GET /api/alerts, /metrics), the
 * kill switch from the CLI and HTTP (held runs, who/when/why, authorize), the
 * circuit breaker, dry runs reporting without counting, and every act on the
 * automation chain verified by `audit verify`.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { advanceDatabaseClock, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const AUDIT_KEY = 'ab'.repeat(32);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const uniq = () => Math.random().toString(36).slice(2, 10);

const PLAYBOOKS: Record<string, string> = {
  'storm.yaml': `
name: storm
triggers:
  - matchers: ['alertname="Storm"']
limits:
  key: \${{ alert.labels.service }}
  max_runs: 2
  per: 1h
steps:
  - id: note
    action: note
    with: { text: "storm" }
`,
  'race.yaml': `
name: race
triggers:
  - matchers: ['alertname="Race"']
limits:
  max_runs: 3
  per: 1h
steps:
  - id: note
    action: note
    with: { text: "race" }
`,
  'cool.yaml': `
name: cool
triggers:
  - matchers: ['alertname="Cool"']
limits:
  key: \${{ alert.labels.service }}
  cooldown: 10m
steps:
  - id: note
    action: note
    with: { text: "cool" }
`,
  'slow.yaml': `
name: slow
triggers:
  - matchers: ['alertname="Slow"']
steps:
  - id: first
    action: wait
    with: { duration: 1500ms }
  - id: second
    action: note
    with: { text: "second" }
`,
  'plain.yaml': `
name: plain
triggers:
  - matchers: ['alertname="Plain"']
steps:
  - id: note
    action: note
    with: { text: "plain" }
`,
  'tick.yaml': `
name: tick
triggers:
  - schedule: "* * * * * *"
steps:
  - id: note
    action: note
    with: { text: "tick" }
`,
  'flaky.yaml': `
name: flaky
triggers:
  - matchers: ['alertname="Flaky"']
limits:
  key: \${{ alert.labels.service }}
circuit_breaker:
  failures: 2
  then: pause
steps:
  - id: restart
    action: exec
    retry: { attempts: 1 }
    with: { script: fail.sh }
`,
};

let db: TestDatabase;
let dir: string;
let server: ServerProcess;
let replica: ServerProcess;
const tokens: Record<string, string> = {};

async function fire(target: ServerProcess, labels: Record<string, string>, startsAt = new Date().toISOString()) {
  const res = await httpJson('POST', `${target.url}/hooks/generic`, { labels, annotations: { summary: `${labels.alertname} on ${labels.service ?? '-'}` }, startsAt });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body as { startedRuns: string[]; outcomes: Array<{ playbook: string | null; outcome: string; runId?: string }> };
}

async function alerts(query = 'limit=200') {
  const res = await httpJson('GET', `${server.url}/api/alerts?${query}`, undefined, bearer(tokens.alice!));
  expect(res.status).toBe(200);
  return res.body.items as Array<{ labels: Record<string, string>; outcomes: Array<{ playbook: string | null; outcome: string; runId?: string; reason: string }> }>;
}

async function run(id: string) {
  return (await httpJson('GET', `${server.url}/api/runs/${id}`, undefined, bearer(tokens.alice!))).body as { status: string; steps: Array<{ id: string; status: string }> };
}

async function automationEvents() {
  const { rows } = await db.pool.query<{ kind: string; actor: string; data: Record<string, unknown> }>(`select kind, actor, data from timeline_events where chain_id = 'automation' order by seq`);
  return rows;
}

const cli = (token: string, ...args: string[]) => runCli(args, { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: token });

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await playbooksDir(PLAYBOOKS, { 'fail.sh': '#!/bin/sh\necho "restart failed" >&2\nexit 1\n' });
  const env = { DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_AUDIT_KEY: AUDIT_KEY, FIREBREAK_API_TOKEN: `svc-${uniq()}` };
  [server, replica] = await Promise.all([startServer(env), startServer({ ...env, FIREBREAK_WORKERS: '0' })]);
  // alice is SRE, carol on-call (policies/data.json); erin is in no group.
  for (const user of ['alice', 'carol', 'erin']) {
    const res = await runCli(['token', 'create', user], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: AUDIT_KEY });
    expect(res.code, res.stderr).toBe(0);
    tokens[user] = res.stdout.trim();
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([server?.stop(), replica?.stop()]);
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('storm limits and outcomes', () => {
  it('starts max_runs runs per key in the window, throttles the rest, and records why for every alert', async () => {
    const started: string[] = [];
    for (let i = 0; i < 4; i++) started.push(...(await fire(server, { alertname: 'Storm', service: 'checkout', instance: `i${i}` })).startedRuns);
    // Another key has a window of its own.
    const searchStarted = new Date().toISOString();
    const other = await fire(server, { alertname: 'Storm', service: 'search', instance: 'i0' }, searchStarted);
    expect(started).toHaveLength(2);
    expect(other.outcomes).toEqual([expect.objectContaining({ playbook: 'storm', outcome: 'started' })]);

    const items = (await alerts()).filter((a) => a.labels.alertname === 'Storm' && a.labels.service === 'checkout');
    const outcomes = items.map((a) => a.outcomes[0]!);
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['started', 'started', 'throttled', 'throttled']);
    const throttled = outcomes.find((o) => o.outcome === 'throttled')!;
    expect(throttled.reason).toMatch(/2 runs of key checkout started in the last 1h \(limits\.max_runs 2\)/);
    expect(throttled.runId).toBeUndefined();
    expect(outcomes.filter((o) => o.outcome === 'started').map((o) => o.runId).sort()).toEqual([...started].sort());

    // A re-send of an alert whose run exists is deduplicated, not counted again.
    const again = await fire(server, { alertname: 'Storm', service: 'search', instance: 'i0' }, searchStarted);
    expect(again.outcomes).toEqual([expect.objectContaining({ playbook: 'storm', outcome: 'deduplicated' })]);

    // An alert no playbook matches says so.
    const none = await fire(server, { alertname: 'NobodyCares', service: 'x' });
    expect(none.outcomes).toEqual([{ playbook: null, outcome: 'no_match' }]);
    const metrics = await httpJson('GET', `${server.url}/metrics`, undefined, bearer(tokens.alice!));
    expect(metrics.body).toMatch(/firebreak_alert_outcomes_total\{outcome="throttled",playbook="storm"\} 2/);
    expect(metrics.body).toMatch(/firebreak_alert_outcomes_total\{outcome="no_match",playbook=""\} 1/);
  });

  it('two replicas racing on one limit never start more than max_runs runs', async () => {
    const deliveries = Array.from({ length: 12 }, (_, i) => fire(i % 2 === 0 ? server : replica, { alertname: 'Race', service: 'race', instance: `r${i}` }));
    const answers = await Promise.all(deliveries);
    const started = answers.flatMap((a) => a.startedRuns);
    expect(started).toHaveLength(3);
    const { rows } = await db.pool.query(`select count(*)::int as n from runs where playbook = 'race'`);
    expect(rows[0].n).toBe(3);
    const kinds = answers.flatMap((a) => a.outcomes.map((o) => o.outcome));
    expect(kinds.filter((k) => k === 'throttled')).toHaveLength(9);
  });

  it('a cooldown holds new triggers for the key after a run ended, until it has passed', async () => {
    const first = await fire(server, { alertname: 'Cool', service: 'pay', instance: 'a' });
    expect(first.startedRuns).toHaveLength(1);
    await eventually(async () => (await run(first.startedRuns[0]!)).status === 'succeeded');
    const second = await fire(server, { alertname: 'Cool', service: 'pay', instance: 'b' });
    expect(second.outcomes).toEqual([expect.objectContaining({ playbook: 'cool', outcome: 'cooldown' })]);
    const reason = (await alerts()).find((a) => a.labels.alertname === 'Cool' && a.labels.instance === 'b')!.outcomes[0]!.reason;
    expect(reason).toMatch(/^cooldown 10m: a run for key pay ended at .*; new runs wait until /);
    // Another key is not cooling down.
    expect((await fire(server, { alertname: 'Cool', service: 'ledger', instance: 'a' })).startedRuns).toHaveLength(1);
    await advanceDatabaseClock(db.pool, '11 minutes');
    expect((await fire(server, { alertname: 'Cool', service: 'pay', instance: 'c' })).startedRuns).toHaveLength(1);
  });
});

describe('the kill switch', () => {
  it('pause from the CLI holds every new alert as `paused`; GET /api/automation says who, when and why; only SRE resume', async () => {
    const paused = await cli(tokens.carol!, 'pause', '--reason', 'bad deploy, hands off');
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/paused: all automation/);

    const shown = await cli(tokens.erin!, 'automation');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^ALL AUTOMATION PAUSED: all automation paused by token:carol at .*: bad deploy, hands off$/m);
    expect(shown.stdout).toMatch(/^storm: held \(all automation paused\); max 2 runs per 1h, per \$\{\{ alert\.labels\.service \}\}$/m);
    const status = (await httpJson('GET', `${server.url}/api/automation`, undefined, bearer(tokens.erin!))).body;
    expect(status).toMatchObject({ paused: true, pausedBy: 'token:carol', reason: 'bad deploy, hands off' });
    expect(Date.parse(status.pausedAt)).toBeGreaterThan(0);
    expect(status.playbooks.find((p: { name: string }) => p.name === 'plain')).toMatchObject({ paused: true, pause: null, pausedBy: 'token:carol', reason: 'bad deploy, hands off' });
    const playbooks = (await httpJson('GET', `${server.url}/api/playbooks`, undefined, bearer(tokens.erin!))).body.items;
    expect(playbooks.find((p: { name: string }) => p.name === 'storm')).toMatchObject({ paused: true, limits: { key: '${{ alert.labels.service }}', maxRuns: 2, per: '1h', cooldown: null } });

    const held = await fire(server, { alertname: 'Plain', service: 'api', instance: uniq() });
    expect(held.startedRuns).toEqual([]);
    expect(held.outcomes).toEqual([{ playbook: 'plain', outcome: 'paused' }]);
    const reason = (await alerts()).find((a) => a.labels.alertname === 'Plain')!.outcomes[0]!.reason;
    expect(reason).toMatch(/^all automation is paused by token:carol at .*: bad deploy, hands off$/);

    // The console says so on every page.
    const page = await httpJson('GET', `${server.url}/alerts`, undefined, bearer(tokens.erin!));
    expect(page.status).toBe(200);
    expect(page.body).toContain('All automation is PAUSED');
    expect(page.body).toContain('token:carol');

    // On-call may pull the brake, not release it.
    const refused = await cli(tokens.carol!, 'resume');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/403|not allowed|only SRE may resume/i);
    expect((await httpJson('POST', `${server.url}/api/resume`, {}, bearer(tokens.erin!))).status).toBe(403);
    // A name in the body is never an identity.
    expect((await httpJson('POST', `${server.url}/api/resume`, { user: 'alice' }, bearer(tokens.erin!))).status).toBe(400);

    // A run started by hand waits, and its timeline says why from the start.
    const manual = await cli(tokens.alice!, 'run-playbook', 'plain');
    expect(manual.code, manual.stderr).toBe(0);
    const manualId = /[0-9a-f]{8}-[0-9a-f-]{27}/.exec(manual.stdout)![0];
    await new Promise((r) => setTimeout(r, 500));
    expect((await run(manualId)).status).toBe('queued');
    const heldEvents = await db.pool.query(`select data from timeline_events where chain_id = $1 and kind = 'run.held'`, [manualId]);
    expect(heldEvents.rows[0]?.data).toMatchObject({ stepId: null, pausedBy: 'token:carol', reason: 'bad deploy, hands off' });

    const resumed = await cli(tokens.alice!, 'resume', '--reason', 'rolled back');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect((await httpJson('GET', `${server.url}/api/automation`, undefined, bearer(tokens.erin!))).body.paused).toBe(false);
    expect((await fire(server, { alertname: 'Plain', service: 'api', instance: uniq() })).startedRuns).toHaveLength(1);
    await eventually(async () => (await run(manualId)).status === 'succeeded');

    const events = await automationEvents();
    expect(events).toEqual(expect.arrayContaining([
      expect.objectContaining({ kind: 'automation.paused', actor: 'token:carol', data: expect.objectContaining({ playbook: null, reason: 'bad deploy, hands off' }) }),
      expect.objectContaining({ kind: 'automation.resumed', actor: 'token:alice', data: expect.objectContaining({ playbook: null, reason: 'rolled back', pausedBy: 'token:carol' }) }),
    ]));
  });

  it('a paused playbook lets its step in flight finish, starts no further step, and goes on after a resume', async () => {
    const fired = await fire(server, { alertname: 'Slow', service: 'web', instance: uniq() });
    const runId = fired.startedRuns[0]!;
    await eventually(async () => (await run(runId)).steps.find((s) => s.id === 'first')?.status === 'running');
    const pause = await httpJson('POST', `${server.url}/api/pause`, { playbook: 'slow', reason: 'investigating' }, bearer(tokens.carol!));
    expect(pause.status).toBe(201);
    expect(pause.body.pause).toMatchObject({ playbook: 'slow', pausedBy: 'token:carol', reason: 'investigating' });
    // Pausing again changes nothing and says so.
    expect((await httpJson('POST', `${server.url}/api/pause`, { playbook: 'slow', reason: 'again' }, bearer(tokens.alice!))).body).toMatchObject({ alreadyPaused: true, pause: { pausedBy: 'token:carol' } });

    await eventually(async () => (await run(runId)).steps.find((s) => s.id === 'first')?.status === 'succeeded');
    const { rows } = await eventually(async () => {
      const r = await db.pool.query<{ data: { stepId: string; pausedBy: string } }>(`select data from timeline_events where chain_id = $1 and kind = 'run.held'`, [runId]);
      return r.rowCount ? r : undefined;
    });
    expect(rows[0]!.data).toMatchObject({ stepId: 'second', pausedBy: 'token:carol' });
    await new Promise((r) => setTimeout(r, 500));
    expect((await run(runId)).steps.find((s) => s.id === 'second')?.status).toBe('pending');

    // Other playbooks are not held.
    expect((await fire(server, { alertname: 'Plain', service: 'api', instance: uniq() })).startedRuns).toHaveLength(1);

    const resumed = await httpJson('POST', `${server.url}/api/resume`, { playbook: 'slow', reason: 'all clear' }, bearer(tokens.alice!));
    expect(resumed.status).toBe(200);
    expect(resumed.body.resumed).toBe(true);
    await eventually(async () => (await run(runId)).status === 'succeeded');
  });

  it('a paused playbook skips its schedule ticks (no held runs pile up for the resume) and ticks again after it', async () => {
    const ticks = async () => (await db.pool.query<{ n: number }>(`select count(*)::int as n from runs where playbook = 'tick'`)).rows[0]!.n;
    await eventually(async () => (await ticks()) > 0, 10_000);
    expect((await httpJson('POST', `${server.url}/api/pause`, { playbook: 'tick', reason: 'quiet please' }, bearer(tokens.carol!))).status).toBe(201);
    await new Promise((r) => setTimeout(r, 1_200));
    const during = await ticks();
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await ticks()).toBe(during);
    expect((await httpJson('POST', `${server.url}/api/resume`, { playbook: 'tick' }, bearer(tokens.alice!))).status).toBe(200);
    await eventually(async () => (await ticks()) > during, 10_000);
    // Quiet again for the rest of the file.
    expect((await httpJson('POST', `${server.url}/api/pause`, { playbook: 'tick', reason: 'done with ticks' }, bearer(tokens.carol!))).status).toBe(201);
  });

  it('a dry run reports what the rails would do, without counting', async () => {
    // storm's window for checkout is full (first test): a real alert would be throttled.
    const res = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'storm', dryRun: true, source: 'generic', alert: { labels: { alertname: 'Storm', service: 'checkout', instance: 'dry' } } }, bearer(tokens.carol!));
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    const dryRunId = (res.body.items?.[0] ?? res.body).id as string;
    const { rows } = await db.pool.query<{ data: { rails?: { outcome: string; reason: string } } }>(`select data from timeline_events where chain_id = $1 and kind = 'run.created'`, [dryRunId]);
    expect(rows[0]!.data.rails).toMatchObject({ outcome: 'throttled', reason: expect.stringMatching(/^would be throttled: 2 runs for key checkout/) });
    // The run's timeline says it, next to its first event.
    const timeline = (await httpJson('GET', `${server.url}/api/runs/${dryRunId}/timeline?format=md`, undefined, bearer(tokens.carol!))).body as string;
    expect(timeline).toMatch(/would be throttled: 2 runs for key checkout started in the last 1h/);
    const { rows: counted } = await db.pool.query(`select count(*)::int as n from runs where playbook = 'storm' and limit_key = 'checkout'`);
    expect(counted[0].n).toBe(2);
  });
});

describe('silences', () => {
  it('a silence from the CLI suppresses matching alerts (stored, outcome `suppressed` naming it); others still start; expiring it ends that', async () => {
    const added = await cli(tokens.carol!, 'silence', 'add', 'service="maint"', '--for', '2h', '--reason', 'database maintenance');
    expect(added.code, added.stderr).toBe(0);
    const silenceId = /[0-9a-f-]{36}/.exec(added.stdout)![0];

    const silenced = await fire(server, { alertname: 'Plain', service: 'maint', instance: uniq() });
    expect(silenced.startedRuns).toEqual([]);
    expect(silenced.outcomes).toEqual([{ playbook: 'plain', outcome: 'suppressed' }]);
    const item = (await alerts()).find((a) => a.labels.service === 'maint')!;
    expect(item.outcomes[0]!.reason).toMatch(new RegExp(`^silenced by token:carol until .*service="maint".*${silenceId}.*: database maintenance$`));
    expect((await fire(server, { alertname: 'Plain', service: 'other', instance: uniq() })).startedRuns).toHaveLength(1);

    const expired = await cli(tokens.carol!, 'silence', 'expire', silenceId);
    expect(expired.code, expired.stderr).toBe(0);
    expect((await fire(server, { alertname: 'Plain', service: 'maint', instance: uniq() })).startedRuns).toHaveLength(1);
  });
});

describe('the circuit breaker', () => {
  it('pauses the playbook after `failures` failed runs in a row, says so in the run and on GET /api/automation, and waits for a person', async () => {
    const a = await fire(server, { alertname: 'Flaky', service: 'queue', instance: 'a' });
    await eventually(async () => (await run(a.startedRuns[0]!)).status === 'failed');
    const b = await fire(server, { alertname: 'Flaky', service: 'queue', instance: 'b' });
    const tripRun = b.startedRuns[0]!;
    await eventually(async () => (await run(tripRun)).status === 'failed');

    const status = await eventually(async () => {
      const s = (await httpJson('GET', `${server.url}/api/automation`, undefined, bearer(tokens.erin!))).body;
      return s.playbooks.find((p: { name: string; pause: unknown }) => p.name === 'flaky' && p.pause) ? s : undefined;
    });
    const flaky = status.playbooks.find((p: { name: string }) => p.name === 'flaky');
    expect(flaky).toMatchObject({ paused: true, pause: { source: 'circuit_breaker', pausedBy: 'circuit-breaker', runId: tripRun }, circuitBreaker: { failures: 2, then: 'pause' } });
    expect(flaky.pause.reason).toMatch(/2 failed runs in a row for queue/);
    const { rows } = await db.pool.query(`select kind from timeline_events where chain_id = $1 order by seq`, [tripRun]);
    expect(rows.map((r) => r.kind)).toContain('breaker.tripped');
    expect((await automationEvents()).map((e) => e.kind)).toEqual(expect.arrayContaining(['breaker.tripped']));

    const c = await fire(server, { alertname: 'Flaky', service: 'queue', instance: 'c' });
    expect(c.outcomes).toEqual([{ playbook: 'flaky', outcome: 'paused' }]);

    // A person resumes; the count starts again (one more failure does not trip it).
    expect((await cli(tokens.alice!, 'resume', 'flaky', '--reason', 'fixed the queue')).code).toBe(0);
    const d = await fire(server, { alertname: 'Flaky', service: 'queue', instance: 'd' });
    await eventually(async () => (await run(d.startedRuns[0]!)).status === 'failed');
    await new Promise((r) => setTimeout(r, 300));
    const after = (await httpJson('GET', `${server.url}/api/automation`, undefined, bearer(tokens.erin!))).body;
    expect(after.playbooks.find((p: { name: string }) => p.name === 'flaky').paused).toBe(false);
  });
});

describe('audit', () => {
  it('every pause, resume and breaker trip is on the automation chain, and `audit verify` passes', async () => {
    const kinds = (await automationEvents()).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['automation.paused', 'automation.resumed', 'breaker.tripped', 'silence.created', 'silence.expired']));
    // Reviewers read the same chain over HTTP, newest first.
    const page = await httpJson('GET', `${server.url}/api/audit/automation?limit=500`, undefined, bearer(tokens.erin!));
    expect(page.status).toBe(200);
    expect(page.body.items.map((e: { kind: string }) => e.kind)).toEqual([...kinds].reverse());
    expect(page.body.items.find((e: { kind: string }) => e.kind === 'silence.created')).toMatchObject({ actor: 'token:carol', data: { reason: 'database maintenance' } });
    const res = await runCli(['audit', 'verify'], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: AUDIT_KEY });
    expect(res.code, res.stdout + res.stderr).toBe(0);
  });
});
