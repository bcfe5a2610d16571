// The schedules page: every schedule with its timetable, state, next tick,
// runs in flight and counts, the buttons that pause, resume, trigger and
// delete it, its latest actions (each run linking to its instance), and a
// form that creates one. Refreshed every 2 s.

import {api, APIError} from './api.js';
import {h, clear, fmtTime, instanceHref, poller} from './dom.js';

const OVERLAPS = ['skip', 'buffer-one', 'allow-all', 'terminate-previous'];

export function mountSchedules(root) {
  const rows = h('tbody');
  const summary = h('p', {class: 'updated', id: 'schedules-summary'});
  const message = h('p', {class: 'notice', id: 'schedules-message', hidden: true});
  const open = new Set(); // schedules whose recent actions are shown
  const form = createForm(() => poll.now(), message);
  clear(root,
    h('div', {class: 'page-head'}, h('h1', null, 'Schedules'), summary),
    message,
    h('table', {class: 'grid', id: 'schedules'},
      h('thead', null, h('tr', null, ['Schedule', 'Workflow', 'Timetable', 'Overlap', 'State', 'Next', 'Running', 'Started', 'Skipped', 'Missed', 'Failed', ''].map((x) => h('th', null, x)))),
      rows),
    form);

  const act = async (what, op) => {
    try {
      const r = await op();
      show(message, r, false);
    } catch (e) {
      show(message, `${what} failed: ${e instanceof APIError ? `${e.code || e.status}: ${e.message}` : e.message}`, true);
    }
    poll.now();
  };

  const poll = poller(async () => {
    let list;
    try {
      list = (await api.schedules()).schedules || [];
    } catch (e) {
      show(message, `Could not load the schedules: ${e.message}`, true);
      root.dataset.loaded = 'true';
      return;
    }
    const trs = [];
    for (const sc of list) {
      const state = sc.status !== 'RUNNING' ? `ended (${sc.status})` : sc.paused ? 'paused' : 'active';
      const timetable = sc.spec.every ? `every ${sc.spec.every}` : sc.spec.cron;
      trs.push(h('tr', {dataset: {id: sc.id, state}},
        h('td', {class: 'mono'}, h('a', {href: instanceHref(sc.instance), title: 'the schedule\'s own instance: every tick in its history'}, sc.id)),
        h('td', null, sc.spec.workflow, sc.spec.version ? ` (${sc.spec.version})` : ''),
        h('td', {class: 'mono'}, timetable, sc.spec.jitter ? ` ± ${sc.spec.jitter}` : ''),
        h('td', null, sc.spec.overlap),
        h('td', {class: 'sched-state', title: sc.note || ''}, h('span', {class: `badge sched-${state.split(' ')[0]}`}, state), sc.note ? ` ${sc.note}` : ''),
        h('td', {class: 'sched-next'}, sc.next && !sc.next.startsWith('0001') ? fmtTime(sc.next) : '–'),
        h('td', null, (sc.running || []).map((id) => h('a', {class: 'mono run', href: instanceHref(id)}, id, ' '))),
        h('td', {class: 'num', dataset: {count: 'started'}}, String(sc.counts.started)),
        h('td', {class: 'num'}, String(sc.counts.skipped)),
        h('td', {class: 'num'}, String(sc.counts.missed)),
        h('td', {class: 'num'}, String(sc.counts.failed)),
        h('td', {class: 'actions'},
          sc.paused
            ? h('button', {type: 'button', class: 'resume', onclick: () => act('Resume', async () => { await api.scheduleCommand(sc.id, 'resume'); return `Resumed ${sc.id}.`; })}, 'Resume')
            : h('button', {type: 'button', class: 'pause', onclick: () => act('Pause', async () => { await api.scheduleCommand(sc.id, 'pause', 'paused from the UI'); return `Paused ${sc.id}.`; })}, 'Pause'),
          h('button', {type: 'button', class: 'trigger', onclick: () => act('Trigger', async () => {
            const a = await api.triggerSchedule(sc.id);
            return a.outcome === 'started' ? `Started ${a.run}.` : `The trigger was ${a.outcome}: ${a.reason}`;
          })}, 'Run now'),
          h('button', {type: 'button', class: 'recent', 'aria-expanded': open.has(sc.id) ? 'true' : 'false', onclick: () => {
            if (open.has(sc.id)) open.delete(sc.id); else open.add(sc.id);
            poll.now();
          }}, 'Recent'),
          h('button', {type: 'button', class: 'danger delete', onclick: () => {
            if (window.confirm(`Delete schedule ${sc.id}? Runs it started go on.`)) act('Delete', async () => { await api.deleteSchedule(sc.id); return `Deleted ${sc.id}.`; });
          }}, 'Delete'))));
      if (open.has(sc.id)) {
        trs.push(h('tr', {class: 'sched-recent', dataset: {recent: sc.id}}, h('td', {colspan: 12},
          (sc.recent || []).length === 0 ? 'No tick yet.' : h('ul', null, [...sc.recent].reverse().map((a) => h('li', {dataset: {outcome: a.outcome}},
            `${fmtTime(a.tick)}${a.manual ? ' (run now)' : ''}: ${a.outcome} `,
            a.run && a.outcome === 'started' ? h('a', {class: 'mono', href: instanceHref(a.run)}, a.run) : (a.run ? h('span', {class: 'mono'}, a.run) : ''),
            a.reason ? ` — ${a.reason}` : ''))))));
      }
    }
    clear(rows, trs.length ? trs : h('tr', null, h('td', {colspan: 12, class: 'empty'}, 'No schedules. Create one below, or with weft schedule create.')));
    const active = list.filter((x) => x.status === 'RUNNING' && !x.paused).length;
    summary.textContent = `${list.length} schedule${list.length === 1 ? '' : 's'} · ${active} active · ${list.length - active} paused or ended`;
    root.dataset.loaded = 'true';
  }, 2000);
  return () => poll.stop();
}

