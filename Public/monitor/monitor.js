// AWSomePets saga monitor: lists and searches sagas through the Orchestrator's operator API, draws one saga's
// timeline and retries a parked saga. Live by polling every two seconds. Plain ES module, no build step.
//
// Operator API (base URL from /config.json, `orchestratorUrl`):
//   GET  /sagas?status=&step=&orderId=&olderThan=SECONDS&limit=   GET /sagas/counts
//   GET  /sagas/{sagaId or orderId}                                 POST /sagas/{id}/retry
// Every call carries the operator token (`Authorization: Bearer ...`), asked for once and kept in sessionStorage:
// it lives as long as the tab, and a 401 asks for it again.

import { $, el } from '/dom.js';

const POLL_MS = 2000;
const TOKEN_KEY = 'pets.operatorToken';
const LIST_LIMIT = 100; // rows shown, newest first
const STATUSES = ['running', 'compensating', 'needs_attention', 'completed', 'cancelled'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KIND_LABEL = {
  sent: 'command sent',
  succeeded: 'succeeded',
  failed: 'failed',
  timedOut: 'timed out',
  retrying: 'retrying',
  compensated: 'compensated',
  ignored: 'ignored',
  parked: 'parked',
  operatorRetry: 'operator retry',
  completed: 'completed',
  cancelled: 'cancelled',
};
// History kinds that close a command's span (the reply, or the deadline).
const REPLY_KINDS = new Set(['succeeded', 'failed', 'timedOut', 'compensated', 'completed', 'cancelled']);


const money = (c) => (c == null ? '—' : '$' + (c / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
const statusLabel = (s) => String(s).replace(/_/g, ' ');

function duration(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function clock(iso, withMs = false) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso ?? '';
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  const ms = withMs ? '.' + String(date.getMilliseconds()).padStart(3, '0') : '';
  const today = new Date().toDateString() === date.toDateString();
  return (today ? '' : date.toLocaleDateString() + ' ') + time + ms;
}

// ---------------------------------------------------------------------------------------------------------------
// State

const state = {
  api: null,
  counts: null,
  rows: [],
  known: null, // sagaId -> "status|updatedAt" from the previous poll (null before the first)
  selected: null, // sagaId or orderId of the open saga
  detail: null,
  pollTimer: null,
  polling: false,
  lastOk: null,
};

function filters() {
  return {
    order: $('#filter-order').value.trim().toLowerCase(),
    status: $('#filter-status').value,
    step: $('#filter-step').value,
    older: Math.max(0, Number($('#filter-older').value) || 0),
    threshold: Math.max(1, Number($('#stuck-threshold').value) || 30),
  };
}

function isStuck(saga, threshold) {
  return (saga.status === 'running' || saga.status === 'compensating') && saga.ageSeconds > threshold;
}

// ---------------------------------------------------------------------------------------------------------------
// API

class TokenRefused extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new TokenRefused('no operator token');
  const response = await fetch(state.api + path, {
    cache: 'no-store', ...options,
    headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, ...(options.headers ?? {}) },
  });
  if (response.status === 401) throw new TokenRefused('the operator token was refused');
  const body = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, body };
}

/** Shows the sign-in form (with why, if a token was refused) and stops polling until a token is entered. */
function askForToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(state.pollTimer);
  const form = $('#token-form');
  form.hidden = false;
  $('#forget-token').hidden = true;
  const error = $('#token-error');
  error.hidden = !message;
  error.textContent = message ?? '';
  setLive('Operator token needed', 'lost');
  $('#operator-token').focus();
}

function tokenEntered(event) {
  event.preventDefault();
  const token = $('#operator-token').value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#operator-token').value = '';
  $('#token-form').hidden = true;
  $('#forget-token').hidden = false;
  refreshNow();
  if (state.selected) openSaga(state.selected);
}

