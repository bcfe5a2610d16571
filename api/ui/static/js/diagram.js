// The diagram: the instance's structure as it ran, left to right. Sequential steps
// are nodes in a line; a stage with several branches (a fan-out, WhenAll, WhenAny)
// forks and joins again; many tasks of one name in one stage are one stacked node
// with their count; waits for events and timers are nodes of their own.

import {s, fmtDuration, short, instanceHref} from './dom.js';
import {branchesOf, groupOf, duration} from './model.js';
import {outcomeText} from './timeline.js';

const NW = 208; // node width
const NH = 58; // node height
const HG = 44; // gap between columns
const VG = 14; // gap between branches
const FORK = 22; // fork/join dot to branch nodes
const PAD = 16;
const CW = 70; // width of a start or end column (room for its label)
const MAX_BRANCHES = 6;
const R = 15; // start/end circle radius

const KIND_TAG = {
  activity: 'ACTIVITY',
  timer: 'TIMER',
  wait: 'WAIT FOR EVENT',
  child: 'CHILD WORKFLOW',
  event: 'EVENT RECEIVED',
  send: 'EVENT SENT',
  more: 'MORE BRANCHES',
};

function fit(text, chars) {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

// columns turns the model's items into drawable columns: {type: 'circle'} for
// start and end, {type: 'nodes', nodes, fork} for a step or a stage.
function columns(m, now) {
  const cols = [];
  const items = m.items;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    switch (it.type) {
      case 'start':
        cols.push({type: 'circle', cls: 'start', label: m.generation ? `gen ${m.generation}` : 'start'});
        break;
      case 'event':
      case 'send':
        cols.push({type: 'nodes', fork: false, nodes: [eventNode(it, m)]});
        break;
      case 'stage': {
        // A loop: three or more one-task stages of the same task, one after another.
        let j = i;
        const one = (x) => x && x.type === 'stage' && x.tasks.length === 1 && !x.extras.length;
        if (one(it)) {
          while (one(items[j + 1]) && items[j + 1].tasks[0].kind === it.tasks[0].kind && items[j + 1].tasks[0].name === it.tasks[0].name) j++;
        }
        if (j - i >= 2) {
          const tasks = items.slice(i, j + 1).map((x) => x.tasks[0]);
          cols.push({type: 'nodes', fork: false, nodes: [groupNode(groupOf(tasks[0].kind, tasks[0].name, tasks, true, m))]});
          i = j;
          break;
        }
        const branches = branchesOf(it).map((br) => (br.tasks.length > 1 ?
          groupNode(groupOf(br.kind, br.name, br.tasks, false, m)) : taskNode(br.tasks[0], now)));
        for (const x of it.extras) branches.push(eventNode(x, m));
        let nodes = branches;
        if (branches.length > MAX_BRANCHES) {
          const rest = branches.slice(MAX_BRANCHES - 1);
          nodes = [...branches.slice(0, MAX_BRANCHES - 1), {
            kind: 'more', name: `${rest.length} more branches`, detail: fit(rest.map((b) => b.name).join(', '), 26),
            cls: 'o-more', title: rest.map((b) => b.name).join('\n'),
          }];
        }
        const fork = nodes.length > 1 || nodes[0].count > 1;
        cols.push({type: 'nodes', fork, nodes});
        break;
      }
      case 'end': {
        const st = it.status || '';
        let cls = 'end running';
        let label = st === 'SUSPENDED' ? 'paused' : 'running…';
        if (it.terminal) {
          const k = it.terminal.kind;
          cls = `end ${k}`;
          label = {
            'workflow-completed': 'completed',
            'workflow-failed': 'failed',
            'workflow-terminated': 'terminated',
            'continued-as-new': 'continued as new',
          }[k] || k;
        }
        cols.push({type: 'circle', cls, label});
        break;
      }
    }
  }
  return cols;
}

