// One instance's page: its status and payloads, the actions on it, the diagram and
// the timeline drawn from its history, and the history itself as `weft history`
// prints it.

import {api, APIError} from './api.js';
import {h, clear, badge, fmtTime, fmtClock, fmtClockUTC, fmtDuration, fmtAgo, parseTime, pretty, short, isFinished, instanceHref, poller} from './dom.js';
import {buildModel, duration} from './model.js';
import {renderTimeline, outcomeText} from './timeline.js';
import {renderDiagram} from './diagram.js';

const REFRESH_MS = 1500;

// dropDialog removes the listeners of the confirmation dialog's current action.
let dropDialog = null;
const HISTORY_ROWS = 1000; // history table rows before "show all"

// mountInstance renders instance id's page into root and returns a function that
// stops its refreshing.
export function mountInstance(root, id) {
  const ui = {
    expanded: new Set(),
    showAll: new Set(),
    selected: null,
    rerender: () => draw(),
    historyAll: false,
  };
  let status = null;
  let events = [];
  let seenUpdate = '';
  let gone = false;

  const statusEl = h('span', {id: 'inst-status'});
  const headMeta = h('div', {class: 'inst-meta'});
  const actionsEl = h('div', {class: 'actions', role: 'toolbar', 'aria-label': 'actions'});
  const resultEl = h('p', {class: 'action-result', id: 'action-result', role: 'status', hidden: true});
  const panels = h('section', {class: 'panels'});
  const failureEl = h('section', {class: 'failure', id: 'failure', hidden: true});
  const diagramEl = h('div', {class: 'diagram-wrap', id: 'diagram'});
  const timelineEl = h('div', {class: 'timeline-wrap', id: 'timeline'});
  const genNote = h('p', {class: 'notice', id: 'generation-note', hidden: true});
  const detailEl = h('section', {class: 'task-detail', id: 'task-detail', hidden: true});
  const historyBody = h('tbody');
  const historyCount = h('span', {class: 'hint'});
  const historyEl = h('details', {class: 'history', id: 'history', ontoggle: () => drawHistory()},
    h('summary', null, 'History events ', historyCount),
    h('p', {class: 'hint'}, 'The events the timeline is drawn from, as ', h('code', null, `weft history ${id}`), ' prints them.'),
    h('table', {class: 'history-table'},
      h('thead', null, h('tr', null, ['Time (UTC)', 'Offset', 'Event', 'Task', 'Name', 'Duration', 'Outcome'].map((x) => h('th', null, x)))),
      historyBody));
  const errorEl = h('p', {class: 'notice error', hidden: true});

  clear(root,
    h('nav', {class: 'crumbs'}, h('a', {href: '#/'}, 'Instances'), ' / ', h('span', null, id)),
    h('div', {class: 'page-head'}, h('h1', {class: 'inst-id'}, id), statusEl),
    headMeta,
    actionsEl,
    resultEl,
    errorEl,
    failureEl,
    panels,
    h('section', {class: 'card'}, h('h2', null, 'Diagram'),
      h('p', {class: 'hint'}, 'The structure of the run so far: steps in a line, parallel branches between a fork and a join, stacked nodes for many tasks of one name.'),
      diagramEl),
    h('section', {class: 'card'}, h('h2', null, 'Timeline'), genNote, timelineEl, detailEl),
    h('section', {class: 'card'}, historyEl));

  function draw() {
    if (!status) return;
    const now = Date.now();
    const m = buildModel(status, events, now);
    ui.model = m;
    // Header.
    clear(statusEl, badge(status.status, {id: 'inst-status-badge', dataset: {status: status.status}}));
    statusEl.dataset.status = status.status;
    const created = parseTime(status.createdAt);
    const completed = parseTime(status.completedAt);
    const meta = [
      ['Workflow', status.name],
      status.version ? ['Version', status.version] : null,
      status.stall ? ['Stalled', `${status.stall.reason}: ${status.stall.description}`] : null,
      ['Created', fmtTime(status.createdAt), status.createdAt],
      status.scheduledStartAt ? ['Scheduled start', fmtTime(status.scheduledStartAt), status.scheduledStartAt] : null,
      ['Last updated', `${fmtTime(status.lastUpdatedAt)} (${fmtAgo(status.lastUpdatedAt, now)})`, status.lastUpdatedAt],
      status.completedAt ? ['Completed', fmtTime(status.completedAt), status.completedAt] : null,
      ['Duration', Number.isFinite(completed) ? fmtDuration(completed - created) : `${fmtDuration(now - created)} so far`],
      status.generation ? ['Generation', `${status.generation} (continued as new ${status.generation} time${status.generation === 1 ? '' : 's'})`] : null,
      status.parentId ? ['Parent', h('a', {href: instanceHref(status.parentId)}, status.parentId)] : null,
    ].filter(Boolean);
    clear(headMeta, h('dl', null, meta.map(([k, v, title]) => h('div', null, h('dt', null, k), h('dd', {title: title || null}, v)))));
    drawActions(m);
    // Payloads.
    const payload = (title, idAttr, v) => h('div', {class: 'panel', id: idAttr},
      h('h3', null, title), v === undefined || v === null ? h('p', {class: 'empty'}, '—') : h('pre', null, pretty(v)));
    clear(panels,
      payload('Input', 'input', status.input),
      payload('Output', 'output', status.output),
      payload('Custom status', 'custom-status', status.customStatus));
    const f = status.failure;
    failureEl.hidden = !f;
    if (f) {
      clear(failureEl,
        h('h2', null, 'Failure'),
        h('dl', null, h('dt', null, 'Type'), h('dd', {id: 'failure-type'}, f.type || '—'),
          h('dt', null, 'Message'), h('dd', {id: 'failure-message'}, f.message || '—'),
          f.nonRetriable ? [h('dt', null, 'Retriable'), h('dd', null, 'no')] : null),
        f.stack ? h('details', {open: true}, h('summary', null, 'Stack'), h('pre', {class: 'stack'}, f.stack)) : null);
    }
    // Diagram and timeline.
    const sx = diagramEl.scrollLeft;
    clear(diagramEl, renderDiagram(m, now, select));
    diagramEl.scrollLeft = sx;
    genNote.hidden = !status.generation;
    genNote.textContent = status.generation ?
      `Generation ${status.generation}: this instance continued as new ${status.generation} time${status.generation === 1 ? '' : 's'}; ` +
      'the server keeps only the current generation\'s history, so the timeline starts where this generation started.' : '';
    clear(timelineEl, events.length ? renderTimeline(m, ui, now, select) :
      h('p', {class: 'empty'}, status.status === 'PENDING' ? 'Not started yet.' : 'No history.'));
    drawDetail(now);
    historyCount.textContent = `(${events.length})`;
    if (historyEl.open) drawHistory();
    root.dataset.loaded = 'true';
  }

  function select(taskId) {
    ui.selected = ui.selected === taskId ? null : taskId;
    draw();
    if (ui.selected !== null) detailEl.scrollIntoView({block: 'nearest'});
  }

  function drawDetail(now) {
    const t = ui.selected !== null ? ui.model?.byId.get(ui.selected) : null;
    detailEl.hidden = !t;
    if (!t) return;
    const rows = [
      ['Task', `#${t.id} · ${t.kind}`],
      ['Name', t.kind === 'wait' ? `wait for event ${t.name}` : t.name || '—'],
      ['Scheduled', `${fmtClock(t.scheduledAt)} (+${fmtDuration(t.scheduledAt - ui.model.t0)})`],
      Number.isFinite(t.endAt) ? ['Ended', `${fmtClock(t.endAt)} (+${fmtDuration(t.endAt - ui.model.t0)}) after ${fmtDuration(duration(t))}`] : null,
      ['Outcome', outcomeText(t, now)],
      Number.isFinite(t.fireAt) ? ['Fires at', fmtTime(t.fireAt)] : null,
      t.kind === 'child' ? ['Child instance', h('a', {href: instanceHref(t.instance)}, t.instance)] : null,
      t.retry ? ['Retry policy', retryText(t.retry)] : null,
      t.kind === 'activity' ? ['Attempts', attemptsText(t)] : null,
      t.event ? ['Event', `${t.event.name} at ${fmtClock(t.event.time)}`] : null,
    ].filter(Boolean);
    const payload = (title, v) => (v === undefined || v === null ? null :
      h('div', {class: 'panel'}, h('h3', null, title), h('pre', null, pretty(v))));
    // A finished instance can be rerun from any activity or child workflow call.
    const rerunnable = (t.kind === 'activity' || t.kind === 'child') && isFinished(status.status) && !gone;
    clear(detailEl,
      h('div', {class: 'detail-head'},
        h('h3', null, `Task #${t.id}: ${t.kind === 'wait' ? `wait for ${t.name}` : t.name || t.kind}`),
        rerunnable ? h('button', {type: 'button', id: 'act-rerun', onclick: () => rerunDialog(t)}, 'Rerun from here…') : null,
        h('button', {type: 'button', class: 'link', onclick: () => select(t.id)}, 'close')),
      h('dl', null, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      h('div', {class: 'panels'},
        payload('Input', t.input),
        t.failure ? h('div', {class: 'panel'}, h('h3', null, 'Failure'),
          h('pre', null, `${t.failure.type ? `${t.failure.type}: ` : ''}${t.failure.message}${t.failure.stack ? `\n\n${t.failure.stack}` : ''}`)) :
          payload(t.kind === 'wait' ? 'Event data' : 'Output', t.kind === 'wait' ? t.event?.data : t.output)));
  }

  function drawHistory() {
    if (!historyEl.open) return;
    const t0 = events.length ? parseTime(events[0].time) : 0;
    const scheduled = new Map();
    const shown = ui.historyAll ? events : events.slice(0, HISTORY_ROWS);
    const rows = [];
    for (const ev of events) {
      // Walk every event (names and durations need the earlier ones); render the shown ones.
      let name = ev.name || '';
      let dur = '';
      let outcome = '';
      const time = parseTime(ev.time);
      switch (ev.kind) {
        case 'activity-scheduled': case 'child-scheduled': case 'timer-created':
          scheduled.set(ev.taskId, ev);
          if (ev.kind === 'child-scheduled') outcome = `instance ${ev.instance}`;
          if (ev.fireAt) outcome = `fires at ${ev.fireAt}`;
          break;
        case 'activity-completed': case 'child-completed': case 'timer-fired': case 'activity-failed': case 'child-failed': case 'timer-canceled': {
          const s = scheduled.get(ev.taskId);
          if (s) {
            name = s.name || name;
            dur = fmtDuration(time - parseTime(s.time));
          }
          outcome = ev.failure ? `failed ${ev.failure.type}: ${short(ev.failure.message, 80)}` :
            ev.kind === 'timer-canceled' ? 'canceled' : `ok ${short(ev.data, 40)}`;
          break;
        }
        case 'event-raised': case 'workflow-terminated': case 'workflow-suspended': case 'workflow-resumed':
          outcome = short(ev.data, 40);
          break;
        case 'event-sent':
          outcome = `to ${ev.instance} ${short(ev.data, 40)}`;
          break;
        case 'workflow-completed': case 'continued-as-new':
          outcome = short(ev.data, 60);
          break;
        case 'workflow-failed':
          outcome = ev.failure ? `${ev.failure.type}: ${short(ev.failure.message, 80)}` : '';
          break;
      }
      if (rows.length < shown.length) {
        rows.push(h('tr', {class: `ev-${ev.kind}`},
          h('td', {title: ev.time}, fmtClockUTC(time)), h('td', null, `+${fmtDuration(time - t0)}`), h('td', null, ev.kind),
          h('td', {class: 'num'}, ev.taskId ?? ''), h('td', null, name), h('td', {class: 'num'}, dur), h('td', null, outcome)));
      }
    }
    clear(historyBody, ...rows);
    if (shown.length < events.length) {
      historyBody.append(h('tr', null, h('td', {colspan: 7},
        h('button', {type: 'button', class: 'link', onclick: () => {
          ui.historyAll = true;
          drawHistory();
        }}, `show all ${events.length} events`))));
    }
  }

  // --- actions -----------------------------------------------------------------

  // The buttons are made once and only updated, so a click never lands on a
  // button that a refresh is replacing.
  let pendingWait = null;
  const btn = (idAttr, label, onclick, cls = '') => h('button', {type: 'button', id: idAttr, class: cls, onclick}, label);
  const buttons = {
    raise: btn('act-raise', 'Raise event…', () => raiseDialog(pendingWait ? pendingWait.name : '')),
    pause: btn('act-pause', 'Pause…', () => simpleDialog('Pause', 'suspend')),
    resume: btn('act-resume', 'Resume…', () => simpleDialog('Resume', 'resume')),
    terminate: btn('act-terminate', 'Terminate…', terminateDialog, 'danger'),
    purge: btn('act-purge', 'Purge…', purgeDialog, 'danger'),
  };
  const waitHint = h('span', {class: 'hint'});
  clear(actionsEl, ...Object.values(buttons), waitHint);
  for (const b of Object.values(buttons)) b.disabled = true; // until the status is known

  function drawActions(m) {
    const s = status.status;
    const done = isFinished(s);
    pendingWait = m.tasks.find((t) => t.kind === 'wait' && t.outcome === 'waiting') || null;
    buttons.raise.disabled = done || gone;
    buttons.pause.disabled = s !== 'RUNNING' || gone;
    buttons.resume.disabled = s !== 'SUSPENDED' || gone;
    buttons.terminate.disabled = done || gone;
    buttons.purge.disabled = !done || gone;
    waitHint.hidden = !pendingWait;
    clear(waitHint, pendingWait ? ['waiting for event ', h('code', null, pendingWait.name)] : null);
  }

  function raiseDialog(suggested) {
    // One idempotency key per event as typed: submitting the same name and
    // data again (after an error that left the outcome unknown) raises it
    // once; an edited event is a new one.
    let key = '', keyFor = null;
    const name = h('input', {id: 'raise-name', required: true, value: suggested, autocomplete: 'off', spellcheck: 'false'});
    const data = h('textarea', {id: 'raise-data', rows: 5, spellcheck: 'false', placeholder: '{"approved": true}'});
    confirmAction({
      title: `Raise an event on ${id}`,
      body: [h('label', null, 'Event name', name),
        h('label', null, 'Data (JSON, optional)', data),
        h('p', {class: 'hint'}, 'The workflow receives it in WaitForExternalEvent; events nobody waits for yet are buffered.')],
      ok: 'Raise event',
      focus: suggested ? data : name,
      run: async () => {
        const n = name.value.trim();
        if (!n) throw new Error('The event needs a name.');
        const text = data.value.trim();
        if (text) {
          try {
            JSON.parse(text);
          } catch (err) {
            throw new Error(`The data is not valid JSON (${err.message}); text needs quotes: "text".`);
          }
        }
        if (keyFor !== `${n}\u0000${text}`) {
          keyFor = `${n}\u0000${text}`;
          key = randomKey();
        }
        await api.raise(id, n, text, key);
        return `Event ${n} raised`;
      },
    });
  }

  function simpleDialog(label, op) {
    const reason = h('input', {id: `${op}-reason`, autocomplete: 'off'});
    confirmAction({
      title: `${label} ${id}?`,
      body: [h('p', null, op === 'suspend' ?
        'The instance stops making progress: results and events that arrive are kept and applied when it resumes.' :
        'The instance continues where it was paused.'),
      h('label', null, 'Reason (optional)', reason)],
      ok: label,
      focus: reason,
      run: async () => {
        await api[op](id, reason.value.trim());
        return `${label} accepted`;
      },
    });
  }

  function terminateDialog() {
    const reason = h('input', {id: 'terminate-reason', autocomplete: 'off'});
    const recursive = h('input', {type: 'checkbox', id: 'terminate-recursive'});
    confirmAction({
      title: `Terminate ${id}?`,
      body: [h('p', null, 'The instance ends now as TERMINATED; activities in flight are abandoned. This cannot be undone.'),
        h('label', null, 'Reason (optional)', reason),
        h('label', {class: 'check'}, recursive, ' also terminate its child workflows')],
      ok: 'Terminate',
      danger: true,
      focus: reason,
      run: async () => {
        const text = reason.value.trim();
        await api.terminate(id, text, recursive.checked);
        return 'Terminate accepted';
      },
    });
  }

  function rerunDialog(t) {
    const newId = h('input', {id: 'rerun-id', autocomplete: 'off', spellcheck: 'false', placeholder: 'a random id'});
    const input = h('textarea', {id: 'rerun-input', rows: 4, spellcheck: 'false', placeholder: 'the call\'s input as it was'});
    const childId = t.kind === 'child' ? h('input', {id: 'rerun-child-id', autocomplete: 'off', spellcheck: 'false', placeholder: 'derived from the new id'}) : null;
    confirmAction({
      title: `Rerun ${id} from task #${t.id} (${t.name})?`,
      body: [h('p', null, 'A new instance keeps this history up to this call, runs the call again, and goes on with the code deployed now. This instance is not changed.'),
        h('label', null, 'New instance id (optional)', newId),
        h('label', null, `New input of ${t.name} (JSON, optional)`, input),
        childId ? h('label', null, 'Child instance id (optional)', childId) : null].filter(Boolean),
      ok: 'Rerun',
      focus: newId,
      run: async () => {
        const body = {fromEvent: t.id};
        if (newId.value.trim()) body.newInstanceId = newId.value.trim();
        if (childId?.value.trim()) body.newChildInstanceId = childId.value.trim();
        const text = input.value.trim();
        if (text) {
          try {
            body.input = JSON.parse(text);
          } catch (err) {
            throw new Error(`The input is not valid JSON (${err.message}); text needs quotes: "text".`);
          }
        }
        const res = await api.rerun(id, body);
        return {navigate: instanceHref(res.id)};
      },
    });
  }

  function purgeDialog() {
    const recursive = h('input', {type: 'checkbox', id: 'purge-recursive'});
    confirmAction({
      title: `Purge ${id}?`,
      body: [h('p', null, 'Deletes the instance, its status and its history for good.'),
        h('label', {class: 'check'}, recursive, ' also purge its child workflows')],
      ok: 'Purge',
      danger: true,
      run: async () => {
        await api.purge(id, recursive.checked);
        return 'Purged';
      },
    });
  }

  // confirmAction opens the confirmation dialog; on OK it runs run(), keeps the
  // dialog open with the error if it fails, and otherwise shows what it did and
  // the instance's status once it changed (or after a few seconds).
  function confirmAction({title, body, ok, danger, focus, run}) {
    const dlg = document.getElementById('confirm-dialog');
    const form = document.getElementById('confirm-form');
    const okBtn = document.getElementById('confirm-ok');
    const cancel = document.getElementById('confirm-cancel');
    const err = document.getElementById('confirm-error');
    document.getElementById('confirm-title').textContent = title;
    clear(document.getElementById('confirm-body'), ...body);
    okBtn.textContent = ok;
    okBtn.className = danger ? 'danger' : 'primary';
    okBtn.disabled = false;
    err.hidden = true;
    const before = status?.status;
    // However the dialog closes (OK, Cancel, Escape, leaving the page), its
    // listeners go with it, so a later dialog cannot run this action. The close
    // event comes later, in a task of its own: by then the dialog may be open
    // again for another action, whose listeners it must leave alone.
    if (dropDialog) dropDialog();
    const cleanup = () => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dlg.removeEventListener('close', onClose);
      if (dropDialog === cleanup) dropDialog = null;
    };
    dropDialog = cleanup;
    const onClose = () => {
      if (!dlg.open) cleanup();
    };
    const close = () => {
      cleanup();
      dlg.close();
    };
    const onCancel = () => close();
    const onSubmit = async (ev) => {
      ev.preventDefault();
      okBtn.disabled = true;
      let what;
      try {
        what = await run();
      } catch (e) {
        err.textContent = e instanceof APIError ? `${e.code || e.status}: ${e.message}` : e.message;
        err.hidden = false;
        okBtn.disabled = false;
        return;
      }
      close();
      if (what?.navigate) { // the action made another instance: show it
        location.hash = what.navigate;
        return;
      }
      resultEl.hidden = false;
      resultEl.className = 'action-result pending';
      resultEl.textContent = `${what}; waiting for the status…`;
      let after;
      try {
        after = await settle(before);
      } catch (e) {
        after = `unknown (${e.message})`;
      }
      resultEl.className = 'action-result done';
      resultEl.textContent = after === 'PURGED' ? `${what}: the instance and its history are deleted.` :
        `${what}. Status: ${after}${after === before ? ' (unchanged)' : ''}.`;
      resultEl.dataset.status = after;
      kick();
    };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    (focus || okBtn).focus();
  }

  // settle polls the status until it differs from before, for up to 5 s.
  async function settle(before) {
    const deadline = Date.now() + 5000;
    let cur = before;
    for (;;) {
      try {
        cur = (await api.status(id)).status;
      } catch (e) {
        if (e instanceof APIError && e.status === 404) return 'PURGED';
        throw e;
      }
      if (cur !== before || Date.now() > deadline) return cur;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  // --- refresh -----------------------------------------------------------------

  async function refresh() {
    if (gone) return;
    let st;
    try {
      st = await api.status(id);
    } catch (e) {
      if (e instanceof APIError && e.status === 404) {
        gone = true;
        errorEl.hidden = false;
        errorEl.textContent = status ? `Instance ${id} no longer exists (purged).` : `No instance has the id "${id}".`;
        statusEl.dataset.status = 'PURGED';
        clear(statusEl, badge(status ? 'PURGED' : 'NOT FOUND', {id: 'inst-status-badge', dataset: {status: 'PURGED'}}));
        for (const b of Object.values(buttons)) b.disabled = true;
        waitHint.hidden = true;
        root.dataset.loaded = 'true';
        return;
      }
      throw e;
    }
    const key = `${st.status}|${st.lastUpdatedAt}`;
    if (key !== seenUpdate) {
      const hist = await api.history(id);
      events = hist.events || [];
      seenUpdate = key;
    }
    status = st;
    errorEl.hidden = true;
    draw();
  }

  let unmounted = false;
  const load = async () => {
    if (unmounted) return;
    try {
      await refresh();
    } catch (e) {
      errorEl.hidden = false;
      errorEl.textContent = `Could not load ${id}: ${e.message}`;
      return;
    }
    // A finished instance does not change: stop refreshing it (an action refreshes it once).
    if (status && isFinished(status.status)) poll.stop();
  };
  const poll = poller(load, REFRESH_MS);
  // kick refreshes now: through the poller while it runs, once after it stopped.
  const kick = () => (status && isFinished(status.status) ? load() : poll.now());
  return () => {
    unmounted = true;
    poll.stop();
  };
}

// attemptsText says how many attempts an activity made and why each failed
// one was run again (its history's activity-retrying markers).
function attemptsText(t) {
  if (t.retries.length) {
    return h('div', null, `${t.attemptsAtLeast ? 'at least ' : ''}${t.attempts}`, h('ul', {class: 'retries'}, t.retries.map((r) => h('li', null,
      `attempt ${r.attempt} failed at ${fmtClock(r.time)}` +
      (r.failure ? `: ${r.failure.type ? `${r.failure.type}: ` : ''}${r.failure.message}` : '') +
      (Number.isFinite(r.nextAt) ? `; next attempt at ${fmtClock(r.nextAt)}` : '')))));
  }
  if (t.attempts) return `${t.attempts} (from the failure message)`;
  return Number.isFinite(t.endAt) ? '1 (no failed attempt recorded)' : '1 so far';
}

function retryText(r) {
  const parts = [];
  if (r.maxAttempts) parts.push(`up to ${r.maxAttempts} attempts`);
  if (r.firstRetryInterval) parts.push(`first retry after ${fmtDuration(r.firstRetryInterval / 1e6)}`);
  if (r.backoffCoefficient) parts.push(`backoff ×${r.backoffCoefficient}`);
  if (r.maxRetryInterval) parts.push(`at most ${fmtDuration(r.maxRetryInterval / 1e6)} apart`);
  if (r.retryTimeout) parts.push(`give up after ${fmtDuration(r.retryTimeout / 1e6)}`);
  return parts.join(', ') || 'default';
}

// randomKey is a fresh idempotency key: 32 hex digits (crypto.randomUUID
// needs a secure context; the UI may be served over plain HTTP).
function randomKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
