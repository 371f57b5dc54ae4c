/** The console's Alerts page: recent alert episodes and what became of each, per playbook (docs/safety-rails.md). */
import type { listAlerts } from '../engine/index.js';
import { html, type SafeHtml } from './html.js';
import { layout, timeTag, type Viewer } from './pages.js';

type AlertItem = Awaited<ReturnType<typeof listAlerts>>[number];

const OUTCOME_TEXT: Record<string, string> = {
  started: 'started',
  deduplicated: 'deduplicated',
  throttled: 'throttled',
  cooldown: 'cooldown',
  suppressed: 'suppressed (silence)',
  paused: 'paused',
  no_match: 'no playbook matched',
};

function outcomes(a: AlertItem): SafeHtml | string {
  if (a.outcomes.length === 0) return html`<span class="muted">—</span>`;
  return html`<ul class="outcomes">${a.outcomes.map(
    (o) => html`<li><span class="badge outcome outcome-${o.outcome}" title="${o.reason}">${OUTCOME_TEXT[o.outcome] ?? o.outcome}</span>${o.playbook ? html` <strong>${o.playbook}</strong>` : ''}${o.runId ? html` <a href="/runs/${encodeURIComponent(o.runId)}"><code>${o.runId.slice(0, 8)}</code></a>` : ''} <span class="muted small">${o.reason}</span></li>`,
  )}</ul>`;
}

export function alertsPage(data: { alerts: AlertItem[]; now: number }, viewer: Viewer): SafeHtml {
  const { alerts, now } = data;
  const body = html`<h1>Alerts</h1>
<p class="muted">Each firing alert gets an outcome per playbook it matches: started, deduplicated (its run already exists), throttled (limits), cooldown, suppressed (a silence), paused, or no playbook matched.</p>
<section aria-labelledby="alerts-title">
  <h2 id="alerts-title">Recent alerts <span class="count">${alerts.length}</span></h2>
  ${
    alerts.length === 0
      ? html`<p class="muted">No alerts yet.</p>`
      : html`<table class="alerts">
    <caption class="sr-only">Alert episodes, newest first, with their outcomes</caption>
    <thead><tr><th scope="col">First seen (UTC)</th><th scope="col">Alert</th><th scope="col">Status</th><th scope="col">Outcome</th></tr></thead>
    <tbody>
    ${alerts.map(
      (a) => html`<tr class="alert-row" data-alert="${String(a.id)}">
      <td>${timeTag(a.firstSeenAt, now)}</td>
      <td><strong>${a.summary || a.fingerprint}</strong> <span class="muted small">${a.source} · ${Object.entries((a.labels ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(', ')}</span>${a.deliveries > 1 ? html` <span class="muted small">(${String(a.deliveries)} deliveries)</span>` : ''}</td>
      <td><span class="badge status-${a.status === 'firing' ? 'running' : 'succeeded'}">${a.status}</span></td>
      <td>${outcomes(a)}</td>
    </tr>`,
    )}
    </tbody>
  </table>`
  }
</section>`;
  return layout({ title: 'Alerts', viewer }, body);
}
