/**
 * The console's Silences page: active and pending silences (matchers, when
 * they end, why, who) with an Expire button each, and a form to add one.
 * Both go through the JSON API (`POST /api/silences`,
 * `DELETE /api/silences/:id`) as the session's identity, with the console
 * header the route guard's CSRF rule wants (see assets.ts).
 */
import { MAX_SILENCE_TEXT, type SilenceView } from '../rails/index.js';
import { html, relativeTime, type SafeHtml } from './html.js';
import { layout, statusBadge, timeTag, type Viewer } from './pages.js';

export interface SilencesPageData {
  silences: SilenceView[];
  now: number;
}

function endsIn(s: SilenceView, now: number): SafeHtml {
  return html`${timeTag(s.endsAt, now)}${s.state === 'pending' ? html`<br><span class="muted">starts ${relativeTime(s.startsAt, now)}</span>` : ''}`;
}

/** The part of the page a refresh replaces. */
export function silencesLive(data: SilencesPageData): SafeHtml {
  const { silences, now } = data;
  return html`<section aria-labelledby="silences-title">
  <h2 id="silences-title">Active and pending <span class="count">${silences.length}</span></h2>
  ${
    silences.length === 0
      ? html`<p class="muted" id="no-silences">No silences: every matching alert starts its playbook.</p>`
      : html`<table class="silences">
    <caption class="sr-only">Silences, newest first</caption>
    <thead><tr><th scope="col">Matchers</th><th scope="col">State</th><th scope="col">Ends</th><th scope="col">Reason</th><th scope="col">Author</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
    <tbody>
    ${silences.map(
      (s) => html`<tr class="silence-row" data-silence="${s.id}" data-state="${s.state}">
      <td>${s.matchers.map((m) => html`<code class="matcher">${m}</code> `)}<br><span class="muted small"><code title="${s.id}">${s.id.slice(0, 8)}</code></span></td>
      <td>${statusBadge(s.state)}</td>
      <td>${endsIn(s, now)}</td>
      <td>${s.reason}</td>
      <td>${s.createdBy}</td>
      <td><button type="button" class="abort" id="expire-${s.id}" data-action="expire-silence" data-silence="${s.id}">Expire</button></td>
    </tr>`,
    )}
    </tbody>
  </table>`
  }
</section>`;
}

export function silencesPage(data: SilencesPageData, viewer: Viewer): SafeHtml {
  const body = html`<h1>Silences</h1>
<p class="muted">A silence is a maintenance window: alerts its matchers select (Alertmanager syntax, all must hold) are stored and recorded as <em>suppressed</em> instead of starting a run. At most ${MAX_SILENCE_TEXT}.</p>
<form id="silence-form" class="silence-form" aria-labelledby="silence-form-title">
  <h2 id="silence-form-title">Add a silence</h2>
  <label for="silence-matchers">Matchers</label>
  <input id="silence-matchers" name="matchers" required placeholder='service="checkout", env=~"prod|stage"' autocomplete="off" spellcheck="false">
  <label for="silence-duration">For</label>
  <input id="silence-duration" name="for" required value="2h" size="6" pattern="^(\\d+(\\.\\d+)?(ms|s|m|h|d))+$" title="a duration: 30m, 2h, 1d">
  <label for="silence-reason">Reason</label>
  <input id="silence-reason" name="reason" required placeholder="database maintenance" maxlength="2000">
  <button type="submit" class="primary">Add silence</button>
</form>
<div id="live">${silencesLive(data)}</div>`;
  return layout({ title: 'Silences', viewer }, body);
}