function show(el, text, error) {
  el.hidden = false;
  el.className = error ? 'notice error' : 'notice';
  el.textContent = text;
}

// createForm is the "New schedule" card; created() refreshes the list.
function createForm(created, message) {
  const field = (label, input) => h('label', null, label, ' ', input);
  const id = h('input', {id: 'sched-id', required: true, maxlength: 32, pattern: '[A-Za-z0-9._\\-]+', placeholder: 'nightly-report'});
  const workflow = h('select', {id: 'sched-workflow', required: true});
  const kind = h('select', {id: 'sched-kind'}, h('option', {value: 'cron'}, 'cron'), h('option', {value: 'every'}, 'every'));
  const when = h('input', {id: 'sched-when', required: true, placeholder: '0 2 * * *  or  10m'});
  const overlap = h('select', {id: 'sched-overlap'}, OVERLAPS.map((o) => h('option', {value: o}, o)));
  const jitter = h('input', {id: 'sched-jitter', placeholder: '30s', size: 6});
  const input = h('textarea', {id: 'sched-input', rows: 2, placeholder: '{"value": 1}'});
  api.workflows().then((w) => clear(workflow, (w.workflows || []).sort().map((n) => h('option', {value: n}, n))), () => {});
  return h('form', {class: 'card sched-form', id: 'schedule-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const spec = {id: id.value.trim(), workflow: workflow.value, overlap: overlap.value};
    spec[kind.value] = when.value.trim();
    if (jitter.value.trim()) spec.jitter = jitter.value.trim();
    if (input.value.trim()) {
      try {
        spec.input = JSON.parse(input.value);
      } catch (e) {
        show(message, `The input is not JSON: ${e.message}`, true);
        return;
      }
    }
    try {
      await api.createSchedule(spec);
      show(message, `Created ${spec.id}.`, false);
      id.value = '';
      created();
    } catch (e) {
      show(message, `Create failed: ${e instanceof APIError ? `${e.code || e.status}: ${e.message}` : e.message}`, true);
    }
  }},
  h('h2', null, 'New schedule'),
  h('div', {class: 'filters'}, field('Id', id), field('Workflow', workflow), field('Timetable', kind), when, field('Overlap', overlap), field('Jitter', jitter)),
  field('Input (JSON)', input),
  h('div', null, h('button', {type: 'submit', class: 'primary', id: 'sched-create'}, 'Create schedule')));
}
