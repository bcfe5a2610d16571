// The model of one instance's run, built from its history (GET
// /api/v1/instances/{id}/history, the same events `weft history ID` prints): the
// tasks it scheduled with when each started and ended, the events it received
// and sent, its lifecycle, and its structure as it ran.
//
// Structure: a "stage" opens when a task is scheduled while nothing is in flight
// and closes when its tasks are done. A chain is a line of one-task stages; a
// fan-out is a stage with many tasks of one name (scheduled together, or with at
// most K in flight: workflow.Parallel, where each result schedules the next of
// the same name); WhenAll/WhenAny of different tasks is a stage with several
// branches. A stage also closes when the workflow moves on without it: when a
// step schedules a task unlike any still in flight (the timer that lost a
// WhenAny, say), those are left running in the stage they belong to.
//
// Attempts: an activity's failed attempts that its retry policy ran again are
// activity-retrying markers (the attempt's number, failure and when the next
// began), kept in t.retries. From the tenth on only every hundredth is
// marked, so from there t.attempts, counted from the last marker's number, is
// a lower bound (t.attemptsAtLeast). Histories written before weft kept them
// hold the final outcome only: a failure then says how many attempts it made
// only when its message does ("... on attempt 3").

import {parseTime} from './dom.js';

// taskKind maps a scheduling event to the kind of task it starts.
const SCHEDULES = {
  'activity-scheduled': 'activity',
  'timer-created': 'timer',
  'child-scheduled': 'child',
};

const ENDS = {
  'activity-completed': 'completed',
  'activity-failed': 'failed',
  'timer-fired': 'fired',
  'timer-canceled': 'canceled',
  'child-completed': 'completed',
  'child-failed': 'failed',
};

const TERMINAL = new Set(['workflow-completed', 'workflow-failed', 'workflow-terminated', 'continued-as-new']);

// attemptsFrom reads an attempt count out of a failure message, if it has one.
export function attemptsFrom(failure) {
  const m = /\battempt\s+#?(\d+)/i.exec(failure?.message || '');
  return m ? Number(m[1]) : null;
}

// countAttempts sets t.attempts from its last retry marker: a lower bound once
// markers thin out (the server marks attempts 1–10, then every hundredth).
function countAttempts(t) {
  const last = t.retries[t.retries.length - 1].attempt;
  t.attempts = last + 1;
  t.attemptsAtLeast = last >= 10;
}