function taskNode(t, now) {
  const label = t.kind === 'wait' ? t.name : t.kind === 'timer' ? (t.name || 'durable timer') : t.name;
  const dur = Number.isFinite(t.endAt) && t.outcome !== 'abandoned' ? fmtDuration(duration(t)) : '';
  let detail = outcomeText(t, now);
  if (t.kind === 'timer' && t.outcome === 'fired') detail = `fired after ${dur}`;
  else if (t.kind === 'wait' && t.outcome === 'received') detail = `received after ${dur}`;
  else if (dur && t.outcome !== 'completed') detail = `${detail} · ${dur}`;
  else if (dur) detail = dur;
  return {
    kind: t.kind, name: label, detail, cls: `o-${t.outcome.replace(' ', '-')}`, task: t.id,
    href: t.kind === 'child' && t.instance ? instanceHref(t.instance) : null,
    title: `${KIND_TAG[t.kind].toLowerCase()} ${label} (task ${t.id})\n${outcomeText(t, now)}${dur ? `, ${dur}` : ''}` +
      (t.kind === 'child' ? `\ninstance ${t.instance}` : ''),
  };
}

function groupNode(g) {
  const n = g.tasks.length;
  const cls = g.failed ? 'o-failed' : g.running ? 'o-running' : g.abandoned ? 'o-abandoned' : 'o-completed';
  const detail = g.running ? `${g.completed + g.failed} of ${n} done` :
    g.failed ? `${g.failed} failed · med ${fmtDuration(g.median)}` : `med ${fmtDuration(g.median)} · max ${fmtDuration(g.max)}`;
  return {
    kind: g.kind, name: g.name || 'durable timer', count: n, sequential: g.sequential, detail, cls,
    title: `${n} × ${g.name} ${g.sequential ? 'in sequence' : 'in parallel'} (peak ${g.peak} in flight)\n` +
      `${g.completed} completed, ${g.failed} failed, ${g.running} running\n` +
      `duration min ${fmtDuration(g.min)}, median ${fmtDuration(g.median)}, max ${fmtDuration(g.max)}`,
  };
}

function eventNode(it, m) {
  const e = it.event;
  const off = `+${fmtDuration(e.time - m.t0)}`;
  return it.type === 'send' ?
    {kind: 'send', name: e.name, detail: `to ${fit(e.instance, 16)} · ${off}`, cls: 'o-completed',
      title: `event ${e.name} sent to ${e.instance}\n${short(e.data, 200)}`, href: instanceHref(e.instance)} :
    {kind: 'event', name: e.name, detail: `received ${off}`, cls: 'o-event', title: `event ${e.name}\n${short(e.data, 200)}`};
}

