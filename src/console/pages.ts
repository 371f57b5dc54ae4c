/** Server-rendered pages of the console. Everything interpolated is escaped (see html.ts). */
import type { ApprovalView, RunView } from '../engine/index.js';
import { formatDuration, formatOffset, formatUtc, type TimelineView } from '../timeline/index.js';
import { breakable, html, relativeTime, type SafeHtml } from './html.js';
import { LEGEND, timeAxisSvg } from './svg.js';

export const RUN_STATUSES = ['queued', 'running', 'waiting', 'succeeded', 'failed', 'aborted', 'cancelled'] as const;
const ACTIVE = new Set(['queued', 'running', 'waiting']);

/** Who is looking at the page, as the access guard established it. */
export interface Viewer {
  /** The actor answers are recorded as (`oidc:alice`, `local:alice`); null in local mode before a name is given. */
  actor: string | null;
  verified: boolean;
  /** Signed in with a console session (show Log out). */
  session: boolean;
  /** Local mode: no sign-in configured; the console asks for a name (unverified). */
  local: boolean;
  /** Pauses of automation in force (a banner on every page while there are any). */
  pauses?: ReadonlyArray<{ playbook: string | null; pausedBy: string; pausedAt: string; reason: string; source: string }>;
}

interface LayoutOptions {
  title: string;
  /** "runs" or "run:<id>": what the live-update script listens for. */
  live?: string;
  viewer: Viewer;
  active?: boolean;
}

function whoami(viewer: Viewer): SafeHtml {
  const unverified = viewer.actor && !viewer.verified ? html` <span class="badge dry" title="Local mode: a name given, not proven">unverified</span>` : '';
  return html`<div class="who">Acting as <strong id="whoami">${viewer.actor ?? 'nobody yet'}</strong>${unverified}${viewer.local ? html` <button type="button" id="change-user" class="link">change</button>` : ''}</div>`;
}

export function layout(options: LayoutOptions, body: SafeHtml): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · Firebreak</title>
<link rel="icon" href="/console/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console/app.css">
<script src="/console/app.js" defer></script>
</head>
<body${options.live ? html` data-live="${options.live}"` : ''}${options.active ? html` data-active="1"` : ''}${options.viewer.local && !options.viewer.session ? html` data-ask-name="1"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/">Firebreak</a>
  <nav aria-label="Main"><a href="/">Runs</a> <a href="/#approvals">Approvals</a> <a href="/alerts">Alerts</a> <a href="/silences">Silences</a> <a href="/automation">Automation</a></nav>
  ${whoami(options.viewer)}
  ${options.viewer.pauses?.some((p) => p.playbook === null) ? '' : html`<button type="button" class="pause-all" id="pause-all" data-action="pause">Pause automation</button>`}
  <span id="live-status" class="live-status" role="status" aria-live="polite"></span>
  ${options.viewer.session ? html`<form method="post" action="/logout" class="logout"><button type="submit" class="link">Log out</button></form>` : ''}
</header>
${pauseBanner(options.viewer)}
<main id="main">
${body}
</main>
<div id="flash" class="flash" role="alert" hidden></div>
${options.viewer.local ? html`<dialog id="user-dialog" aria-labelledby="user-dialog-title">
  <form method="dialog">
    <h2 id="user-dialog-title">Who are you?</h2>
    <p>No sign-in is set up (local mode), so your name is a claim: answers are recorded as <code>local:&lt;name&gt;</code>, marked unverified, and the policy checks that name. The server keeps it in your session until you close the browser or change it.</p>
    <label for="user-name">Your name</label>
    <input id="user-name" name="user" autocomplete="username" required pattern="[A-Za-z0-9._@+\\-]{1,64}" title="letters, digits and . _ @ + - (up to 64)">
    <div class="dialog-buttons"><button value="ok" class="primary">Save</button> <button value="cancel" formnovalidate>Cancel</button></div>
  </form>
</dialog>` : ''}
</body>
</html>`;
}

