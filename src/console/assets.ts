/**
 * The console's static files, served by the app itself (no CDN: it works
 * offline). Kept as strings so the compiled dist/ is self-contained.
 */

export const CONSOLE_CSS = `
:root {
  --fg: #111827; --muted: #4b5563; --bg: #ffffff; --panel: #f9fafb; --line: #d1d5db;
  --link: #1d4ed8; --focus: #2563eb;
  --gather: #2563eb; --policy: #7c3aed; --approval: #d97706; --mitigation: #dc2626; --compensation: #0f766e;
}
* { box-sizing: border-box; }
html { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
body { margin: 0; }
a { color: var(--link); }
code, pre, .run-id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; }
pre { background: var(--panel); border: 1px solid var(--line); padding: .5rem; overflow: auto; max-height: 16rem; }
pre.diff { max-height: 28rem; line-height: 1.35; }
.diff-add { color: #1a7f37; background: rgba(46, 160, 67, .12); }
.diff-del { color: #b42318; background: rgba(248, 81, 73, .12); }
.diff-hunk { color: #6f42c1; }
.diff-file { font-weight: 600; }
.revision-diff { margin: 1rem 0; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem; z-index: 10; }
.skip:focus { left: .5rem; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.top { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; padding: .6rem 1rem; background: #111827; color: #f9fafb; }
.top a, .top .link { color: #f9fafb; }
.top .brand { font-weight: 700; text-decoration: none; font-size: 1.1rem; }
.top nav a { margin-right: .75rem; }
.top .who { margin-left: auto; }
.live-status { font-size: .85rem; color: #d1fae5; }
.live-status.off { color: #fde68a; }
.logout { display: inline; margin: 0; }
button, .button-link { font: inherit; padding: .35rem .8rem; border-radius: 4px; border: 1px solid #6b7280; background: #f3f4f6; color: var(--fg); cursor: pointer; text-decoration: none; display: inline-block; }
button:hover, .button-link:hover { background: #e5e7eb; }
button:disabled { opacity: .6; cursor: progress; }
button.link { background: none; border: none; padding: 0; text-decoration: underline; color: inherit; }
button.primary, button.approve { background: #166534; border-color: #14532d; color: #fff; }
button.approve:hover { background: #14532d; }
button.reject, button.abort { background: #991b1b; border-color: #7f1d1d; color: #fff; }
button.reject:hover, button.abort:hover { background: #7f1d1d; }
main { padding: 1rem 1.25rem 3rem; max-width: 1500px; margin: 0 auto; }
h1 { font-size: 1.45rem; margin: .3rem 0 .6rem; }
h2 { font-size: 1.1rem; margin: 1.2rem 0 .5rem; }
h3 { font-size: 1rem; margin: 0 0 .4rem; }
.muted { color: var(--muted); }
.small { font-size: .85rem; }
.count { display: inline-block; min-width: 1.6em; text-align: center; background: #e5e7eb; border-radius: 999px; font-size: .85rem; padding: 0 .4em; }
.filters { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; padding: .6rem; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; }
.silence-form { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; padding: .6rem; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; margin-bottom: 1rem; }
.silence-form h2 { flex-basis: 100%; margin: 0; font-size: 1rem; }
#silence-matchers { min-width: 22rem; font-family: ui-monospace, monospace; }
#silence-reason { min-width: 16rem; }
.silence-form input, .filters input, .filters select, dialog input, .login-form input { font: inherit; padding: .3rem .4rem; border: 1px solid #6b7280; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
th { background: var(--panel); font-weight: 600; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
.badge { display: inline-block; padding: 0 .45em; border-radius: 4px; font-size: .82rem; font-weight: 600; border: 1px solid transparent; }
.status-succeeded, .status-approved, .status-compensated { background: #dcfce7; color: #14532d; }
.status-failed, .status-denied, .status-rejected { background: #fee2e2; color: #7f1d1d; }
.status-waiting, .status-pending { background: #fef3c7; color: #78350f; }
.status-running, .status-retrying { background: #dbeafe; color: #1e3a8a; }
.status-queued { background: #e0e7ff; color: #312e81; }
.status-aborted, .status-cancelled, .status-skipped, .status-expired { background: #e5e7eb; color: #1f2937; }
.badge.dry { background: #fef9c3; color: #713f12; border-color: #a16207; }
.badge.high { background: #ffedd5; color: #7c2d12; }
.badge.sev { background: #f3f4f6; color: #111827; border-color: #9ca3af; }
.pause-banner { background: #fee2e2; border-bottom: 2px solid #b91c1c; color: #450a0a; padding: .5rem 1rem; }
.pause-banner ul { margin: .25rem 0 0; padding-left: 1.25rem; }
.pause-banner button.resume { margin-left: .5rem; }
button.pause-all { background: #fff; border-color: #b91c1c; color: #991b1b; }
.outcome { display: inline-block; margin: 0 .25rem .25rem 0; }
.outcome-started { background: #dcfce7; color: #14532d; }
.outcome-deduplicated, .outcome-no_match { background: #f1f5f9; color: #334155; }
.outcome-throttled, .outcome-cooldown, .outcome-paused { background: #fef3c7; color: #78350f; }
.outcome-suppressed { background: #e0e7ff; color: #312e81; }
.dry-banner { background: #fef9c3; border: 1px solid #a16207; color: #422006; padding: .5rem .75rem; border-radius: 6px; }
.problem { background: #fee2e2; border: 1px solid #b91c1c; color: #7f1d1d; padding: .4rem .6rem; border-radius: 4px; }
.reason { color: var(--muted); }
.dots { display: inline-flex; gap: 3px; }
.dot { width: 11px; height: 11px; border-radius: 2px; display: inline-block; background: #d1d5db; border: 1px solid #6b7280; }
.dot.step-succeeded { background: #16a34a; } .dot.step-failed, .dot.step-denied { background: #dc2626; }
.dot.step-running { background: #2563eb; } .dot.step-compensated { background: #0f766e; } .dot.step-skipped { background: #f3f4f6; }
.approval-card { border: 2px solid var(--approval); border-radius: 8px; padding: .7rem .9rem; margin: .6rem 0; background: #fffbeb; max-width: 60rem; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .8rem; margin: .4rem 0; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; }
.actions { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; margin: .5rem 0; }
.durations { display: flex; flex-wrap: wrap; gap: .75rem; margin: .75rem 0; }
.durations div { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .4rem .75rem; min-width: 11rem; }
.durations dt { font-size: .85rem; color: var(--muted); }
.durations dd { margin: 0; font-size: 1.15rem; font-weight: 600; }
.run-grid { display: grid; grid-template-columns: minmax(0, 1.1fr) minmax(0, 1fr); gap: 1.25rem; align-items: start; }
/* Grid items default to min-width: auto; a long unbreakable note (a URL in an error) would widen the
   column past its track and run under the timeline. Cells may break such text anywhere instead. */
.run-grid > section { min-width: 0; }
/* Notes and reasons hold URLs and JSON: those may break anywhere. Ids and summaries break after "_" (<wbr>). */
table.steps td:nth-child(6), table.events td:nth-child(4) { overflow-wrap: anywhere; }
table.steps td:nth-child(1), table.events td:nth-child(3) { overflow-wrap: break-word; }
table.steps td:nth-child(2), table.steps td:nth-child(3), table.events td:nth-child(1), table.events td:nth-child(2) { white-space: nowrap; }
@media (max-width: 1100px) { .run-grid { grid-template-columns: 1fr; } }
.events table td { font-size: .9rem; }
table.steps td:nth-child(5), table.runs td:nth-child(6) { white-space: nowrap; }
code.matcher { white-space: nowrap; }
.status-active { background: #fef3c7; color: #78350f; }
.ev-step-denied td, .ev-step-failed td, .ev-compensation-failed td { background: #fef2f2; }
.ev-approval-granted td { background: #f0fdf4; }
.ev-step-would_call td { background: #fefce8; }
.legend { list-style: none; padding: 0; display: flex; gap: 1rem; flex-wrap: wrap; font-size: .88rem; }
.swatch { display: inline-block; width: 14px; height: 10px; margin-right: .3rem; border-radius: 2px; vertical-align: middle; }
.swatch.gather { background: var(--gather); } .swatch.policy { background: var(--policy); } .swatch.approval { background: var(--approval); }
.swatch.mitigation { background: var(--mitigation); } .swatch.compensation { background: var(--compensation); }
.swatch.failed { background: repeating-linear-gradient(45deg, #6b7280 0 3px, #e5e7eb 3px 6px); }
svg.time-axis { display: block; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
svg.time-axis text { font-size: 11px; fill: #1f2937; }
svg.time-axis .lane-bg { fill: #ffffff; } svg.time-axis .lane-bg.odd { fill: #f3f4f6; }
svg.time-axis .lane-label { font-size: 12px; font-family: ui-monospace, Menlo, Consolas, monospace; }
svg.time-axis .tick line { stroke: #d1d5db; stroke-width: 1; }
svg.time-axis .now line { stroke: #111827; stroke-dasharray: 3 3; } svg.time-axis .end line { stroke: #111827; }
svg.time-axis .span rect { stroke: rgba(0,0,0,.35); stroke-width: 1; }
svg.time-axis .span.gather rect { fill: var(--gather); }
svg.time-axis .span.approval rect { fill: var(--approval); }
svg.time-axis .span.mitigation rect { fill: var(--mitigation); }
svg.time-axis .span.compensation rect { fill: var(--compensation); }
svg.time-axis path.span.policy { fill: var(--policy); stroke: #fff; stroke-width: 1; }
svg.time-axis path.span.policy.failed { fill: #111827; stroke: var(--mitigation); stroke-width: 2; }
svg.time-axis .span rect.hatch { fill: url(#hatch); stroke: #111827; stroke-dasharray: 2 2; }
svg.time-axis .span.open rect { stroke: #111827; stroke-dasharray: 4 2; }
.flash { position: fixed; bottom: 1rem; right: 1rem; max-width: 32rem; padding: .6rem .9rem; border-radius: 6px; background: #111827; color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
.flash.error { background: #7f1d1d; }
.flash.ok { background: #14532d; }
dialog { border: 1px solid var(--line); border-radius: 8px; max-width: 30rem; }
dialog::backdrop { background: rgba(17,24,39,.5); }
dialog label { display: block; font-weight: 600; margin-top: .5rem; }
dialog input { width: 100%; }
.dialog-buttons { margin-top: .8rem; display: flex; gap: .5rem; }
body.login main { max-width: 26rem; margin-top: 4rem; }
.login-form { display: flex; flex-direction: column; gap: .5rem; border: 1px solid var(--line); padding: 1rem; border-radius: 8px; background: var(--panel); }
.crumbs { margin: 0; }
`;