// buildModel turns a status (GET /api/v1/instances/{id}) and its history into
// the model the timeline and the diagram draw. now is the current time in ms.
export function buildModel(status, events, now) {
  const finished = status && ['COMPLETED', 'FAILED', 'TERMINATED'].includes(status.status);
  const m = {
    tasks: [],
    byId: new Map(),
    events: [], // event-raised: {name, time, data, seq, wait}
    sent: [], // event-sent: {name, instance, time, data, seq, taskId}
    lifecycle: [], // {kind, time, data, seq}
    paused: [], // {from, to}
    items: [], // the structure: start, stage, event, send, end
    terminal: null,
    generation: status?.generation || 0,
    t0: NaN,
    t1: NaN,
    finished,
  };
  const outstanding = new Set(); // tasks in flight, of every stage
  let stage = null; // the open stage; stage.open holds its tasks in flight
  let pausedAt = NaN;
  let inStep = false; // whether the last event was an action: a step in progress

  // moveOn closes the open stage when a new step starts with an action unlike
  // any of the stage's tasks still in flight.
  const moveOn = (kind, name, time) => {
    const newStep = !inStep;
    inStep = true;
    if (!stage || !newStep || stage.open.size === 0) return;
    for (const id of stage.open) {
      const o = m.byId.get(id);
      if (o.kind === kind && o.name === name) return;
    }
    stage.end = time;
    stage = null;
  };

  for (const ev of events) {
    const time = parseTime(ev.time);
    if (!Number.isFinite(m.t0)) m.t0 = time;
    const kind = SCHEDULES[ev.kind];
    if (!kind && ev.kind !== 'event-sent' && ev.kind !== 'timer-canceled') inStep = false;
    if (ev.kind === 'activity-retrying') {
      const t = m.byId.get(ev.taskId);
      if (t) {
        t.retries.push({attempt: Number(ev.data) || t.retries.length + 1, time, failure: ev.failure || null,
          nextAt: ev.fireAt ? parseTime(ev.fireAt) : NaN, seq: ev.seq});
        countAttempts(t); // the attempt now running or waiting to
      }
      continue;
    }
    if (kind) {
      const t = {
        id: ev.taskId,
        kind,
        name: ev.name || '',
        scheduledAt: time,
        endAt: NaN,
        outcome: kind === 'activity' || kind === 'child' ? 'running' : 'waiting',
        input: ev.data,
        output: undefined,
        failure: null,
        retry: ev.retry || null,
        fireAt: ev.fireAt ? parseTime(ev.fireAt) : NaN,
        instance: ev.instance || '',
        seq: ev.seq,
        endSeq: -1,
        attempts: null,
        attemptsAtLeast: false,
        retries: [], // {attempt, time, failure, nextAt, seq}: the failed attempts run again
        event: null,
      };
      if (kind === 'timer' && t.name.startsWith('wait:')) {
        t.kind = 'wait';
        t.name = t.name.slice('wait:'.length);
      }
      moveOn(t.kind, t.name, time);
      if (!stage) {
        stage = {type: 'stage', tasks: [], extras: [], open: new Set(), start: time, end: NaN};
        m.items.push(stage);
      }
      t.stage = stage;
      stage.tasks.push(t);
      stage.open.add(t.id);
      m.tasks.push(t);
      m.byId.set(t.id, t);
      outstanding.add(t.id);
      continue;
    }
    const end = ENDS[ev.kind];
    if (end) {
      const t = m.byId.get(ev.taskId);
      if (!t) continue; // an outcome for a task this generation did not schedule
      t.endAt = time;
      t.endSeq = ev.seq;
      t.output = ev.data;
      t.failure = ev.failure || null;
      t.outcome = end;
      if (t.kind === 'wait') t.outcome = end === 'fired' ? 'timed out' : t.event ? 'received' : 'canceled';
      if (t.retries.length) countAttempts(t);
      else if (t.failure) t.attempts = attemptsFrom(t.failure);
      outstanding.delete(t.id);
      t.stage.open.delete(t.id);
      if (t.stage === stage && stage.open.size === 0) {
        stage.end = time;
        stage = null;
      }
      continue;
    }
    switch (ev.kind) {
      case 'workflow-started':
        m.lifecycle.push({kind: ev.kind, time, data: ev.data, seq: ev.seq});
        m.items.push({type: 'start', time, name: ev.name});
        break;
      case 'event-raised': {
        const e = {name: ev.name || '', time, data: ev.data, seq: ev.seq, wait: null};
        // An event goes to the first wait for its name (names are case-insensitive).
        const wait = [...outstanding].map((id) => m.byId.get(id))
          .find((t) => t.kind === 'wait' && !t.event && t.name.toLowerCase() === e.name.toLowerCase());
        if (wait) {
          wait.event = e;
          e.wait = wait;
        } else if (stage) {
          stage.extras.push({type: 'event', event: e});
        } else {
          m.items.push({type: 'event', event: e});
        }
        m.events.push(e);
        break;
      }
      case 'event-sent': {
        const e = {name: ev.name || '', instance: ev.instance || '', time, data: ev.data, seq: ev.seq, taskId: ev.taskId};
        moveOn('send', e.name, time);
        m.sent.push(e);
        if (stage) stage.extras.push({type: 'send', event: e});
        else m.items.push({type: 'send', event: e});
        break;
      }
      case 'workflow-suspended':
        m.lifecycle.push({kind: ev.kind, time, data: ev.data, seq: ev.seq});
        pausedAt = time;
        break;
      case 'workflow-resumed':
        m.lifecycle.push({kind: ev.kind, time, data: ev.data, seq: ev.seq});
        if (Number.isFinite(pausedAt)) m.paused.push({from: pausedAt, to: time});
        pausedAt = NaN;
        break;
      default:
        if (TERMINAL.has(ev.kind)) {
          m.terminal = {kind: ev.kind, time, data: ev.data, failure: ev.failure || null, seq: ev.seq};
          m.lifecycle.push({kind: ev.kind, time, data: ev.data, seq: ev.seq});
        }
    }
  }

  // The axis: from the first event to the end (finished) or now (still going).
  if (!Number.isFinite(m.t0)) m.t0 = parseTime(status?.createdAt);
  let last = m.t0;
  for (const ev of events) last = Math.max(last, parseTime(ev.time));
  const completedAt = parseTime(status?.completedAt);
  m.t1 = finished ? Math.max(last, Number.isFinite(completedAt) ? completedAt : last) : Math.max(last, now);
  if (!(m.t1 > m.t0)) m.t1 = m.t0 + 1;
  if (Number.isFinite(pausedAt)) m.paused.push({from: pausedAt, to: m.t1, open: true});

  // Tasks still open when the instance finished were abandoned with it.
  for (const t of m.tasks) {
    if (Number.isFinite(t.endAt)) continue;
    if (finished) {
      t.outcome = 'abandoned';
      t.endAt = m.terminal ? m.terminal.time : m.t1;
    }
  }
  if (stage && finished) stage.end = m.t1;

  if (m.terminal) m.items.push({type: 'end', terminal: m.terminal, status: status?.status});
  else m.items.push({type: 'end', terminal: null, status: status?.status});
  m.rows = timelineRows(m);
  return m;
}