/** While automation is paused, every page says so: who paused what, when and why, with a Resume button. */
function pauseBanner(viewer: Viewer): SafeHtml | string {
  const pauses = viewer.pauses ?? [];
  if (pauses.length === 0) return '';
  const all = pauses.find((p) => p.playbook === null);
  return html`<div class="pause-banner" id="pause-banner" role="status" aria-live="polite">
  <strong>${all ? 'All automation is PAUSED' : `Automation is paused for ${pauses.length === 1 ? 'one playbook' : `${pauses.length} playbooks`}`}</strong>: no run starts and no further step starts until someone resumes it.
  <ul>${pauses.map(
    (p) => html`<li data-paused="${p.playbook ?? '*'}">${p.playbook ? html`Playbook <strong>${p.playbook}</strong>` : html`<strong>Everything</strong>`} paused by <strong>${p.pausedBy}</strong>${p.source === 'circuit_breaker' ? ' (circuit breaker)' : ''} at <time datetime="${p.pausedAt}">${formatUtc(p.pausedAt)} UTC</time>: ${p.reason}
      <button type="button" class="resume" data-action="resume" data-playbook="${p.playbook ?? ''}">Resume${p.playbook ? html` ${p.playbook}` : ' all'}</button></li>`,
  )}</ul>
</div>`;
}

export function timeTag(iso: string | null | undefined, now: number, options: { millis?: boolean } = {}): SafeHtml {
  if (!iso) return html`<span class="muted">—</span>`;
  return html`<time datetime="${iso}" title="${iso}">${formatUtc(iso, options)} UTC</time> <span class="rel" data-rel="${iso}">(${relativeTime(iso, now)})</span>`;
}

export function statusBadge(status: string): SafeHtml {
  return html`<span class="badge status-${status}">${status}</span>`;
}

const dryBadge = html`<span class="badge dry" title="Dry run: side effects were recorded, not sent">DRY RUN</span>`;

function preview(value: unknown, max = 1_500): string {
  const text = JSON.stringify(value ?? null, null, 2) ?? 'null';
  return text.length > max ? `${text.slice(0, max)}\n… (${text.length - max} more characters)` : text;
}

/** One pending approval with its Approve / Reject buttons. */
function approvalCard(a: ApprovalView, now: number, playbook?: string): SafeHtml {
  const request = (a.request ?? {}) as { playbook?: string; action?: string; impact?: string; params?: unknown; dryRun?: boolean };
  return html`<article class="approval-card" aria-labelledby="approval-${a.id}-title">
  <h3 id="approval-${a.id}-title">Step <code>${a.stepId}</code> (${request.action ?? '?'}${request.impact === 'high' ? ', high impact' : ''}) in <a href="/runs/${encodeURIComponent(a.runId)}">${request.playbook ?? playbook ?? 'run'} ${a.runId.slice(0, 8)}</a>${request.dryRun ? html` ${dryBadge}` : ''}</h3>
  <dl class="facts">
    <dt>Requested</dt><dd>${timeTag(a.requestedAt, now)}</dd>
    <dt>Expires</dt><dd>${timeTag(a.expiresAt, now)} (then ${a.onTimeout})</dd>
    <dt>Approvers</dt><dd>${a.approvers.join(', ') || 'any'}${a.minApprovals > 1 ? ` — ${a.minApprovals} approvals needed` : ''}</dd>
    <dt>Why</dt><dd>${a.reasons.length ? a.reasons.join('; ') : 'policy requires approval'}</dd>
  </dl>
  <details><summary>Exact request</summary><pre>${preview(request.params)}</pre></details>
  <div class="actions">
    <button type="button" class="approve" id="approve-${a.id}" data-action="approve" data-approval="${a.id}">Approve</button>
    <button type="button" class="reject" id="reject-${a.id}" data-action="reject" data-approval="${a.id}">Reject</button>
  </div>
</article>`;
}

function approvalsSection(approvals: ApprovalView[], now: number, heading: string): SafeHtml {
  return html`<section id="approvals" aria-labelledby="approvals-title">
  <h2 id="approvals-title">${heading} <span class="count">${approvals.length}</span></h2>
  ${approvals.length === 0 ? html`<p class="muted">Nothing is waiting for an answer.</p>` : approvals.map((a) => approvalCard(a, now))}
</section>`;
}

