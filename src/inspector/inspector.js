// The Gatehouse inspector. Everything shown comes from the network, so the DOM is built
// with createElement and textContent only: nothing here parses a string as HTML.
'use strict';
const rows = document.getElementById('rows');
const detail = document.getElementById('detail');
const status = document.getElementById('status');
const MAX = 200;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function time(ms) {
  const d = new Date(ms);
  const pad = (n, w) => String(n).padStart(w || 2, '0');
  return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3);
}

function identity(e) {
  if (e.identity) return e.identity.subject + ' (' + (e.identity.roles.join(', ') || 'no roles') + ')';
  if (e.subject) return e.subject + ' (not sent)';
  return 'anonymous';
}

function line(e, text, className) {
  const tr = el('tr', null, className);
  tr.append(el('td', time(e.time)));
  const td = el('td', text);
  td.colSpan = 8;
  tr.append(td);
  return tr;
}

// The route and the file:line that holds it (the file's name here; its full path on hover).
function route(e) {
  if (!e.route_at) return el('td', e.route);
  const td = el('td', e.route + ' (' + e.route_at.split('/').pop() + ')');
  td.title = e.route_at;
  return td;
}

function row(e) {
  if (e.kind === 'reload') return line(e, e.message, e.ok ? 'reload' : 'reload failed');
  if (e.kind === 'lagged') return line(e, e.dropped + ' events dropped (the inspector fell behind)', 'lagged');
  if (e.kind !== 'request') return null;
  const tr = el('tr', null, 'entry');
  tr.dataset.id = e.id;
  const total = e.timings_ms ? e.timings_ms.total.toFixed(1) : '';
  tr.append(el('td', time(e.at)), el('td', e.method), el('td', e.path), el('td', e.status),
    route(e),
    el('td', e.decision, e.decision), el('td', e.reason), el('td', identity(e)), el('td', total));
  tr.addEventListener('click', () => show(e, tr));
  return tr;
}

function pairs(title, list) {
  const box = document.createDocumentFragment();
  box.append(el('h3', title));
  if (!list || list.length === 0) { box.append(el('p', 'none', 'muted')); return box; }
  const dl = el('dl');
  for (const [name, value] of list) dl.append(el('dt', name), el('dd', value));
  box.append(dl);
  return box;
}

function show(e, tr) {
  for (const s of rows.querySelectorAll('tr.selected')) s.classList.remove('selected');
  tr.classList.add('selected');
  detail.replaceChildren();
  detail.append(el('h2', e.method + ' ' + e.path + ' \u2192 ' + e.status));
  detail.append(el('p', e.decision + ': ' + e.reason + ' \u00b7 route ' + e.route + (e.route_at ? ' at ' + e.route_at : '')));
  detail.append(el('h3', 'policy explain'), el('pre', e.explain));
  if (e.identity) {
    detail.append(pairs('identity sent to the app', [['subject', e.identity.subject], ['roles', e.identity.roles.join(', ')],
      ['scopes', e.identity.scopes.join(', ')], ['by', e.identity.method], ['issuer', e.identity.issuer]]));
  } else {
    detail.append(el('h3', 'identity sent to the app'), el('p', e.forwarded ? 'none' : 'not forwarded: Gatehouse answered', 'muted'));
  }
  if (e.forwarded) {
    detail.append(pairs('headers added', e.added));
    detail.append(pairs('headers removed', (e.removed || []).map((n) => [n, ''])));
  }
  if (e.timings_ms) {
    const t = e.timings_ms;
    detail.append(pairs('timings (ms)', [['auth', t.auth.toFixed(2)], ['upstream', t.upstream === null ? '-' : t.upstream.toFixed(2)], ['total', t.total.toFixed(2)]]));
  }
  detail.append(pairs('headers received (secrets redacted)', e.received));
  detail.append(el('p', 'request id ' + e.request_id, 'muted'));
}

function connect() {
  const source = new EventSource('/.gatehouse/events');
  source.onopen = () => { status.textContent = 'live'; rows.replaceChildren(); };
  source.onerror = () => { status.textContent = 'disconnected, retrying\u2026'; };
  source.onmessage = (message) => {
    let e;
    try { e = JSON.parse(message.data); } catch (_) { return; }
    const tr = row(e);
    if (!tr) return;
    rows.prepend(tr);
    while (rows.children.length > MAX) rows.lastElementChild.remove();
  };
}
connect();