// duration of a finished task, NaN while it runs.
export function duration(t) {
  return t.endAt - t.scheduledAt;
}

// branchesOf splits a stage into branches: tasks of one kind and name together.
export function branchesOf(stage) {
  const by = new Map();
  for (const t of stage.tasks) {
    const key = `${t.kind}\u0000${t.name}`;
    if (!by.has(key)) by.set(key, {kind: t.kind, name: t.name, tasks: []});
    by.get(key).tasks.push(t);
  }
  return [...by.values()];
}

// groupOf summarizes tasks shown as one: span, outcomes, durations, concurrency.
export function groupOf(kind, name, tasks, sequential, m) {
  const done = tasks.filter((t) => Number.isFinite(t.endAt) && t.outcome !== 'abandoned');
  const durs = done.map(duration).sort((a, b) => a - b);
  let start = Infinity;
  let end = -Infinity;
  for (const t of tasks) {
    start = Math.min(start, t.scheduledAt);
    end = Math.max(end, Number.isFinite(t.endAt) ? t.endAt : m.t1);
  }
  const count = (o) => tasks.filter((t) => t.outcome === o).length;
  return {
    type: 'group',
    kind,
    name,
    tasks,
    sequential,
    start,
    end,
    completed: count('completed'),
    failed: count('failed'),
    running: count('running'),
    abandoned: count('abandoned'),
    min: durs.length ? durs[0] : NaN,
    median: durs.length ? median(durs) : NaN,
    max: durs.length ? durs[durs.length - 1] : NaN,
    ...concurrency(tasks, start, end, m.t1),
  };
}

function median(sorted) {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

// concurrency is how many of the tasks were in flight over [start, end]: the peak
// and the highest level in each of BUCKETS equal slices (for the group's sparkline).
const BUCKETS = 120;
function concurrency(tasks, start, end, t1) {
  const pts = [];
  for (const t of tasks) {
    pts.push([t.scheduledAt, 1]);
    pts.push([Number.isFinite(t.endAt) ? t.endAt : t1, -1]);
  }
  pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // at one instant, ends before starts
  const span = Math.max(end - start, 1e-6);
  const levels = new Array(BUCKETS).fill(0);
  let level = 0;
  let peak = 0;
  let i = 0;
  for (let b = 0; b < BUCKETS; b++) {
    const bEnd = start + (span * (b + 1)) / BUCKETS;
    let hi = level;
    while (i < pts.length && pts[i][0] <= bEnd) {
      level += pts[i][1];
      hi = Math.max(hi, level);
      i++;
    }
    levels[b] = hi;
    peak = Math.max(peak, hi);
  }
  return {levels, peak};
}

// timelineRows lays the tasks out as rows: a task per row, except that tasks of
// one name in one stage (a fan-out), or three or more one-task stages of one name
// in a row (a loop), share a group row.
function timelineRows(m) {
  const rows = [];
  for (const item of m.items) {
    if (item.type !== 'stage') continue;
    const rowsOfStage = [];
    for (const br of branchesOf(item)) {
      if (br.tasks.length > 1 && (br.kind === 'activity' || br.kind === 'child' || br.kind === 'timer')) {
        rowsOfStage.push(groupOf(br.kind, br.name, br.tasks, false, m));
      } else {
        for (const t of br.tasks) rowsOfStage.push({type: 'task', task: t});
      }
    }
    rowsOfStage.sort((a, b) => firstSeq(a) - firstSeq(b));
    rows.push(...rowsOfStage);
  }
  // Runs of one-task rows of the same activity, one after another: a loop.
  const out = [];
  for (let i = 0; i < rows.length;) {
    const r = rows[i];
    let j = i + 1;
    if (r.type === 'task') {
      while (j < rows.length && rows[j].type === 'task' && rows[j].task.kind === r.task.kind &&
        rows[j].task.name === r.task.name && rows[j].task.stage !== rows[j - 1].task.stage) j++;
    }
    if (j - i >= 3) {
      out.push(groupOf(r.task.kind, r.task.name, rows.slice(i, j).map((x) => x.task), true, m));
    } else {
      out.push(...rows.slice(i, j));
    }
    i = j;
  }
  return out;
}

function firstSeq(row) {
  return row.type === 'task' ? row.task.seq : row.tasks[0].seq;
}