function stepDots(run: RunView): SafeHtml {
  return html`<span class="dots">${run.steps.map((s) => html`<span class="dot step-${s.status}" title="${s.id}: ${s.status}${s.attempts > 1 ? ` (${s.attempts} attempts)` : ''}"></span>`)}</span> <span class="sr-only">${run.steps.map((s) => `${s.id} ${s.status}`).join(', ')}</span>`;
}

/** A run a person should look at: stuck (no progress), or failed and not retried. */
export interface AttentionItem {
  run: RunView;
  /** Stuck: since when nothing happened, on which step. */
  stuck?: { since: string; stepId: string | null; thresholdMs: number };
}

/** How long a failed run stays on the "needs attention" list (unless retried). */
export const ATTENTION_FAILED_MS = 24 * 3_600_000;

function errorText(error: unknown): string {
  if (error && typeof error === 'object' && 'message' in error) return String((error as { message: unknown }).message);
  return error === null || error === undefined ? 'no error recorded' : String(error);
}

function attentionSection(items: AttentionItem[], now: number): SafeHtml {
  if (items.length === 0) return html``;
  return html`<section id="attention" aria-labelledby="attention-title">
  <h2 id="attention-title">Needs attention <span class="count">${items.length}</span></h2>
  <ul class="attention">
  ${items.map(({ run, stuck }) => {
    const link = html`<a href="/runs/${encodeURIComponent(run.id)}"><code>${run.id.slice(0, 8)}</code></a> ${run.playbook} ${statusBadge(run.status)}`;
    if (stuck) {
      return html`<li data-run="${run.id}" data-why="stuck">${link} <strong>stuck</strong>${stuck.stepId ? html` on <code>${stuck.stepId}</code>` : ''}: no progress since ${timeTag(stuck.since, now)} (limit ${formatDuration(stuck.thresholdMs)}). <span class="muted">Repair: <code>firebreak cancel ${run.id}</code>, then <code>firebreak retry ${run.id}</code>.</span></li>`;
    }
    const step = run.steps.find((s) => s.status === 'failed' || s.status === 'denied');
    return html`<li data-run="${run.id}" data-why="failed">${link}${step ? html` at <code>${step.id}</code>: ${preview(errorText(step.error), 300)}` : ''} <span class="muted">(${timeTag(run.finishedAt, now)}; <code>firebreak retry ${run.id}</code>)</span></li>`;
  })}
  </ul>
</section>`;
}

export interface RunsPageData {
  /** Stuck runs and recently failed ones, shown first. */
  attention?: AttentionItem[];
  runs: RunView[];
  approvals: ApprovalView[];
  filters: { status?: string; playbook?: string; limit: number };
  playbooks: string[];
  problem?: string;
  now: number;
}

/** The part of the runs page that live updates replace. */
export function runsLive(data: RunsPageData): SafeHtml {
  const { runs, now } = data;
  return html`${attentionSection(data.attention ?? [], now)}${approvalsSection(data.approvals, now, 'Waiting for approval')}
<section aria-labelledby="runs-title">
  <h2 id="runs-title">Runs <span class="count">${runs.length}</span></h2>
  ${
    runs.length === 0
      ? html`<p class="muted">No runs${data.filters.status || data.filters.playbook ? ' match these filters' : ' yet'}.</p>`
      : html`<table class="runs">
    <caption class="sr-only">Runs, newest first</caption>
    <thead><tr><th scope="col">Run</th><th scope="col">Playbook</th><th scope="col">Status</th><th scope="col">Trigger</th><th scope="col">Created (UTC)</th><th scope="col">Took</th><th scope="col">Steps</th></tr></thead>
    <tbody>
    ${runs.map(
      (r) => html`<tr class="run-row" data-run="${r.id}" data-status="${r.status}">
      <td><a href="/runs/${encodeURIComponent(r.id)}"><code>${r.id.slice(0, 8)}</code></a></td>
      <td>${r.playbook}${r.dryRun ? html` ${dryBadge}` : ''}</td>
      <td>${statusBadge(r.status)}</td>
      <td>${r.trigger}${r.startedBy ? html` <span class="muted">by ${r.startedBy}</span>` : ''}</td>
      <td>${timeTag(r.createdAt, now)}</td>
      <td>${r.finishedAt && r.createdAt ? formatDuration(Date.parse(r.finishedAt) - Date.parse(r.createdAt)) : ACTIVE.has(r.status) ? html`<span class="muted">active</span>` : '—'}</td>
      <td>${stepDots(r)}</td>
    </tr>`,
    )}
    </tbody>
  </table>`
  }
</section>`;
}

