/**
 * The replicator's status page. Pure: a snapshot becomes a view (every cell a plain string,
 * formatted here once) and the view becomes HTML with every string escaped: user names and
 * errors come from a userdb and from mail servers, and a name such as `<script>` is shown as
 * text. The page's own script fetches status.json every few seconds and refills the tables
 * with textContent (never as HTML), so the page refreshes itself without reloading and keeps
 * what is typed in the search box; without JavaScript a meta refresh reloads it.
 * The script and style are fixed text, allowed by their hashes in the Content-Security-Policy.
 */
import { createHash } from 'node:crypto';
import { formatSpan } from './status-format.js';
import type { StatusSnapshot } from './status-snapshot.js';

export const REFRESH_MS = 2000;

export interface ViewRow {
  cls?: string;
  cells: string[];
}

export interface ViewTable {
  id: string;
  head: string[];
  rows: ViewRow[];
  /** Shown in place of rows when there are none. */
  empty: string;
}

export interface PageView {
  summary: string;
  /** About the users table: how many match, how many are shown. */
  usersNote: string;
  updated: string;
  tables: ViewTable[];
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

function ago(now: number, t: number | undefined): string {
  return t === undefined ? 'never' : `${formatSpan(now - t)} ago`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function pageView(s: StatusSnapshot): PageView {
  const c = s.counts;
  const t = s.totals;
  const busy = s.workers.filter((w) => w.user !== undefined).length;
  const results = (['ok', 'again', 'incomplete', 'failed', 'gone'] as const).filter((r) => t.byResult[r] > 0).map((r) => `${t.byResult[r]} ${r}`);
  const summary =
    `${plural(s.total, 'user')}, ${busy} of ${plural(s.workers.length, 'worker')} syncing, lag ${formatSpan(s.lagMs)}; ` +
    `since the start ${formatSpan(s.now - s.startedAt)} ago: ${plural(t.syncs, 'sync')}${results.length ? ` (${results.join(', ')})` : ''}, ` +
    `${plural(t.messages, 'message')} (${bytesText(t.bytes)}) copied`;
  const queue: ViewTable = {
    id: 'queue',
    head: ['queue', 'users'],
    empty: '',
    rows: [
      ['sync requested', c.sync],
      ['new mail (high)', c.high],
      ['flag and folder changes (low)', c.low],
      ['failed, due again', c.failedDue],
      ['full sync due', c.fullDue],
      ['failed, waiting (back-off)', c.failedWaiting],
      ['syncs running', c.running],
      ['watched for changes', s.watched],
      ['only checked periodically', s.polled],
      ['users in all', s.total],
    ].map(([k, v]) => ({ cells: [String(k), String(v)], cls: k === 'failed, waiting (back-off)' && Number(v) > 0 ? 'bad' : undefined })),
  };
  const workers: ViewTable = {
    id: 'workers',
    head: ['worker', 'pid', 'user', 'type', 'priority', 'status'],
    empty: 'no workers',
    rows: s.workers.map((w) => ({
      cls: w.user === undefined ? 'idle' : 'running',
      cells: [String(w.worker), w.pid === undefined ? '-' : String(w.pid), w.user ?? '-', w.user === undefined ? '-' : w.full ? 'full' : 'incremental', w.priority ?? '-', w.user === undefined ? 'idle' : `syncing for ${formatSpan(s.now - (w.since ?? s.now))}`],
    })),
  };
  const users: ViewTable = {
    id: 'users',
    head: ['user', 'state', 'pending', 'last sync', 'last success', 'last full sync', 'lag', 'failures', 'next sync', 'last error'],
    empty: s.query === '' ? 'no users' : 'no user matches the search',
    rows: s.users.map((u) => ({
      cls: u.condition,
      cells: [
        u.user,
        u.condition,
        u.priority,
        ago(s.now, u.lastSync),
        ago(s.now, u.lastSuccess),
        ago(s.now, u.lastFullSync),
        formatSpan(u.lagMs),
        u.failures > 0 ? String(u.failures) : '-',
        u.nextSyncInMs === undefined ? 'running' : u.nextSyncInMs === 0 ? 'due' : `in ${formatSpan(u.nextSyncInMs)}`,
        u.lastError ?? '',
      ],
    })),
  };
  const recent: ViewTable = {
    id: 'recent',
    head: ['ended', 'user', 'type', 'priority', 'result', 'took', 'copied', 'error'],
    empty: 'no syncs yet',
    rows: s.recent.map((r) => ({
      cls: r.result === 'failed' || r.result === 'gone' ? 'failing' : undefined,
      cells: [ago(s.now, r.at), r.user, r.full ? 'full' : 'incremental', r.priority, r.result, `${(r.ms / 1000).toFixed(2)} s`, r.saved === undefined ? '-' : `${plural(r.saved, 'message')} (${bytesText(r.bytes ?? 0)})`, r.error ?? ''],
    })),
  };
  const usersNote =
    s.matched > s.users.length
      ? `${s.matched} of ${s.total} users match; the first ${s.users.length} are shown (running, failing and waiting longest first): narrow the search`
      : s.query === ''
        ? `${plural(s.total, 'user')} (running, failing and waiting longest first)`
        : `${s.matched} of ${s.total} users match`;
  return { summary, usersNote, updated: new Date(s.now).toISOString().replace(/\.\d+Z$/, 'Z'), tables: [queue, workers, users, recent] };
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1rem 2rem;color:#1b1f24;background:#fff}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.4rem 0 .4rem}
#summary{margin:.2rem 0}#updated{color:#57606a;margin:.2rem 0 .8rem}#updated.stale{color:#b42318;font-weight:600}
form{margin:.5rem 0}input[type=search]{width:22rem;padding:.3rem}
table{border-collapse:collapse;margin:.3rem 0}th,td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr.failing td{background:#fff1f0}tr.running td{background:#eef6ff}tr.bad td{color:#b42318;font-weight:600}
td.empty{color:#57606a;font-style:italic}
`;

/** Fills the page from status.json; fixed text, so its hash is its permission to run. */
const SCRIPT = `
(function () {
  var REFRESH_MS = ${REFRESH_MS};
  var box = document.getElementById('q');
  var updated = document.getElementById('updated');
  var timer = 0;
  var seq = 0;
  function fill(t) {
    var table = document.getElementById(t.id);
    if (!table) return;
    var body = table.tBodies[0];
    var rows = [];
    t.rows.forEach(function (r) {
      var tr = document.createElement('tr');
      if (r.cls) tr.className = r.cls;
      r.cells.forEach(function (c) {
        var td = document.createElement('td');
        td.textContent = c;
        tr.appendChild(td);
      });
      rows.push(tr);
    });
    if (rows.length === 0 && t.empty) {
      var tr = document.createElement('tr');
      var td = document.createElement('td');
      td.className = 'empty';
      td.colSpan = t.head.length;
      td.textContent = t.empty;
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
  }
  function later(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }
  function refresh() {
    var mine = ++seq;
    fetch('status.json?q=' + encodeURIComponent(box.value), { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then(function (s) {
        if (mine !== seq) return;
        document.getElementById('summary').textContent = s.view.summary;
        document.getElementById('users-note').textContent = s.view.usersNote;
        s.view.tables.forEach(fill);
        updated.textContent = 'as of ' + s.view.updated + ', refreshed every ' + REFRESH_MS / 1000 + ' s';
        updated.className = '';
        document.body.setAttribute('data-refreshes', String(Number(document.body.getAttribute('data-refreshes') || 0) + 1));
      })
      .catch(function (err) {
        if (mine !== seq) return;
        updated.textContent = 'not refreshed: ' + err.message + '; trying again';
        updated.className = 'stale';
      })
      .then(function () {
        if (mine === seq) later(REFRESH_MS);
      });
  }
  box.addEventListener('input', function () {
    history.replaceState(null, '', box.value ? '?q=' + encodeURIComponent(box.value) : location.pathname);
    later(150);
  });
  document.getElementById('search').addEventListener('submit', function (e) {
    e.preventDefault();
    later(0);
  });
  later(REFRESH_MS);
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
}

/** The page's Content-Security-Policy: its own script and style, fetches to itself, nothing else. */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

function tableHtml(t: ViewTable): string {
  const head = `<thead><tr>${t.head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>`;
  const rows = t.rows.map((r) => `<tr${r.cls ? ` class="${escapeHtml(r.cls)}"` : ''}>${r.cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`);
  if (rows.length === 0 && t.empty) rows.push(`<tr><td class="empty" colspan="${t.head.length}">${escapeHtml(t.empty)}</td></tr>`);
  return `<table id="${escapeHtml(t.id)}">${head}<tbody>${rows.join('')}</tbody></table>`;
}

export function renderPage(s: StatusSnapshot): string {
  const v = pageView(s);
  const table = (id: string) => tableHtml(v.tables.find((t) => t.id === id)!);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailferry replicator</title>
<noscript><meta http-equiv="refresh" content="${Math.round((REFRESH_MS * 5) / 1000)}"></noscript>
<style>${STYLE}</style>
</head>
<body>
<h1>mailferry replicator</h1>
<p id="summary">${escapeHtml(v.summary)}</p>
<p id="updated">as of ${escapeHtml(v.updated)}</p>
<form id="search" method="get" action="" role="search">
<label>Users: <input type="search" id="q" name="q" value="${escapeHtml(s.query)}" maxlength="256" placeholder="part of a name, or a mask such as *@example.org" autocomplete="off"></label>
<button type="submit">Search</button>
</form>
<h2>Queue</h2>
${table('queue')}
<h2>Workers</h2>
${table('workers')}
<h2>Users</h2>
<p id="users-note">${escapeHtml(v.usersNote)}</p>
${table('users')}
<h2>Recent syncs</h2>
${table('recent')}
<script>${SCRIPT}</script>
</body>
</html>
`;
}