export const CONSOLE_JS = String.raw`// Firebreak console: approvals, abort, silences, live updates. Vanilla JS, no build step.
(function () {
  'use strict';
  var NAME = /^[A-Za-z0-9._@+-]{1,64}$/;
  function $(sel, root) { return (root || document).querySelector(sel); }

  // Who we act as is the server's business (the session); the page says who, and in
  // local mode (no sign-in set up) whether a name still has to be given.
  function needsName() { return document.body.getAttribute('data-ask-name') === '1'; }

  var flashTimer;
  function flash(text, kind) {
    var el = $('#flash');
    if (!el) return;
    el.textContent = text;
    el.className = 'flash ' + (kind || '');
    el.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { el.hidden = true; }, kind === 'error' ? 12000 : 6000);
  }

  // Local mode: tell the server who we are (a real form in a <dialog>); it keeps the name in our session.
  function sendName(name) {
    return fetch('/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-firebreak-console': '1' },
      body: 'name=' + encodeURIComponent(name)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (d) {
        if (!res.ok || !d.id) { flash('Could not set the name: ' + (d.error || ('HTTP ' + res.status)), 'error'); return ''; }
        var el = $('#whoami');
        if (el) el.textContent = d.id;
        document.body.removeAttribute('data-ask-name');
        return d.id;
      });
    });
  }
  function askUser() {
    return new Promise(function (resolve) {
      var dialog = $('#user-dialog');
      var input = $('#user-name');
      if (!dialog) { resolve(''); return; }
      if (typeof dialog.showModal !== 'function') {
        var answer = (window.prompt('Your name (recorded as local:<name>, unverified)', '') || '').trim();
        if (NAME.test(answer)) sendName(answer).then(resolve); else resolve('');
        return;
      }
      input.value = '';
      dialog.returnValue = '';
      function onClose() {
        dialog.removeEventListener('close', onClose);
        var name = input.value.trim();
        if (dialog.returnValue === 'ok' && NAME.test(name)) sendName(name).then(resolve);
        else resolve('');
      }
      dialog.addEventListener('close', onClose);
      dialog.showModal();
      input.focus();
    });
  }

  function loginAgain() {
    location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
  }

  function post(url, body, method) {
    return fetch(url, {
      method: method || 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-firebreak-console': '1' },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) { return { status: res.status, data: data }; });
    });
  }

  var busy = false;
  document.addEventListener('click', function (event) {
    var target = event.target;
    if (target && target.closest && target.closest('#change-user')) { askUser(); return; }
    var button = target && target.closest ? target.closest('button[data-action]') : null;
    if (!button || busy) return;
    event.preventDefault();
    var action = button.getAttribute('data-action');
    var ready = needsName() ? askUser() : Promise.resolve('ok');
    ready.then(function (ok) {
      if (!ok) { flash('Say who you are first: answers are recorded under your name.', 'error'); return; }
      var url, body, doing, method;
      if (action === 'pause' || action === 'resume') {
        var playbook = button.getAttribute('data-playbook') || null;
        var why = window.prompt(action === 'pause' ? 'Pause ' + (playbook ? 'playbook ' + playbook : 'ALL automation') + ': no run starts and no further step starts. Why?' : 'Resume ' + (playbook ? 'playbook ' + playbook : 'all automation') + '? Reason (optional):', '');
        if (why === null) return;
        if (action === 'pause' && !why.trim()) { flash('Say why you pause: it is recorded in the timeline.', 'error'); return; }
        url = '/api/' + action;
        body = { playbook: playbook, reason: why };
        doing = action === 'pause' ? 'Pausing…' : 'Resuming…';
      } else if (action === 'expire-silence') {
        var why = window.prompt('Expire this silence now? Matching alerts will start runs again. Reason (optional):', '');
        if (why === null) return;
        method = 'DELETE';
        url = '/api/silences/' + encodeURIComponent(button.getAttribute('data-silence'));
        body = why.trim() ? { reason: why.trim() } : {};
        doing = 'Expiring…';
      } else if (action === 'abort') {
        if (!window.confirm('Abort this run? Completed steps that have a compensate action will be undone, newest first.')) return;
        url = '/api/runs/' + encodeURIComponent(button.getAttribute('data-run')) + '/abort';
        body = { reason: 'aborted from the console' };
        doing = 'Aborting…';
      } else {
        url = '/api/approvals/' + encodeURIComponent(button.getAttribute('data-approval'));
        body = { decision: action };
        doing = action === 'approve' ? 'Approving…' : 'Rejecting…';
      }
      busy = true;
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      flash(doing, '');
      post(url, body, method).then(function (r) {
        if (r.status === 401) return loginAgain();
        if (r.status >= 200 && r.status < 300) {
          var d = r.data || {};
          if (action === 'pause' || action === 'resume') { location.reload(); return; }
          var text = action === 'expire-silence' ? 'Silence expired by ' + d.expiredBy + '.'
            : action === 'abort' ? (d.status === 'aborted' ? 'Run aborted.' : 'Abort requested: completed steps are being compensated.')
            : d.outcome === 'approved' ? 'Approved as ' + d.actor + '.'
            : d.outcome === 'rejected' ? 'Rejected as ' + d.actor + '.'
            : 'Vote recorded (' + d.approvals + '/' + d.minApprovals + ' approvals).';
          flash(text, 'ok');
        } else {
          var reason = (r.data && (r.data.reason || (r.data.reasons && r.data.reasons.join('; ')) || r.data.error)) || ('HTTP ' + r.status);
          flash((r.status === 403 ? 'Not allowed: ' : 'Failed: ') + reason, 'error');
          button.disabled = false;
        }
        refreshSoon(0);
      }).catch(function (e) {
        flash('Network error: ' + e.message, 'error');
        button.disabled = false;
      }).then(function () { busy = false; button.removeAttribute('aria-busy'); });
    });
  });

  // Silences page: the add form posts to the API as this session's identity.
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (!form || form.id !== 'silence-form' || busy) return;
    event.preventDefault();
    var ready = needsName() ? askUser() : Promise.resolve('ok');
    ready.then(function (ok) {
      if (!ok) { flash('Say who you are first: silences are recorded under your name.', 'error'); return; }
      var submit = form.querySelector('button[type=submit]');
      busy = true;
      if (submit) submit.disabled = true;
      flash('Adding silence…', '');
      post('/api/silences', { matchers: $('#silence-matchers').value, for: $('#silence-duration').value.trim(), reason: $('#silence-reason').value })
        .then(function (r) {
          if (r.status === 401) return loginAgain();
          var d = r.data || {};
          if (r.status === 201) {
            flash('Silence ' + d.id.slice(0, 8) + ' added (' + d.matchers.join(', ') + ') by ' + d.createdBy + ', ' + d.state + ' until ' + d.endsAt + '.', 'ok');
            $('#silence-matchers').value = '';
            $('#silence-reason').value = '';
            refreshSoon(0);
          } else {
            var problems = (d.details || []).map(function (p) { return p.path + ': ' + p.message; }).join('; ');
            var reason = (d.reasons && d.reasons.join('; ')) || d.error || ('HTTP ' + r.status);
            flash((r.status === 403 ? 'Not allowed: ' : 'Failed: ') + reason + (problems ? ' (' + problems + ')' : ''), 'error');
          }
        })
        .catch(function (e) { flash('Network error: ' + e.message, 'error'); })
        .then(function () { busy = false; if (submit) submit.disabled = false; });
    });
  });

  // Relative hints next to UTC times ("3 min ago"), kept current.
  function relative(iso) {
    var s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    var a = Math.abs(s);
    if (!isFinite(a)) return '';
    if (a < 5) return 'just now';
    var t = a < 60 ? a + ' s' : a < 3600 ? Math.round(a / 60) + ' min' : a < 172800 ? Math.round(a / 3600) + ' h' : Math.round(a / 86400) + ' d';
    return s >= 0 ? t + ' ago' : 'in ' + t;
  }
  function updateRelative() {
    var els = document.querySelectorAll('[data-rel]');
    for (var i = 0; i < els.length; i++) els[i].textContent = '(' + relative(els[i].getAttribute('data-rel')) + ')';
  }

  // Live updates: the server says which run changed; we re-fetch this page's live part.
  var inflight = false, again = false, timer;
  function refreshSoon(delay) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay === undefined ? 200 : delay);
  }
  function refresh() {
    var live = $('#live');
    if (!live) return;
    if (inflight) { again = true; return; }
    inflight = true;
    live.setAttribute('aria-busy', 'true');
    fetch(location.pathname + location.search, { credentials: 'same-origin', cache: 'no-store', headers: { 'x-firebreak-fragment': '1' } })
      .then(function (res) {
        if (res.status === 401) { loginAgain(); return; }
        if (!res.ok) return;
        return res.text().then(function (text) {
          var focused = document.activeElement && document.activeElement.id;
          live.innerHTML = text;
          if (focused) { var el = document.getElementById(focused); if (el) el.focus(); }
          updateRelative();
          document.dispatchEvent(new CustomEvent('firebreak:refreshed'));
        });
      })
      .catch(function () { /* next event or tick retries */ })
      .then(function () {
        inflight = false;
        live.removeAttribute('aria-busy');
        if (again) { again = false; refreshSoon(); }
      });
  }

  function liveStatus(text, ok) {
    var el = $('#live-status');
    if (!el) return;
    el.textContent = text;
    el.className = 'live-status' + (ok ? '' : ' off');
  }

  function connect() {
    var mode = document.body.getAttribute('data-live');
    if (!mode || typeof EventSource === 'undefined') return;
    var url = '/api/events' + (mode.indexOf('run:') === 0 ? '?run=' + encodeURIComponent(mode.slice(4)) : '');
    var source = new EventSource(url);
    var opened = false;
    source.addEventListener('run', function () { refreshSoon(); });
    // The server ends the stream when this session was logged out (or its token revoked).
    source.addEventListener('end', function () { source.close(); liveStatus('signed out', false); });
    source.onopen = function () {
      liveStatus('● live', true);
      if (opened) refreshSoon(0); // reconnected: catch up on what we missed
      opened = true;
    };
    source.onerror = function () { liveStatus('reconnecting…', false); };
  }

  document.addEventListener('DOMContentLoaded', function () {
    updateRelative();
    setInterval(updateRelative, 30000);
    // An active run's open bars grow with time even when nothing is written.
    if (document.body.getAttribute('data-active') === '1') setInterval(function () { refreshSoon(0); }, 15000);
    connect();
  });
})();
`;

export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#111827"/><path d="M16 4c2 5 8 8 8 15a8 8 0 0 1-16 0c0-4 2-6 4-8 0 3 1 5 3 5-1-4 0-8 1-12z" fill="#f97316"/></svg>`;
