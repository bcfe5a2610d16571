// The timeline: one row per task (or per group of tasks), each a bar from when it
// was scheduled to when its outcome came, on a time axis that spans the instance's
// run; events as markers; pauses as shaded spans.

import {h, s, fmtDuration, fmtClock, short, instanceHref} from './dom.js';
import {duration} from './model.js';

const EXPANDED_ROWS = 200; // tasks listed under an expanded group before "show all"

// niceStep is a 1, 2 or 5 × 10^k step giving at most about `ticks` ticks over span.
function niceStep(span, ticks) {
  const raw = span / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

// fmtTick is an axis label: 1s rather than 1.00s.
function fmtTick(ms) {
  return fmtDuration(ms).replace(/^(\d+)\.(\d+)s$/, (_, a, b) => `${Number(`${a}.${b}`)}s`);
}

export function groupKey(g) {
  return `${g.kind}:${g.name}:${g.tasks[0].seq}`;
}

const KIND_LABEL = {activity: 'activity', timer: 'timer', wait: 'wait', child: 'child'};

// outcomeText says how a task ended (or that it has not yet).
export function outcomeText(t, now) {
  switch (t.outcome) {
    case 'running': {
      const r = t.retries?.[t.retries.length - 1];
      if (r && r.nextAt > now) return `attempt ${r.attempt} failed · attempt ${r.attempt + 1} in ${fmtDuration(r.nextAt - now)}`;
      if (r) return `running attempt ${r.attempt + 1} · ${fmtDuration(now - t.scheduledAt)} in all`;
      return `running ${fmtDuration(now - t.scheduledAt)}`;
    }
    case 'completed':
      return t.retries?.length ? `completed after ${t.attemptsAtLeast ? 'at least ' : ''}${t.attempts} attempts` : 'completed';
    case 'waiting':
      if (Number.isFinite(t.fireAt)) {
        const left = t.fireAt - now;
        if (left <= 0) return t.kind === 'wait' ? 'waiting · timeout due' : 'due now';
        return t.kind === 'wait' ? `waiting · times out in ${fmtDuration(left)}` : `fires in ${fmtDuration(left)}`;
      }
      return 'waiting';
    case 'failed':
      return t.attempts ? `failed after ${t.attempts} attempt${t.attempts === 1 ? '' : 's'}` : 'failed';
    case 'abandoned':
      return t.kind === 'wait' ? 'never received' : 'unfinished at the end';
    default:
      return t.outcome;
  }
}

// renderTimeline draws model m. ui holds the view state that survives refreshes:
// ui.expanded (group keys), ui.showAll (group keys), ui.selected (task id);
// onSelect(taskId) is called when a task is clicked.
export function renderTimeline(m, ui, now, onSelect) {
  const span = m.t1 - m.t0;
  const pct = (t) => `${(Math.min(Math.max((t - m.t0) / span, 0), 1) * 100).toFixed(4)}%`;
  const width = (a, b) => `${(Math.max(Math.min(b, m.t1) - Math.max(a, m.t0), 0) / span * 100).toFixed(4)}%`;

  // Axis and grid.
  const step = niceStep(span, 8);
  const ticks = [];
  for (let off = 0; off <= span + 1e-9; off += step) ticks.push(off);
  const axis = h('div', {class: 'tl-track tl-axis'},
    ticks.map((off) => h('span', {class: 'tl-tick', style: {left: pct(m.t0 + off)}}, off === 0 ? '0' : `+${fmtTick(off)}`)));
  const grid = h('div', {class: 'tl-grid', 'aria-hidden': 'true'},
    ticks.map((off) => h('span', {class: 'tl-gridline', style: {left: pct(m.t0 + off)}})),
    m.paused.map((p) => h('span', {class: 'tl-paused', style: {left: pct(p.from), width: width(p.from, p.to)},
      title: `paused ${fmtClock(p.from)} – ${p.open ? 'now' : fmtClock(p.to)}`})));

  const body = h('div', {class: 'tl-body'}, grid);

  const taskRow = (t, nested) => {
    const end = Number.isFinite(t.endAt) ? t.endAt : m.t1;
    const dur = Number.isFinite(t.endAt) ? duration(t) : NaN;
    const open = !Number.isFinite(t.endAt);
    const label = t.kind === 'timer' ? (t.name || 'timer') : t.name;
    const title = `${KIND_LABEL[t.kind]} ${label} (task ${t.id})\nscheduled ${fmtClock(t.scheduledAt)}` +
      (open ? '' : `\nended ${fmtClock(t.endAt)} after ${fmtDuration(dur)}`) + `\n${outcomeText(t, now)}`;
    const row = h('div', {
      class: `tl-row tl-task${nested ? ' nested' : ''}${ui.selected === t.id ? ' selected' : ''}`,
      dataset: {kind: t.kind, name: t.name, task: t.id, outcome: t.outcome},
      onclick: (ev) => {
        if (ev.target.closest('a')) return;
        onSelect(t.id);
      },
      title,
    },
    h('div', {class: 'tl-label'},
      h('span', {class: `kind k-${t.kind}`}, KIND_LABEL[t.kind]),
      t.kind === 'child' && t.instance ?
        h('a', {href: instanceHref(t.instance), class: 'name', dataset: {child: t.instance}}, label) :
        h('span', {class: 'name'}, label),
      h('span', {class: 'task-id'}, `#${t.id}`)),
    h('div', {class: 'tl-track'},
      h('div', {class: `tl-bar o-${t.outcome.replace(' ', '-')} k-${t.kind}${open ? ' open' : ''}`,
        style: {left: pct(t.scheduledAt), width: width(t.scheduledAt, end)}})),
    h('div', {class: 'tl-info'}, open ? outcomeText(t, now) :
      [h('span', {class: 'dur'}, fmtDuration(dur)), ' ', h('span', {class: `out o-${t.outcome.replace(' ', '-')}`}, outcomeText(t, now))]));
    return row;
  };

  const groupRow = (g) => {
    const key = groupKey(g);
    const expanded = ui.expanded.has(key);
    const n = g.tasks.length;
    const peak = Math.max(g.peak, 1);
    const pts = g.levels.map((v, i) => `${i},${(1 - v / peak).toFixed(3)} ${i + 1},${(1 - v / peak).toFixed(3)}`).join(' ');
    const spark = s('svg', {class: 'tl-spark', viewBox: `0 0 ${g.levels.length} 1`, preserveAspectRatio: 'none'},
      s('polygon', {points: `0,1 ${pts} ${g.levels.length},1`}));
    const what = g.sequential ? 'in sequence' : `fan-out · peak ${g.peak} in flight`;
    const outcomes = [
      g.completed ? `${g.completed} ok` : null,
      g.failed ? `${g.failed} failed` : null,
      g.running ? `${g.running} running` : null,
      g.abandoned ? `${g.abandoned} not finished` : null,
    ].filter(Boolean).join(' · ');
    const rows = [h('div', {
      class: `tl-row tl-group${g.failed ? ' has-failed' : ''}`,
      dataset: {kind: 'group', taskKind: g.kind, name: g.name, count: n},
      title: `${n} × ${g.name}, ${what}\nfrom ${fmtClock(g.start)} to ${fmtClock(g.end)} (${fmtDuration(g.end - g.start)})` +
        `\nduration min ${fmtDuration(g.min)}, median ${fmtDuration(g.median)}, max ${fmtDuration(g.max)}\n${outcomes}`,
    },
    h('div', {class: 'tl-label'},
      h('button', {type: 'button', class: 'toggle', 'aria-expanded': String(expanded),
        title: expanded ? 'collapse' : `show the ${n} tasks`,
        onclick: () => {
          if (expanded) ui.expanded.delete(key);
          else ui.expanded.add(key);
          ui.rerender();
        }}, expanded ? '▾' : '▸'),
      h('span', {class: `kind k-${g.kind}`}, KIND_LABEL[g.kind]),
      h('span', {class: 'name'}, g.name || 'timer'),
      h('span', {class: 'count'}, `×${n}`),
      h('div', {class: 'sub'}, what)),
    h('div', {class: 'tl-track'},
      h('div', {class: `tl-bar tl-groupbar k-${g.kind}${g.failed ? ' o-failed' : ''}`,
        style: {left: pct(g.start), width: width(g.start, g.end)}}, spark)),
    h('div', {class: 'tl-info'},
      h('div', null, Number.isFinite(g.median) ? `median ${fmtDuration(g.median)} · max ${fmtDuration(g.max)}` : '—'),
      h('div', {class: 'sub'}, [Number.isFinite(g.min) ? `min ${fmtDuration(g.min)}` : null, outcomes].filter(Boolean).join(' · '))))];
    if (expanded) {
      const all = ui.showAll.has(key);
      const shown = all ? g.tasks : g.tasks.slice(0, EXPANDED_ROWS);
      for (const t of shown) rows.push(taskRow(t, true));
      if (shown.length < n) {
        rows.push(h('div', {class: 'tl-row nested tl-more'},
          h('div', {class: 'tl-label'},
            h('button', {type: 'button', class: 'link', onclick: () => {
              ui.showAll.add(key);
              ui.rerender();
            }}, `show all ${n} (${n - shown.length} more)`))));
      }
    }
    return rows;
  };

  for (const r of m.rows) body.append(...(r.type === 'group' ? groupRow(r) : [taskRow(r.task, false)]));

  // Events received and sent, as markers on one row.
  if (m.events.length || m.sent.length) {
    const marks = [
      ...m.events.map((e) => h('span', {class: `tl-marker event${e.wait ? ' consumed' : ''}`, style: {left: pct(e.time)},
        dataset: {event: e.name},
        title: `event ${e.name} received ${fmtClock(e.time)}${e.wait ? ` (ended the wait, task ${e.wait.id})` : ''}\n${short(e.data, 200)}`})),
      ...m.sent.map((e) => h('span', {class: 'tl-marker sent', style: {left: pct(e.time)},
        title: `event ${e.name} sent to ${e.instance} ${fmtClock(e.time)}\n${short(e.data, 200)}`})),
    ];
    const names = [...new Set([...m.events.map((e) => e.name), ...m.sent.map((e) => `→${e.name}`)])];
    body.append(h('div', {class: 'tl-row tl-events', dataset: {kind: 'events', count: m.events.length}},
      h('div', {class: 'tl-label'}, h('span', {class: 'kind k-event'}, 'events'),
        h('span', {class: 'name'}, short(names.join(', '), 40))),
      h('div', {class: 'tl-track'}, marks),
      h('div', {class: 'tl-info'}, `${m.events.length} received${m.sent.length ? `, ${m.sent.length} sent` : ''}`)));
  }

  // The instance's own life: started, paused, resumed, ended.
  const life = m.lifecycle.map((l) => h('span', {
    class: `tl-marker life ${l.kind}`, style: {left: pct(l.time)},
    title: `${l.kind} ${fmtClock(l.time)}${l.data !== undefined ? `\n${short(l.data, 200)}` : ''}`,
  }));
  const lifeInfo = m.terminal ? m.terminal.kind.replace('workflow-', '') : m.paused.some((p) => p.open) ? 'paused' : 'running';
  body.append(h('div', {class: 'tl-row tl-life', dataset: {kind: 'lifecycle'}},
    h('div', {class: 'tl-label'}, h('span', {class: 'kind k-life'}, 'instance'),
      h('span', {class: 'name'}, m.generation ? `generation ${m.generation}` : 'lifecycle')),
    h('div', {class: 'tl-track'},
      h('div', {class: 'tl-lifeline', style: {left: '0%', width: '100%'}}),
      m.paused.map((p) => h('div', {class: 'tl-bar paused', style: {left: pct(p.from), width: width(p.from, p.to)}})),
      life),
    h('div', {class: 'tl-info'}, lifeInfo)));

  const legend = h('div', {class: 'tl-legend'},
    h('span', {class: 'lg lg-activity'}, 'activity'),
    h('span', {class: 'lg lg-failed'}, 'failed'),
    h('span', {class: 'lg lg-timer'}, 'timer'),
    h('span', {class: 'lg lg-wait'}, 'wait for event'),
    h('span', {class: 'lg lg-child'}, 'child workflow'),
    h('span', {class: 'lg lg-event'}, 'event'),
    h('span', {class: 'lg lg-paused'}, 'paused'));

  return h('div', {class: 'timeline', dataset: {rows: m.rows.length}},
    h('div', {class: 'tl-row tl-head'},
      h('div', {class: 'tl-label'}, `${fmtClock(m.t0)} → ${m.finished ? fmtClock(m.t1) : 'now'} (${fmtDuration(span)})`),
      axis,
      h('div', {class: 'tl-info'}, 'duration · outcome')),
    body,
    legend);
}
