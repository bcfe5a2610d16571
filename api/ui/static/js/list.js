// The instances page: counts per status, a filtered and paged table of instances,
// refreshed live.

import {api, APIError} from './api.js';
import {h, clear, badge, fmtTime, fmtAgo, fmtDuration, parseTime, isFinished, instanceHref, poller, STATUSES} from './dom.js';

const REFRESH_MS = 2000;
const DETAIL_CONCURRENCY = 6;

// mountList renders the page into root; params are the URL's query (status, name,
// pageSize, id). It returns a function that stops the page's refreshing.
export function mountList(root, params) {
  const st = {
    statuses: new Set((params.get('status') || '').split(',').map((x) => x.trim().toUpperCase()).filter((x) => STATUSES.includes(x))),
    name: params.get('name') || '',
    pageSize: Number(params.get('pageSize')) || 25,
    id: params.get('id') || '',
    tokens: [''], // page tokens: tokens[i] starts page i
    page: 0,
    next: '',
    live: true,
    force: false, // refresh once even when not live (the filters or the page changed)
    details: new Map(), // id -> status of finished instances (they do not change)
    gen: 0, // bumps on every filter change, so late answers of an old query are dropped
  };

  const countsEl = h('section', {class: 'counts', 'aria-label': 'instances per status'});
  const nameSel = h('select', {id: 'filter-name', onchange: () => changed({name: nameSel.value})},
    h('option', {value: ''}, 'all workflows'));
  const statusBox = h('fieldset', {class: 'status-filter'}, h('legend', null, 'Status'),
    STATUSES.map((x) => h('label', {class: 'chip'},
      h('input', {type: 'checkbox', value: x, dataset: {status: x}, checked: st.statuses.has(x), onchange: (ev) => {
        if (ev.target.checked) st.statuses.add(x);
        else st.statuses.delete(x);
        changed({});
      }}), x.toLowerCase())));
  const idInput = h('input', {type: 'search', id: 'filter-id', placeholder: 'exact instance id', value: st.id,
    spellcheck: 'false', autocomplete: 'off'});
  const idForm = h('form', {class: 'id-search', onsubmit: (ev) => {
    ev.preventDefault();
    changed({id: idInput.value.trim()});
  }}, h('label', null, 'Instance id ', idInput), h('button', {type: 'submit'}, 'Find'));
  idInput.addEventListener('search', () => {
    if (!idInput.value) changed({id: ''});
  });
  const sizeSel = h('select', {id: 'page-size', onchange: () => changed({pageSize: Number(sizeSel.value)})},
    [10, 25, 50, 100, 250].map((n) => h('option', {value: n, selected: n === st.pageSize}, `${n} per page`)));
  const liveBox = h('input', {type: 'checkbox', id: 'live', checked: true, onchange: () => {
    st.live = liveBox.checked;
    if (st.live) poll.now();
  }});
  const updated = h('span', {class: 'updated', id: 'list-updated'});
  const tbody = h('tbody');
  const message = h('p', {class: 'notice', hidden: true});
  const prev = h('button', {type: 'button', id: 'page-prev', onclick: () => {
    if (st.page > 0) {
      st.page--;
      st.force = true;
      poll.now();
    }
  }}, '← Previous');
  const next = h('button', {type: 'button', id: 'page-next', onclick: () => {
    if (st.next) {
      st.tokens[st.page + 1] = st.next;
      st.page++;
      st.force = true;
      poll.now();
    }
  }}, 'Next →');
  const pageLabel = h('span', {class: 'page-label'});

  clear(root,
    h('div', {class: 'page-head'}, h('h1', null, 'Instances'), h('span', {class: 'spacer'}),
      h('label', {class: 'live'}, liveBox, ' live'), updated),
    countsEl,
    h('form', {class: 'filters', onsubmit: (ev) => ev.preventDefault()},
      statusBox, h('label', null, 'Workflow ', nameSel), sizeSel),
    idForm,
    h('table', {class: 'instances', id: 'instances'},
      h('thead', null, h('tr', null,
        h('th', null, 'Instance ID'), h('th', null, 'Workflow'), h('th', null, 'Status'),
        h('th', null, 'Created'), h('th', null, 'Last updated'), h('th', {class: 'num'}, 'Duration'))),
      tbody),
    message,
    h('div', {class: 'pager'}, prev, pageLabel, next, h('span', {class: 'spacer'}),
      h('span', {class: 'hint'}, 'oldest first')));

  function changed(patch) {
    if ('name' in patch) st.name = patch.name;
    if ('pageSize' in patch) st.pageSize = patch.pageSize;
    if ('id' in patch) st.id = patch.id;
    st.tokens = [''];
    st.page = 0;
    st.gen++;
    const q = new URLSearchParams();
    if (st.statuses.size) q.set('status', [...st.statuses].join(','));
    if (st.name) q.set('name', st.name);
    if (st.pageSize !== 25) q.set('pageSize', String(st.pageSize));
    if (st.id) q.set('id', st.id);
    const qs = q.toString();
    history.replaceState(null, '', `#/${qs ? `?${qs}` : ''}`);
    renderCounts(lastCounts);
    st.force = true;
    poll.now();
  }

  let lastCounts = null;
  function renderCounts(counts) {
    if (!counts) return;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const card = (status, n, label) => h('button', {
      type: 'button',
      class: `count-card st-${status.toLowerCase()}${(status === 'ALL' ? st.statuses.size === 0 : st.statuses.size === 1 && st.statuses.has(status)) ? ' active' : ''}`,
      dataset: {status, count: n},
      title: status === 'ALL' ? 'show every status' : `show only ${status.toLowerCase()} instances`,
      onclick: () => {
        st.statuses = new Set(status === 'ALL' || (st.statuses.size === 1 && st.statuses.has(status)) ? [] : [status]);
        for (const cb of statusBox.querySelectorAll('input')) cb.checked = st.statuses.has(cb.value);
        changed({});
      },
    }, h('span', {class: 'n'}, String(n)), h('span', {class: 'label'}, label));
    clear(countsEl, card('ALL', total, 'all'), ...STATUSES.map((x) => card(x, counts[x] || 0, x.toLowerCase())));
  }

  async function detailsOf(ids, gen) {
    const out = new Map();
    const todo = ids.filter((id) => {
      const d = st.details.get(id);
      if (d) out.set(id, d);
      return !d;
    });
    let i = 0;
    const worker = async () => {
      while (i < todo.length && gen === st.gen) {
        const id = todo[i++];
        try {
          const d = await api.status(id);
          out.set(id, d);
          if (isFinished(d.status)) st.details.set(id, d);
        } catch (err) {
          if (err instanceof APIError && err.status === 404) out.set(id, {id, status: 'PURGED'});
          else throw err;
        }
      }
    };
    await Promise.all(Array.from({length: Math.min(DETAIL_CONCURRENCY, todo.length)}, worker));
    return out;
  }

  function row(inst, d, now) {
    const status = d?.status || inst.status;
    const created = parseTime(inst.createdAt);
    const lastUpdated = parseTime(d?.lastUpdatedAt);
    const completed = parseTime(d?.completedAt);
    let dur = '—';
    if (status === 'PENDING' && d?.scheduledStartAt) dur = `starts ${fmtAgo(d.scheduledStartAt, now)}`;
    else if (Number.isFinite(completed)) dur = fmtDuration(completed - created);
    else if (d && status !== 'PURGED') dur = `${fmtDuration(now - created)} so far`;
    const ago = Number.isFinite(lastUpdated) ? fmtAgo(lastUpdated, now) : '—';
    // A row whose instance did not change is kept and its times updated, so a
    // refresh never swaps a link from under a click.
    const sig = `${status}|${d?.lastUpdatedAt}`;
    const kept = rows.get(inst.id);
    if (kept && kept.sig === sig) {
      kept.tr.cells[4].textContent = ago;
      kept.tr.cells[5].textContent = dur;
      return kept.tr;
    }
    const tr = h('tr', {dataset: {id: inst.id, status}},
      h('td', {class: 'id'}, h('a', {href: instanceHref(inst.id)}, inst.id)),
      h('td', null, inst.name),
      h('td', null, badge(status)),
      h('td', {title: inst.createdAt}, fmtTime(created)),
      h('td', {title: d?.lastUpdatedAt || ''}, ago),
      h('td', {class: 'num'}, dur));
    rows.set(inst.id, {tr, sig});
    return tr;
  }
  const rows = new Map(); // id -> {tr, sig}: the rows drawn

  async function refresh() {
    if (!st.live && !st.force && root.dataset.loaded) return;
    st.force = false;
    const gen = st.gen;
    const now = Date.now();
    const countsP = api.counts();
    if (st.id) {
      let d = null;
      try {
        d = await api.status(st.id);
      } catch (err) {
        if (!(err instanceof APIError && err.status === 404)) throw err;
      }
      const counts = await countsP;
      if (gen !== st.gen) return;
      lastCounts = counts;
      renderCounts(counts);
      clear(tbody);
      message.hidden = Boolean(d);
      message.textContent = d ? '' : `No instance has the id "${st.id}".`;
      if (d) tbody.append(row(d, d, now));
      st.next = '';
      pageLabel.textContent = '';
    } else {
      const q = {pageSize: String(st.pageSize)};
      if (st.statuses.size) q.status = [...st.statuses].join(',');
      if (st.name) q.name = st.name;
      if (st.tokens[st.page]) q.pageToken = st.tokens[st.page];
      const [counts, page] = await Promise.all([countsP, api.list(q)]);
      if (gen !== st.gen) return;
      const details = await detailsOf(page.instances.map((x) => x.id), gen);
      if (gen !== st.gen) return;
      lastCounts = counts;
      renderCounts(counts);
      st.next = page.nextPageToken || '';
      clear(tbody, ...page.instances.map((inst) => row(inst, details.get(inst.id), now)));
      message.hidden = page.instances.length > 0;
      message.textContent = st.statuses.size || st.name ?
        'No instances match these filters.' :
        'No instances yet. Start one with `weft start FanOutFanInWorkflow --input \'{"count":100,"maxParallel":10}\'`.';
      const first = st.page * st.pageSize + 1;
      pageLabel.textContent = page.instances.length ?
        `page ${st.page + 1} · ${first}–${first + page.instances.length - 1}` : `page ${st.page + 1}`;
    }
    prev.disabled = st.page === 0 || Boolean(st.id);
    next.disabled = !st.next || Boolean(st.id);
    updated.textContent = `updated ${new Date(now).toLocaleTimeString()}`;
    root.dataset.loaded = 'true';
  }

  api.workflows().then((w) => {
    for (const name of w.workflows || []) nameSel.append(h('option', {value: name, selected: name === st.name}, name));
    if (st.name && !(w.workflows || []).includes(st.name)) nameSel.append(h('option', {value: st.name, selected: true}, st.name));
  }).catch((err) => console.warn('workflows', err));

  const poll = poller(async () => {
    try {
      await refresh();
    } catch (err) {
      message.hidden = false;
      message.classList.add('error');
      message.textContent = `Could not load instances: ${err.message}`;
      return;
    }
    message.classList.remove('error');
  }, REFRESH_MS);
  return () => poll.stop();
}
