/**
 * The console's Automation page: the kill switch per playbook and for
 * everything, each playbook's limits and circuit breaker, and who paused what,
 * when and why. The buttons act through `POST /api/pause` / `POST /api/resume`
 * as the session's identity (firebreak/authorize decides), like the banner's.
 */
import type { AutomationStatus, Pause } from '../rails/index.js';
import { html, type SafeHtml } from './html.js';
import { layout, timeTag, type Viewer } from './pages.js';

function pauseText(p: Pause, now: number): SafeHtml {
  return html`paused by <strong>${p.pausedBy}</strong>${p.source === 'circuit_breaker' ? ' (circuit breaker)' : ''} ${timeTag(p.pausedAt, now)}: ${p.reason}`;
}

function railsText(p: AutomationStatus['playbooks'][number]): string {
  const parts = [
    p.limits?.maxRuns ? `at most ${p.limits.maxRuns} run${p.limits.maxRuns === 1 ? '' : 's'} per ${p.limits.per}` : '',
    p.limits?.cooldown ? `cooldown ${p.limits.cooldown}` : '',
    p.limits?.key ? `per ${p.limits.key}` : '',
    p.circuitBreaker ? `pauses after ${p.circuitBreaker.failures} failed runs in a row` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'no limits';
}

export function automationPage(data: { status: AutomationStatus; now: number }, viewer: Viewer): SafeHtml {
  const { status, now } = data;
  const body = html`<h1>Automation</h1>
<p class="muted">The kill switch: while paused, no run starts (alerts are recorded as <em>paused</em>, schedule ticks are skipped) and no further step of a running run starts; a step in flight finishes. Anyone signed in may pause; the policy decides who may resume.</p>
<section aria-labelledby="all-title" class="automation-all">
  <h2 id="all-title">All automation</h2>
  ${status.pause
    ? html`<p id="all-state"><strong>PAUSED</strong>: ${pauseText(status.pause, now)} <button type="button" class="resume" data-action="resume" data-playbook="">Resume all</button></p>`
    : html`<p id="all-state">Running. <button type="button" class="pause-all" data-action="pause" data-playbook="">Pause all automation</button></p>`}
</section>
<section aria-labelledby="playbooks-title">
  <h2 id="playbooks-title">Playbooks <span class="count">${status.playbooks.length}</span></h2>
  <table class="automation">
    <caption class="sr-only">Playbooks, their rails and whether they are paused</caption>
    <thead><tr><th scope="col">Playbook</th><th scope="col">State</th><th scope="col">Rails</th><th scope="col"><span class="sr-only">Act</span></th></tr></thead>
    <tbody>
    ${status.playbooks.map(
      (p) => html`<tr data-playbook="${p.name}">
      <td><strong>${p.name}</strong></td>
      <td>${p.pause ? html`<span class="badge status-failed">paused</span> ${pauseText(p.pause, now)}` : p.paused ? html`<span class="badge status-queued">held</span> <span class="muted">all automation is paused</span>` : html`<span class="badge status-succeeded">running</span>`}</td>
      <td>${railsText(p)}</td>
      <td>${p.pause
        ? html`<button type="button" class="resume" data-action="resume" data-playbook="${p.name}">Resume</button>`
        : html`<button type="button" data-action="pause" data-playbook="${p.name}">Pause</button>`}</td>
    </tr>`,
    )}
    </tbody>
  </table>
</section>`;
  return layout({ title: 'Automation', viewer }, body);
}