export function runsPage(data: RunsPageData, viewer: Viewer): SafeHtml {
  const f = data.filters;
  const body = html`<h1>Runs</h1>
<form class="filters" method="get" action="/" role="search" aria-label="Filter runs">
  <label for="f-status">Status</label>
  <select id="f-status" name="status">
    <option value="">any</option>
    ${RUN_STATUSES.map((s) => html`<option value="${s}"${f.status === s ? html` selected` : ''}>${s}</option>`)}
  </select>
  <label for="f-playbook">Playbook</label>
  <input id="f-playbook" name="playbook" list="playbook-names" value="${f.playbook ?? ''}" placeholder="any">
  <datalist id="playbook-names">${data.playbooks.map((p) => html`<option value="${p}"></option>`)}</datalist>
  <label for="f-limit">Show</label>
  <select id="f-limit" name="limit">${[25, 50, 100, 200].map((n) => html`<option value="${n}"${f.limit === n ? html` selected` : ''}>${n}</option>`)}</select>
  <button type="submit">Filter</button>
  ${f.status || f.playbook ? html`<a href="/">clear</a>` : ''}
</form>
${data.problem ? html`<p class="problem" role="alert">${data.problem}</p>` : ''}
<div id="live">${runsLive(data)}</div>`;
  return layout({ title: 'Runs', live: 'runs', viewer }, body);
}

export interface RunPageData {
  run: RunView;
  view: TimelineView;
  now: number;
  /** The run's playbook revision against the one loaded now. */
  revision?: RevisionInfo;
}

export interface RevisionInfo {
  hash: string;
  /** The revision loaded now (undefined: the playbook is not loaded any more). */
  current?: string;
  /** A unified diff from the run's revision to the current one ('' when they read the same). */
  diff: string;
}

function revisionFact(r: RevisionInfo | undefined): SafeHtml | string {
  if (!r) return '';
  const state = r.current === undefined ? 'the playbook is not loaded now' : r.current === r.hash ? 'current' : html`the playbook has changed since: now <code>${r.current.slice(0, 12)}</code>, <a href="#revision-diff">see the diff</a>`;
  return html`<dt>Revision</dt><dd><code title="${r.hash}">${r.hash.slice(0, 12)}</code> <span class="muted">(${state})</span></dd>`;
}

/** A unified diff, each line marked as added, removed or context. */
function revisionDiff(r: RevisionInfo | undefined): SafeHtml | string {
  if (!r || !r.diff || r.current === undefined || r.current === r.hash) return '';
  const lines = r.diff.split('\n').filter((l, i) => i > 1 || !/^(=+|Index:)/.test(l));
  const cls = (l: string) => (l.startsWith('+++') || l.startsWith('---') ? 'diff-file' : l.startsWith('@@') ? 'diff-hunk' : l.startsWith('+') ? 'diff-add' : l.startsWith('-') ? 'diff-del' : 'diff-ctx');
  return html`<details class="revision-diff" id="revision-diff" open>
  <summary>What changed in the playbook since this run's revision (<code>${r.hash.slice(0, 12)}</code> → <code>${r.current.slice(0, 12)}</code>)</summary>
  <p class="muted small">This run keeps executing its own revision; the change applies to runs started from now on.</p>
  <pre class="diff">${lines.map((l) => html`<span class="${cls(l)}">${l}</span>\n`)}</pre>
</details>`;
}

function durationsList(view: TimelineView): SafeHtml {
  const d = view.durations;
  const from = view.origin.kind === 'alert' ? 'Alert' : 'Run start';
  return html`<dl class="durations">
  <div><dt>${from} → first action</dt><dd>${formatDuration(d.alertToFirstActionMs)}${d.firstAction ? html` <span class="muted">(<code>${d.firstAction.stepId}</code>)</span>` : ''}</dd></div>
  <div><dt>${from} → mitigation${view.run.dryRun ? ' (simulated)' : ''}</dt><dd>${formatDuration(d.alertToMitigationMs)}${d.mitigation ? html` <span class="muted">(<code>${d.mitigation.stepId}</code>)</span>` : ''}</dd></div>
  <div><dt>Waiting for approvals</dt><dd>${formatDuration(d.approvalWaitMs)}</dd></div>
  <div><dt>Run total</dt><dd>${d.totalMs === null ? 'running' : formatDuration(d.totalMs)}</dd></div>
</dl>`;
}