// renderDiagram draws model m as an SVG; onSelect(taskId) is called on a click.
export function renderDiagram(m, now, onSelect) {
  const cols = columns(m, now);
  const colH = (c) => (c.type === 'circle' ? 2 * R : c.nodes.length * NH + (c.nodes.length - 1) * VG);
  const colW = (c) => (c.type === 'circle' ? CW : NW + (c.fork ? 2 * FORK : 0));
  const inner = Math.max(NH, ...cols.map(colH));
  const height = inner + 2 * PAD + 18;
  const cy = PAD + inner / 2;
  const width = cols.reduce((w, c) => w + colW(c), 0) + HG * (cols.length - 1) + 2 * PAD;

  const edges = s('g', {class: 'dg-edges'});
  const nodes = s('g', {class: 'dg-nodes'});
  const svg = s('svg', {class: 'diagram', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': 'the structure of the run'},
  s('defs', null, s('marker', {id: 'dg-arrow', viewBox: '0 0 8 8', refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto'},
    s('path', {d: 'M0,0 L8,4 L0,8 z', class: 'dg-arrowhead'}))),
  edges, nodes);

  const line = (x1, y1, x2, y2, arrow) => {
    const mx = (x1 + x2) / 2;
    edges.append(s('path', {d: y1 === y2 ? `M${x1},${y1} L${x2},${y2}` : `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
      class: 'dg-edge', 'marker-end': arrow ? 'url(#dg-arrow)' : null}));
  };

  let x = PAD;
  let prevX = null; // where the previous column's outgoing edge starts
  for (const c of cols) {
    if (c.type === 'circle') {
      const cx = x + CW / 2;
      if (prevX !== null) line(prevX, cy, cx - R, cy, true);
      const g = s('g', {class: `dg-circle ${c.cls}`, dataset: {kind: c.cls.split(' ')[0]}},
        s('circle', {cx, cy, r: R}),
        s('text', {x: cx, y: cy + R + 15, 'text-anchor': 'middle', class: 'dg-circle-label'}, c.label));
      if (c.cls.startsWith('end')) g.append(s('path', {d: endGlyph(c.cls, cx, cy), class: 'dg-glyph'}));
      nodes.append(g);
      prevX = cx + R;
      x += CW + HG;
      continue;
    }
    const h = colH(c);
    const nx = x + (c.fork ? FORK : 0);
    if (c.fork) {
      if (prevX !== null) line(prevX, cy, x, cy, false);
      nodes.append(s('circle', {cx: x, cy, r: 5, class: 'dg-fork'}));
    }
    c.nodes.forEach((n, i) => {
      const ny = cy - h / 2 + i * (NH + VG);
      const my = ny + NH / 2;
      if (c.fork) {
        line(x + 5, cy, nx, my, true);
        line(nx + NW, my, nx + NW + FORK - 5, cy, false);
      } else if (prevX !== null) {
        line(prevX, cy, nx, my, true);
      }
      nodes.append(drawNode(n, nx, ny, onSelect));
    });
    if (c.fork) {
      nodes.append(s('circle', {cx: nx + NW + FORK, cy, r: 5, class: 'dg-fork'}));
    }
    prevX = nx + NW + (c.fork ? FORK + 5 : 0);
    x += colW(c) + HG;
  }
  return svg;
}

function endGlyph(cls, cx, cy) {
  if (cls.includes('workflow-completed')) return `M${cx - 6},${cy} l4,5 l8,-10`;
  if (cls.includes('workflow-failed') || cls.includes('workflow-terminated')) return `M${cx - 5},${cy - 5} l10,10 M${cx + 5},${cy - 5} l-10,10`;
  if (cls.includes('continued-as-new')) return `M${cx + 6},${cy - 2} a6,6 0 1,1 -3,-5 m0,-3 l3,3 l-4,2`;
  return `M${cx - 6},${cy} h2 M${cx - 1},${cy} h2 M${cx + 4},${cy} h2`;
}

function drawNode(n, x, y, onSelect) {
  const g = s('g', {class: `dg-node k-${n.kind} ${n.cls}${n.task !== undefined ? ' clickable' : ''}`,
    dataset: {kind: n.kind, name: n.name, count: n.count || 1}});
  g.append(s('title', null, n.title || n.name));
  if (n.count > 1) {
    // A stack: more than one task behind this node.
    g.append(s('rect', {x: x + 8, y: y - 8, width: NW, height: NH, rx: 7, class: 'dg-box stack'}));
    g.append(s('rect', {x: x + 4, y: y - 4, width: NW, height: NH, rx: 7, class: 'dg-box stack'}));
  }
  g.append(s('rect', {x, y, width: NW, height: NH, rx: 7, class: 'dg-box'}));
  g.append(s('rect', {x, y, width: 5, height: NH, rx: 2, class: 'dg-kindbar'}));
  const tag = n.count > 1 ? `${KIND_TAG[n.kind]} ×${n.count}${n.sequential ? ' IN SEQUENCE' : ''}` : KIND_TAG[n.kind];
  g.append(s('text', {x: x + 14, y: y + 16, class: 'dg-tag'}, tag));
  g.append(s('text', {x: x + 14, y: y + 34, class: 'dg-name'}, fit(n.name, 24)));
  g.append(s('text', {x: x + 14, y: y + 50, class: 'dg-detail'}, fit(n.detail || '', 31)));
  if (n.href) {
    const a = s('a', {href: n.href, class: 'dg-link'});
    a.append(g);
    return a;
  }
  if (n.task !== undefined) g.addEventListener('click', () => onSelect(n.task));
  return g;
}
