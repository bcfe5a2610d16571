// The UI's entry point: routes the URL's fragment to a page.
//
//	#/                     the instances (query: status, name, pageSize, id)
//	#/instances/{id}       one instance
//	#/schedules            the schedules
//	#/cluster              the cluster's members and partitions (a cluster node only)

import {initToken} from './api.js';
import {mountList} from './list.js';
import {mountInstance} from './instance.js';
import {mountCluster} from './cluster.js';
import {mountSchedules} from './schedules.js';
import {api} from './api.js';

let unmount = null;

function route() {
  if (unmount) unmount();
  unmount = null;
  const confirm = document.getElementById('confirm-dialog');
  if (confirm.open) confirm.close(); // an action's dialog belongs to the page it was opened on
  // Each page mounts into a fresh element: a refresh of the previous page still
  // in flight then writes into a detached element, never into this one (it
  // would mark this page loaded before it is).
  const page = document.createElement('main');
  page.id = 'page';
  page.setAttribute('aria-live', 'polite');
  document.getElementById('page').replaceWith(page);
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const inst = /^\/instances\/(.+)$/.exec(path);
  const cluster = path === '/cluster';
  const scheds = path === '/schedules';
  document.getElementById('nav-instances').classList.toggle('active', !inst && !cluster && !scheds);
  document.getElementById('nav-schedules').classList.toggle('active', scheds);
  document.getElementById('nav-cluster').classList.toggle('active', cluster);
  if (scheds) {
    page.dataset.page = 'schedules';
    document.title = 'Schedules · weft';
    unmount = mountSchedules(page);
  } else if (cluster) {
    page.dataset.page = 'cluster';
    document.title = 'Cluster · weft';
    unmount = mountCluster(page);
  } else if (inst) {
    const id = decodeURIComponent(inst[1]);
    page.dataset.page = 'instance';
    document.title = `${id} · weft`;
    unmount = mountInstance(page, id);
  } else {
    page.dataset.page = 'list';
    document.title = 'Instances · weft';
    unmount = mountList(page, params);
  }
  window.scrollTo(0, 0);
}

initToken();
window.addEventListener('hashchange', route);
route();
// The Cluster link shows only on a cluster node.
api.clusterMembers().then(() => { document.getElementById('nav-cluster').hidden = false; }, () => {});