/** The stored status, except where the timeline knows more (waiting for approval, between retries). */
function stepStatus(run: RunView, stepId: string, fromTimeline: string): string {
  const stored = run.steps.find((x) => x.id === stepId)?.status;
  if (stored === 'pending' && (fromTimeline === 'waiting' || fromTimeline === 'retrying')) return fromTimeline;
  return stored ?? fromTimeline;
}

/** The part of a run page that live updates replace. */
export function runLive(data: RunPageData): SafeHtml {
  const { run, view, now } = data;
  const pending = run.approvals.filter((a) => a.status === 'pending');
  const alert = view.run.alert;
  return html`<div class="run-head">
  <h1>${run.playbook} <code class="run-id">${run.id}</code></h1>
  <p class="run-status">${statusBadge(run.status)} ${run.dryRun ? dryBadge : ''} ${view.run.reason && !ACTIVE.has(run.status) ? html`<span class="reason">${view.run.reason}</span>` : ''}</p>
  ${run.dryRun ? html`<p class="dry-banner" role="note"><strong>Dry run.</strong> Nothing was changed: side-effecting calls were recorded as “would call” with their rendered request.</p>` : ''}
  <dl class="facts">
    <dt>Trigger</dt><dd>${run.trigger}${run.startedBy ? ` by ${run.startedBy}` : ''}</dd>
    ${alert ? html`<dt>Alert</dt><dd>${alert.summary ?? ''}${alert.severity ? html` <span class="badge sev">${alert.severity}</span>` : ''} <span class="muted">${alert.source ?? ''}${alert.startsAt ? html`, fired ${timeTag(alert.startsAt, now)}` : ''}</span></dd>` : ''}
    ${revisionFact(data.revision)}
    <dt>Created</dt><dd>${timeTag(run.createdAt, now)}</dd>
    <dt>Finished</dt><dd>${run.finishedAt ? timeTag(run.finishedAt, now) : html`<span class="muted">still active</span>`}</dd>
  </dl>
  <div class="actions">
    ${ACTIVE.has(run.status) ? html`<button type="button" class="abort" id="abort-${run.id}" data-action="abort" data-run="${run.id}">Abort run</button>` : ''}
    <a class="button-link" href="/api/runs/${encodeURIComponent(run.id)}/timeline?format=md">Postmortem timeline (Markdown)</a>
    <a class="button-link" href="/api/runs/${encodeURIComponent(run.id)}/timeline?format=json">JSON</a>
  </div>
</div>
${pending.length > 0 ? approvalsSection(pending, now, 'Waiting for your answer') : ''}
${revisionDiff(data.revision)}
${durationsList(view)}
<div class="run-grid">
  <section class="picture" aria-labelledby="picture-title">
    <h2 id="picture-title">Steps on a time axis</h2>
    ${timeAxisSvg(view, now)}
    <ul class="legend" aria-label="Legend">${LEGEND.map(([k, name]) => html`<li><span class="swatch ${k}" aria-hidden="true"></span>${name}</li>`)}<li><span class="swatch failed" aria-hidden="true"></span>failed attempt</li></ul>
    <table class="steps">
      <caption>Steps</caption>
      <thead><tr><th scope="col">Step</th><th scope="col">Action</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Took</th><th scope="col">Notes</th></tr></thead>
      <tbody>${view.steps.map(
        (s) => html`<tr data-step="${s.id}"><td><code>${breakable(s.id)}</code></td><td>${s.action}${s.impact === 'high' ? html` <span class="badge high">high impact</span>` : ''}</td><td>${statusBadge(stepStatus(run, s.id, s.status))}</td><td>${s.attempts}</td><td>${formatDuration(s.durationMs)}</td><td>${s.note ?? ''}${s.compensation ? html` <span class="muted">compensation ${s.compensation}</span>` : ''}</td></tr>`,
      )}</tbody>
    </table>
  </section>
  <section class="events" aria-labelledby="events-title">
    <h2 id="events-title">Timeline <span class="muted">(UTC; T+ since ${view.origin.kind === 'alert' ? 'the alert fired' : 'the run was created'})</span></h2>
    <table class="events">
      <thead><tr><th scope="col">Time (UTC)</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Why</th></tr></thead>
      <tbody>${view.events.map(
        (e) => html`<tr id="e${e.seq}" class="ev ev-${e.kind.replace(/\./g, '-')}"><td><time datetime="${e.time}" title="${e.time}">${formatUtc(e.time, { millis: true, date: false })}</time><br><span class="muted">${formatOffset(e.offsetMs)}</span></td><td>${e.actor}</td><td>${breakable(e.summary)}</td><td>${e.why ?? ''}</td></tr>`,
      )}</tbody>
    </table>
    <p class="muted small">${view.chain.events} events; chain head <code>${view.chain.head?.slice(0, 16) ?? 'none'}…</code> — check with <code>firebreak audit verify ${run.id}</code>.</p>
  </section>
</div>`;
}