async function findApi() {
  try {
    const response = await fetch('/config.json', { cache: 'no-store' });
    const config = await response.json();
    if (config?.orchestratorUrl) return String(config.orchestratorUrl).replace(/\/+$/, '');
  } catch {
    /* fall back below */
  }
  return `${location.protocol}//${location.hostname}:8084`;
}

async function listSagas(f) {
  const params = new URLSearchParams();
  if (f.step) params.set('step', f.step);
  const older = f.status === 'stuck' ? Math.max(f.older, f.threshold) : f.older;
  if (older > 0) params.set('olderThan', String(older));
  const statuses = f.status === 'stuck' ? ['running', 'compensating'] : f.status ? [f.status] : [null];
  const exact = UUID.test(f.order);
  if (exact) params.set('orderId', f.order);
  params.set('limit', f.order && !exact ? '1000' : String(LIST_LIMIT));
  let rows = [];
  for (const status of statuses) {
    const query = new URLSearchParams(params);
    if (status) query.set('status', status);
    const result = await api(`/sagas?${query}`);
    if (!result.ok) throw new Error(result.body?.message ?? `HTTP ${result.status}`);
    rows.push(...result.body);
  }
  if (exact && rows.length === 0) {
    // Perhaps a saga id rather than an order id.
    const result = await api(`/sagas/${encodeURIComponent(f.order)}`);
    if (result.ok && result.body?.saga) {
      const saga = result.body.saga;
      const matches = (!f.status || saga.status === f.status || (f.status === 'stuck' && isStuck(saga, f.threshold))) &&
        (!f.step || saga.step === f.step) && saga.ageSeconds >= older;
      if (matches) rows = [saga];
    }
  } else if (f.order && !exact) {
    rows = rows.filter((s) => s.orderId.includes(f.order) || s.sagaId.includes(f.order));
  }
  rows.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  return rows.slice(0, LIST_LIMIT);
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering: counts and list

function renderCounts(counts, f, stuckCount) {
  const list = $('#counts');
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const chips = [
    ['', 'all sagas', total, ''],
    ...STATUSES.map((s) => [s, statusLabel(s), counts[s] ?? 0, s === 'needs_attention' && counts[s] ? 'alarm' : '']),
    ['stuck', `stuck > ${f.threshold} s`, stuckCount, stuckCount ? 'alarm' : ''],
  ];
  for (const [value, label, count, extra] of chips) {
    const testid = `count-${value || 'all'}`;
    let button = list.querySelector(`[data-testid="${testid}"]`);
    if (!button) {
      button = el('button', {
        type: 'button', 'data-testid': testid,
        onclick: () => {
          $('#filter-status').value = value;
          refreshNow();
        },
      }, el('span', { class: 'count-number' }), el('span', { class: 'count-label' }));
      list.append(el('li', {}, button));
    }
    button.className = `count-chip chip-${value || 'all'} ${extra} ${f.status === value ? 'active' : ''}`;
    button.dataset.count = String(count);
    button.setAttribute('aria-pressed', f.status === value ? 'true' : 'false');
    setText($('.count-number', button), String(count));
    setText($('.count-label', button), label);
  }
}

/** Changes a node's text only when it differs, so a selection in unchanged text survives the polling. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function stateBadge(status) {
  return el('span', { class: `state state-${status}`, 'data-testid': 'state' }, statusLabel(status));
}

function sagaRow(saga, stuck) {
  const step = saga.step ? saga.step + (saga.phase && saga.phase !== 'forward' ? ` (${saga.phase})` : '') : '—';
  return el('tr', {
    'data-testid': 'saga-row', 'data-saga-id': saga.sagaId, 'data-order-id': saga.orderId, 'data-status': saga.status,
    onclick: (event) => { if (!event.target.closest('button')) openSaga(saga.sagaId); },
  },
    el('td', {}, el('button', {
      type: 'button', class: 'link-btn mono', 'data-testid': 'open-saga', title: `order ${saga.orderId}\nsaga ${saga.sagaId}`,
      'aria-label': `Open the saga of order ${saga.orderId}`, onclick: () => openSaga(saga.sagaId),
    }, saga.orderId.slice(0, 8) + '…')),
    el('td', { class: 'state-cell' }, stateBadge(saga.status), stuck ? el('span', { class: 'stuck-badge', 'data-testid': 'stuck-badge' }, 'stuck') : null),
    el('td', { class: 'mono small' }, step),
    el('td', { class: 'num' }, String(saga.attempt)),
    el('td', { class: 'nowrap' }, clock(saga.createdAt)),
    el('td', { class: 'num age' }, duration(saga.ageSeconds)),
  );
}

function renderRows(rows, f) {
  const body = $('#saga-rows');
  const known = state.known;
  const existing = new Map([...body.children].map((tr) => [tr.dataset.sagaId, tr]));
  const next = new Map();
  const trs = rows.map((saga) => {
    const stuck = isStuck(saga, f.threshold);
    const signature = `${saga.status}|${saga.updatedAt}|${saga.step}|${saga.attempt}|${stuck}`;
    next.set(saga.sagaId, signature);
    let tr = existing.get(saga.sagaId);
    const fresh = known && !known.has(saga.sagaId);
    const changed = known && known.has(saga.sagaId) && known.get(saga.sagaId) !== signature;
    if (!tr || tr.dataset.signature !== signature) {
      const replacement = sagaRow(saga, stuck);
      if (tr && tr.contains(document.activeElement)) setTimeout(() => replacement.querySelector('button')?.focus({ preventScroll: true }));
      tr = replacement;
      tr.dataset.signature = signature;
    }
    setText($('.age', tr), duration(saga.ageSeconds));
    tr.dataset.stuck = stuck ? 'true' : 'false';
    tr.classList.toggle('stuck', stuck);
    tr.classList.toggle('attention', saga.status === 'needs_attention');
    tr.classList.toggle('selected', Boolean(state.detail && state.detail.saga.sagaId === saga.sagaId));
    if (fresh) tr.classList.add('fresh');
    if (changed) tr.classList.add('changed');
    return tr;
  });
  // Put the rows in order: drop the others first, then insert the new ones, so the kept ones rarely move.
  const keep = new Set(trs);
  for (const tr of [...body.children]) if (!keep.has(tr)) tr.remove();
  trs.forEach((tr, index) => {
    if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] ?? null);
  });
  state.known = next;
  $('#sagas-empty').hidden = rows.length > 0;
  const parts = [`${rows.length} shown`];
  if (rows.length >= LIST_LIMIT) parts.push('newest first; narrow the search to see older ones');
  setText($('#list-note'), parts.join(' · '));
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering: one saga

function renderDetail(detail) {
  const section = $('#detail');
  const saga = detail.saga;
  const signature = JSON.stringify({ ...detail, saga: { ...saga, ageSeconds: 0 } });
  const unchanged = section.dataset.signature === signature && !section.hidden;
  if (unchanged) {
    // Only the age moves on.
    setText($('[data-testid="detail-updated"]'), `${clock(saga.updatedAt, true)} (${duration(saga.ageSeconds)} ago)`);
    if (!['completed', 'cancelled'].includes(saga.status)) renderGantt(detail);
    return;
  }
  section.dataset.signature = signature;
  section.hidden = false;
  section.dataset.sagaId = saga.sagaId;
  section.dataset.orderId = saga.orderId;
  section.dataset.status = saga.status;
  $('#detail-title').replaceChildren('Saga ', stateBadge(saga.status));
  const fact = (label, value, testid) => [el('dt', {}, label), el('dd', { 'data-testid': testid }, value)];
  $('#detail-facts').replaceChildren(
    ...fact('Order', el('span', { class: 'mono' }, saga.orderId, ' ', el('a', { href: `/#/order/${saga.orderId}`, class: 'small' }, 'open in the shop')), 'detail-order-id'),
    ...fact('Saga', el('span', { class: 'mono' }, saga.sagaId), 'detail-saga-id'),
    ...fact('Phase / step', `${saga.phase}${saga.step ? ' / ' + saga.step : ''}`, 'detail-step'),
    ...fact('Attempt', String(saga.attempt), 'detail-attempt'),
    ...fact('Amount', `${money(detail.amountCents)} (shipping ${money(detail.shippingCents)})`, 'detail-amount'),
    ...fact('Started', clock(saga.createdAt, true), 'detail-created'),
    ...fact('Last change', `${clock(saga.updatedAt, true)} (${duration(saga.ageSeconds)} ago)`, 'detail-updated'),
  );
  const failure = $('#detail-failure');
  if (detail.failure) {
    failure.hidden = false;
    failure.textContent = `Failed at ${detail.failure.step ?? '?'}: ${detail.failure.message ?? ''}${detail.failure.type ? ` (${detail.failure.type})` : ''}`;
  } else {
    failure.hidden = true;
  }
  $('#retry-box').hidden = saga.status !== 'needs_attention';
  renderGantt(detail);
  renderTimeline(detail);
  $('#events-count').textContent = String(detail.events.length);
  $('#events').replaceChildren(...detail.events.map((e) =>
    el('li', { 'data-testid': 'event' },
      el('span', { class: 'mono muted' }, `#${e.seq}`), ' ',
      el('strong', {}, e.status), e.step ? ` ${e.step}` : '', e.message ? ` · ${e.message}` : '',
      e.amountPaid != null ? ` · paid $${Number(e.amountPaid).toFixed(2)}` : '',
      el('span', { class: 'muted small' }, ` ${clock(e.at, true)}`))));
}

function renderTimeline(detail) {
  const history = detail.history;
  const start = Date.parse(history[0]?.at ?? detail.saga.createdAt);
  $('#timeline').replaceChildren(...history.map((h) => {
    const offset = (Date.parse(h.at) - start) / 1000;
    return el('li', { class: `tl-item kind-${h.kind}`, 'data-testid': 'timeline-entry', 'data-step': h.step, 'data-kind': h.kind },
      el('span', { class: 'tl-dot', 'aria-hidden': 'true' }),
      el('div', { class: 'tl-body' },
        el('div', { class: 'tl-head' },
          el('strong', { class: 'tl-step mono' }, h.step),
          el('span', { class: `kind-badge kind-${h.kind}` }, KIND_LABEL[h.kind] ?? h.kind),
          h.attempt ? el('span', { class: 'muted small' }, `attempt ${h.attempt}`) : null,
          h.durationMs != null ? el('span', { class: 'muted small', 'data-testid': 'duration' }, `${h.durationMs} ms`) : null),
        h.detail ? el('div', { class: 'tl-detail' }, h.detail) : null),
      el('time', { class: 'tl-time small muted', datetime: h.at }, `+${offset.toFixed(3)} s`, el('br'), clock(h.at, true)));
  }));
}

/** A lane per step; a bar from each command to its reply (or to now, while it waits). */
function renderGantt(detail) {
  const history = detail.history;
  const gantt = $('#gantt');
  if (!history.length) {
    gantt.replaceChildren();
    return;
  }
  const start = Date.parse(history[0].at);
  const finished = ['completed', 'cancelled'].includes(detail.saga.status);
  const lastAt = Math.max(...history.map((h) => Date.parse(h.at)));
  const end = finished ? lastAt : Math.max(lastAt, Date.now());
  const total = Math.max(end - start, 1);
  const lanes = new Map();
  const open = new Map();
  const lane = (step) => {
    if (!lanes.has(step)) lanes.set(step, []);
    return lanes.get(step);
  };
  for (const h of history) {
    const at = Date.parse(h.at);
    if (h.kind === 'sent') {
      open.set(h.step, { from: at, attempt: h.attempt });
      lane(h.step);
    } else if (REPLY_KINDS.has(h.kind) && (open.has(h.step) || h.durationMs != null)) {
      const began = open.get(h.step)?.from ?? (h.durationMs != null ? at - h.durationMs : at);
      open.delete(h.step);
      lane(h.step).push({ from: began, to: at, kind: h.kind, attempt: h.attempt, ms: h.durationMs });
    } else if (h.kind === 'retrying' || h.kind === 'parked' || h.kind === 'operatorRetry') {
      lane(h.step).push({ from: at, to: at, kind: h.kind, attempt: h.attempt });
    }
  }
  for (const [step, span] of open) lane(step).push({ from: span.from, to: end, kind: 'waiting', attempt: span.attempt });
  const pct = (t) => ((t - start) / total) * 100;
  gantt.replaceChildren(
    ...[...lanes].map(([step, spans]) =>
      el('div', { class: 'lane', 'data-step': step },
        el('span', { class: 'lane-label mono' }, step),
        el('div', { class: 'lane-track' },
          ...spans.map((s) => el('span', {
            class: `bar kind-${s.kind}`,
            style: `left:${pct(s.from).toFixed(2)}%;width:max(6px, ${(pct(s.to) - pct(s.from)).toFixed(2)}%)`,
            title: `${step}: ${KIND_LABEL[s.kind] ?? s.kind}${s.attempt ? `, attempt ${s.attempt}` : ''}${s.ms != null ? `, ${s.ms} ms` : ''}`,
          }))))),
    el('div', { class: 'lane axis' }, el('span', { class: 'lane-label' }),
      el('div', { class: 'lane-track axis-track' },
        el('span', {}, '0'), el('span', {}, `${(total / 1000).toFixed(total < 10000 ? 2 : 0)} s${finished ? '' : ' (now)'}`))),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Polling

async function poll() {
  if (state.polling) return;
  state.polling = true;
  clearTimeout(state.pollTimer);
  const f = filters();
  try {
    const [counts, rows, stuckRunning, stuckCompensating] = await Promise.all([
      api('/sagas/counts'),
      listSagas(f),
      api(`/sagas?status=running&olderThan=${f.threshold}&limit=1000`),
      api(`/sagas?status=compensating&olderThan=${f.threshold}&limit=1000`),
    ]);
    if (!counts.ok) throw new Error(`counts: HTTP ${counts.status}`);
    const stuckCount = (stuckRunning.body?.length ?? 0) + (stuckCompensating.body?.length ?? 0);
    renderCounts(counts.body, f, stuckCount);
    if (state.selected) await loadDetail();
    renderRows(rows, f);
    $('#list-error').hidden = true;
    state.lastOk = new Date();
    setLive(`Live · ${clock(state.lastOk.toISOString())}`, 'live');
  } catch (error) {
    if (error instanceof TokenRefused) {
      state.polling = false;
      askForToken(sessionStorage.getItem(TOKEN_KEY) ? 'That operator token was refused; enter it again.' : null);
      return;
    }
    setLive('Orchestrator unreachable, retrying…', 'lost');
    const box = $('#list-error');
    box.hidden = false;
    box.textContent = `Could not read the operator API at ${state.api}: ${error.message}`;
  } finally {
    state.polling = false;
    const delay = document.visibilityState === 'visible' ? POLL_MS : POLL_MS * 5;
    if (sessionStorage.getItem(TOKEN_KEY)) state.pollTimer = setTimeout(poll, delay);
  }
}

/** Polls at once. After a change of filters, rows new to the list are not flashed as new sagas. */
function refreshNow(filtersChanged = true) {
  if (filtersChanged) state.known = null;
  if (state.polling) {
    // A poll is in flight: run again as soon as it ends.
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(() => refreshNow(filtersChanged), 100);
    return;
  }
  poll();
}

function setLive(text, kind) {
  const live = $('#live-status');
  live.textContent = text;
  live.dataset.state = kind;
}

async function loadDetail() {
  const id = state.selected;
  let result;
  try {
    result = await api(`/sagas/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof TokenRefused) return;
    throw error;
  }
  if (id !== state.selected) return;
  if (result.ok) {
    state.detail = result.body;
    renderDetail(result.body);
  } else if (result.status === 404) {
    state.detail = null;
    delete $('#detail').dataset.signature;
    $('#detail').hidden = false;
    $('#detail-title').textContent = 'Saga not found';
    $('#detail-facts').replaceChildren(el('dd', {}, result.body?.message ?? `No saga ${id}.`));
    for (const id2 of ['#gantt', '#timeline', '#events']) $(id2).replaceChildren();
    $('#retry-box').hidden = true;
    $('#detail-failure').hidden = true;
  }
}

async function openSaga(id) {
  state.selected = id;
  history.replaceState(null, '', `#saga=${encodeURIComponent(id)}`);
  $('#retry-result').textContent = '';
  await loadDetail();
  for (const tr of $('#saga-rows').children) tr.classList.toggle('selected', tr.dataset.sagaId === state.detail?.saga.sagaId);
  const detail = $('#detail');
  if (!detail.hidden) {
    detail.focus({ preventScroll: true });
    if (window.matchMedia('(max-width: 1000px)').matches) detail.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }
}

function closeSaga() {
  state.selected = null;
  state.detail = null;
  $('#detail').hidden = true;
  history.replaceState(null, '', location.pathname + location.search);
  for (const tr of $('#saga-rows').children) tr.classList.remove('selected');
}

async function retrySaga() {
  const detail = state.detail;
  if (!detail) return;
  const button = $('#retry-saga');
  const out = $('#retry-result');
  button.disabled = true;
  out.textContent = 'Asking the orchestrator to retry…';
  try {
    const result = await api(`/sagas/${encodeURIComponent(detail.saga.sagaId)}/retry`, { method: 'POST' });
    out.textContent = result.ok ? 'Retry started: the compensation is being sent again.' : (result.body?.message ?? `Refused (HTTP ${result.status}).`);
    out.className = `small ${result.ok ? 'ok-text' : 'warning-text'}`;
  } catch (error) {
    if (error instanceof TokenRefused) {
      askForToken('That operator token was refused; enter it again.');
      return;
    }
    out.textContent = `Could not reach the orchestrator: ${error.message}`;
    out.className = 'small warning-text';
  } finally {
    button.disabled = false;
    refreshNow(false);
  }
}

async function init() {
  state.api = await findApi();
  $('#token-form').addEventListener('submit', tokenEntered);
  $('#forget-token').addEventListener('click', () => askForToken(null));
  $('#filters').addEventListener('submit', (event) => {
    event.preventDefault();
    const f = filters();
    refreshNow();
    // A full id: open it straight away.
    if (UUID.test(f.order)) openSaga(f.order);
  });
  $('#filters').addEventListener('reset', () => setTimeout(refreshNow, 0));
  for (const id of ['#filter-status', '#filter-step', '#stuck-threshold']) $(id).addEventListener('change', refreshNow);
  $('#close-detail').addEventListener('click', closeSaga);
  $('#retry-saga').addEventListener('click', retrySaga);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.selected) closeSaga();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refreshNow(false);
  });
  const params = new URLSearchParams(location.search);
  const fromHash = /^#saga=(.+)$/.exec(location.hash);
  if (params.get('orderId')) $('#filter-order').value = params.get('orderId');
  if (params.get('status')) $('#filter-status').value = params.get('status');
  if (fromHash) state.selected = decodeURIComponent(fromHash[1]);
  else if (UUID.test(params.get('orderId') ?? '')) state.selected = params.get('orderId');
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    askForToken(null);
    return;
  }
  $('#forget-token').hidden = false;
  if (state.selected) openSaga(state.selected);
  poll();
}

init();
