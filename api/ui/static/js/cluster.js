// The cluster page: the members as this server sees them, and the placement
// table as a map of partitions, one cell per partition. With one copy per
// partition, a cell is colored by the node that owns it, marked where the data
// is elsewhere (moving) or not served (its node is down). With replicated
// partitions (raft groups), a cell is colored by the node that leads it, marked
// where fewer than a quorum of its replicas are alive, where it has fewer live
// replicas than the cluster wants, or where a replica is being added (with the
// snapshots this server streams, and their progress). Refreshed every 2 s.

import {api} from './api.js';
import {h, clear, poller} from './dom.js';

// A fixed palette: node i of the sorted members gets color i.
const PALETTE = ['#2563eb', '#0d9488', '#d97706', '#7e22ce', '#db2777', '#15803d', '#64748b', '#b45309', '#0891b2', '#9333ea'];

export function mountCluster(root) {
  const members = h('tbody');
  const map = h('div', {class: 'partition-map', id: 'partition-map', role: 'img', 'aria-label': 'partitions by owner'});
  const legend = h('p', {class: 'legend', id: 'partition-legend'});
  const summary = h('p', {class: 'updated', id: 'cluster-summary'});
  const message = h('p', {class: 'notice', hidden: true});
  const snapshots = h('ul', {id: 'snapshots'});
  clear(root,
    h('div', {class: 'page-head'}, h('h1', null, 'Cluster'), summary),
    message,
    h('section', {class: 'card'}, h('h2', null, 'Members'),
      h('table', {class: 'grid', id: 'members'},
        h('thead', null, h('tr', null, ['Node', 'State', 'Registered', 'Owns', 'Holds', 'HTTP', 'Gossip', 'Actor'].map((x) => h('th', null, x)))),
        members)),
    h('section', {class: 'card'}, h('h2', null, 'Partitions'), legend, map, snapshots));

  const poll = poller(async () => {
    let m, p;
    try {
      [m, p] = await Promise.all([api.clusterMembers(), api.clusterPartitions()]);
    } catch (err) {
      message.hidden = false;
      message.className = 'notice error';
      message.textContent = err.code === 'ERR_NOT_CLUSTERED'
        ? 'This server runs alone, not as a cluster node (weft serve --gossip and --join make a cluster).'
        : `Could not load the cluster: ${err.message}`;
      root.dataset.loaded = 'true';
      return;
    }
    message.hidden = true;
    const ids = m.members.map((x) => x.id).sort();
    const color = (id) => PALETTE[ids.indexOf(id) % PALETTE.length] || '#9aa5b1';
    clear(members, m.members.map((x) => h('tr', {dataset: {node: x.id, state: x.state}},
      h('td', {class: 'mono'}, h('span', {class: 'swatch', style: {background: color(x.id)}}), x.id, x.id === m.self ? ' (this node)' : ''),
      h('td', null, h('span', {class: `badge node-${x.state}`}, x.state)),
      h('td', null, x.registered ? 'yes' : 'no'),
      h('td', null, String(x.partitions)),
      h('td', null, String(x.held)),
      h('td', null, x.http ? h('a', {href: x.http + '/ui/#/cluster'}, x.http) : ''),
      h('td', {class: 'mono'}, x.gossip || ''),
      h('td', {class: 'mono'}, x.actor || ''))));
    const replicated = p.partitions.some((x) => (x.replicas || []).length > 0);
    if (replicated) {
      let below = 0;
      let under = 0;
      let adding = 0;
      const streams = [];
      clear(map, p.partitions.map((x) => {
        if ((x.learners || []).length) adding++;
        for (const sn of x.snapshots || []) streams.push(sn);
        const replicas = x.replicas || [];
        const noQuorum = replicas.length > 0 && !x.quorum;
        const off = !x.serving || noQuorum;
        if (noQuorum) below++;
        if (x.under_replicated) under++;
        const learners = (x.learners || []).length ? `, adding ${x.learners.join(', ')}` : '';
        const state = noQuorum ? 'below quorum' : !x.serving ? 'no live leader' : x.under_replicated ? 'under-replicated' : 'served';
        return h('span', {class: `cell${off ? ' off' : ''}${x.under_replicated ? ' under' : ''}${(x.learners || []).length ? ' adding' : ''}`, style: {background: color(x.holder)},
          dataset: {partition: x.partition, owner: x.owner, holder: x.holder, leader: x.holder},
          title: `partition ${x.partition}: leader ${x.holder || 'none'} (term ${x.epoch}), replicas ${replicas.join(', ') || 'unknown here'}${learners}, applied ${x.applied || 0}, ${state}`});
      }));
      clear(legend, ids.map((id) => h('span', {class: 'legend-item'}, h('span', {class: 'swatch', style: {background: color(id)}}), `${id} leads`)),
        h('span', {class: 'legend-item'}, h('span', {class: 'swatch under'}), 'under-replicated'),
        h('span', {class: 'legend-item'}, h('span', {class: 'swatch adding'}), 'replica being added'),
        h('span', {class: 'legend-item'}, h('span', {class: 'swatch off'}), 'below quorum or no leader'));
      const n = m.members.length;
      clear(snapshots, streams.map((sn) => h('li', {class: 'mono', dataset: {partition: sn.partition}},
        `snapshot of partition ${sn.partition} to ${sn.to}: ${(sn.bytes / 1048576).toFixed(1)} MiB, ${sn.keys} keys, since ${new Date(sn.started).toLocaleTimeString()}`)));
      summary.textContent = `${n} member${n === 1 ? '' : 's'} · ${p.partitions.length} partitions, replicated · ${under} under-replicated · ${adding} adding a replica · ${below} below quorum · as node ${m.self} sees it`;
      root.dataset.loaded = 'true';
      return;
    }
    let moving = 0;
    let down = 0;
    clear(map, p.partitions.map((x) => {
      const away = x.holder !== x.owner;
      const off = !x.serving;
      if (away) moving++;
      if (off) down++;
      const state = off ? 'not served' : away ? `held by ${x.holder || 'nobody'}` : 'served';
      return h('span', {class: `cell${away ? ' away' : ''}${off ? ' off' : ''}`, style: {background: color(x.owner)},
        dataset: {partition: x.partition, owner: x.owner, holder: x.holder}, title: `partition ${x.partition}: owner ${x.owner}, ${state}, epoch ${x.epoch}`});
    }));
    clear(legend, ids.map((id) => h('span', {class: 'legend-item'}, h('span', {class: 'swatch', style: {background: color(id)}}), id)),
      h('span', {class: 'legend-item'}, h('span', {class: 'swatch away'}), 'moving (held elsewhere)'),
      h('span', {class: 'legend-item'}, h('span', {class: 'swatch off'}), 'not served'));
    const n = m.members.length;
    summary.textContent = `${n} member${n === 1 ? '' : 's'} · ${p.partitions.length} partitions · ${moving} moving · ${down} not served · as node ${m.self} sees it`;
    root.dataset.loaded = 'true';
  }, 2000);
  return () => poll.stop();
}