export function runPage(data: RunPageData, viewer: Viewer): SafeHtml {
  return layout(
    { title: `${data.run.playbook} ${data.run.id.slice(0, 8)}`, live: `run:${data.run.id}`, viewer, active: ACTIVE.has(data.run.status) },
    html`<p class="crumbs"><a href="/">← All runs</a></p><div id="live">${runLive(data)}</div>`,
  );
}

export interface LoginPageOptions {
  next: string;
  error?: string;
  /** Offer single sign-on (OpenID Connect is configured). */
  sso: boolean;
  /** Local mode: ask for a name instead of a token. */
  local: boolean;
}

export function loginPage(options: LoginPageOptions): SafeHtml {
  const invalid = options.error ? html` aria-describedby="login-error" aria-invalid="true"` : '';
  const problem = options.error ? html`<p class="problem" role="alert" id="login-error">${options.error}</p>` : '';
  const sso = options.sso
    ? html`<p class="sso"><a class="button primary" id="sso" href="/auth/oidc/login?next=${encodeURIComponent(options.next)}">Sign in with single sign-on</a></p>`
    : '';
  const form = options.local
    ? html`<form method="post" action="/login" class="login-form">
    <p>No sign-in is set up (local mode, loopback only). Say who you are: your answers are recorded as <code>local:&lt;name&gt;</code> and marked unverified.</p>
    ${problem}
    <input type="hidden" name="next" value="${options.next}">
    <label for="name">Your name</label>
    <input id="name" name="name" autocomplete="username" required autofocus pattern="[A-Za-z0-9._@+\\-]{1,64}"${invalid}>
    <button type="submit" class="primary">Continue</button>
  </form>`
    : html`<form method="post" action="/login" class="login-form">
    <p>${options.sso ? 'Or enter a token: ' : 'This console is protected. Enter '}your personal token (<code>firebreak token create</code>) or the API token (<code>FIREBREAK_API_TOKEN</code>, read-only for people: it cannot answer approvals).</p>
    ${options.sso ? '' : problem}
    <input type="hidden" name="next" value="${options.next}">
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required${options.sso ? '' : html` autofocus`}${invalid}>
    <button type="submit"${options.sso ? '' : html` class="primary"`}>Log in</button>
  </form>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · Firebreak</title>
<link rel="icon" href="/console/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console/app.css">
</head>
<body class="login">
<main id="main">
  <h1>Firebreak</h1>
  ${options.sso ? problem : ''}
  ${sso}
  ${form}
</main>
</body>
</html>`;
}

/** After single sign-on: a page of our own that moves on, so the browser sends the new SameSite=Strict cookie. */
export function continuePage(next: string): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="0;url=${next}">
<title>Signed in · Firebreak</title>
<link rel="stylesheet" href="/console/app.css">
</head>
<body class="login"><main id="main"><p>Signed in. <a href="${next}">Continue</a></p></main></body>
</html>`;
}

export function messagePage(title: string, message: string, viewer: Viewer): SafeHtml {
  return layout({ title, viewer }, html`<h1>${title}</h1><p>${message}</p><p><a href="/">All runs</a></p>`);
}
