package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftrt/weft/api"
)

// The tests run one after another: each starts its own server and browser, and
// two cores shared with the rest of `make test` are enough for one at a time.

const bigOrder = `{"Name":"Boat","Quantity":1,"TotalCost":5000}` // above the approval threshold (1000)

// waitingOrder starts an order that waits for ManagerApproval and returns once
// it waits.
func waitingOrder(s *server, id string) {
	s.t.Helper()
	s.start(api.StartRequest{Name: "OrderProcessingWorkflow", InstanceID: id, Input: json.RawMessage(bigOrder)})
	s.waitHistory(id, "timer-created", "wait:ManagerApproval")
}

// rowsJS lists the table's rows as "id=STATUS".
const rowsJS = `[...document.querySelectorAll('#instances tbody tr')].map(r => r.dataset.id + '=' + r.dataset.status)`

func (b *browser) waitRows(want []string) {
	b.t.Helper()
	want = append([]string{}, want...) // [] rather than null in JSON
	slices.Sort(want)
	wantJSON, _ := json.Marshal(want)
	pred := fmt.Sprintf(`JSON.stringify(%s.sort()) === %q`, rowsJS, wantJSON)
	ctx := b.timeout(25 * time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](pred,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		b.t.Fatalf("the table shows %v, want %v: %v", evalAs[[]string](b, rowsJS), want, err)
	}
}

// waitCounts waits until the count cards show want (statuses left out: 0).
func (b *browser) waitCounts(want map[string]int) {
	b.t.Helper()
	all := 0
	full := map[string]int{}
	for _, st := range []string{"RUNNING", "PENDING", "SUSPENDED", "STALLED", "COMPLETED", "FAILED", "TERMINATED"} {
		full[st] = want[st]
		all += want[st]
	}
	full["ALL"] = all
	wantJSON, _ := json.Marshal(full)
	const got = `Object.fromEntries([...document.querySelectorAll('.count-card')].map(c => [c.dataset.status, Number(c.dataset.count)]))`
	pred := fmt.Sprintf(`(() => { const want = %s; const got = %s; return Object.keys(want).every(k => got[k] === want[k]); })()`, wantJSON, got)
	ctx := b.timeout(25 * time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](pred,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		b.t.Fatalf("the counts show %v, want %v: %v", evalAs[map[string]int](b, got), full, err)
	}
}

// selectValue picks an option of a <select> as a user does (value, then change).
func (b *browser) selectValue(sel, value string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(s => (s.value = %q, s.dispatchEvent(new Event('change')), true))(document.querySelector(%q))`, value, sel))
}

// TestInstanceList seeds instances of every status and checks the list: the
// counts per status, the rows, the filters by status and by name, the search by
// id, paging, and the live refresh.
func TestInstanceList(t *testing.T) {
	needChromium(t)
	s := startServer(t, "")
	want := map[string]string{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("chain-ok-%d", i)
		s.start(api.StartRequest{Name: "ChainingWorkflow", InstanceID: id, Input: json.RawMessage(fmt.Sprintf(`{"value":%d}`, i))})
		want[id] = "COMPLETED"
	}
	for i := 1; i <= 2; i++ {
		id := fmt.Sprintf("fan-%d", i)
		s.start(api.StartRequest{Name: "FanOutFanInWorkflow", InstanceID: id, Input: json.RawMessage(`{"count":10,"maxParallel":5}`)})
		want[id] = "COMPLETED"
	}
	s.start(api.StartRequest{Name: "ChainingWorkflow", InstanceID: "chain-broken",
		Input: json.RawMessage(`{"value":1,"failStep":"Step2","retrySeconds":0.02}`)})
	want["chain-broken"] = "FAILED"
	for _, id := range []string{"order-wait-1", "order-wait-2", "order-stopped", "order-paused"} {
		waitingOrder(s, id)
		want[id] = "RUNNING"
	}
	ctx := context.Background()
	if err := s.client.Terminate(ctx, "order-stopped", api.TerminateRequest{Reason: json.RawMessage(`"test"`)}); err != nil {
		t.Fatal(err)
	}
	want["order-stopped"] = "TERMINATED"
	if err := s.client.Suspend(ctx, "order-paused", "test"); err != nil {
		t.Fatal(err)
	}
	want["order-paused"] = "SUSPENDED"
	later := time.Now().Add(time.Hour)
	s.start(api.StartRequest{Name: "ChainingWorkflow", InstanceID: "chain-later", Input: json.RawMessage(`{"value":1}`), StartAt: &later})
	want["chain-later"] = "PENDING"

	counts := map[string]int{}
	var rows []string
	for id, st := range want {
		s.waitStatus(id, st)
		counts[st]++
		rows = append(rows, id+"="+st)
	}

	b := newBrowser(t, s)
	b.open("/") // redirects to /ui/
	if loc := evalAs[string](b, `location.pathname`); loc != "/ui/" {
		t.Errorf("/ led to %s, want /ui/", loc)
	}
	b.waitCounts(counts)
	b.waitRows(rows)
	// Every row has its last update and its duration (read from its status).
	cells := evalAs[[]string](b, `[...document.querySelectorAll('#instances tbody tr[data-id="chain-ok-1"] td')].map(td => td.textContent)`)
	if len(cells) != 6 || cells[1] != "ChainingWorkflow" || cells[2] != "COMPLETED" || !strings.HasSuffix(cells[4], "ago") ||
		!strings.HasSuffix(cells[5], "ms") && !strings.HasSuffix(cells[5], "s") {
		t.Errorf("row of chain-ok-1: %q, want id, workflow, status, created, last updated (… ago), duration", cells)
	}
	b.saveScreenshot("ui-list.png")

	// The count cards filter by status.
	b.click(`.count-card[data-status="FAILED"]`)
	b.waitRows([]string{"chain-broken=FAILED"})
	if !strings.Contains(evalAs[string](b, `location.hash`), "status=FAILED") {
		t.Errorf("the status filter is not in the URL: %s", evalAs[string](b, `location.hash`))
	}
	b.click(`.count-card[data-status="ALL"]`)
	b.waitRows(rows)

	// Two statuses at once, with the checkboxes.
	b.click(`.status-filter input[data-status="RUNNING"]`)
	b.click(`.status-filter input[data-status="SUSPENDED"]`)
	b.waitRows([]string{"order-wait-1=RUNNING", "order-wait-2=RUNNING", "order-paused=SUSPENDED"})
	b.click(`.status-filter input[data-status="RUNNING"]`)
	b.click(`.status-filter input[data-status="SUSPENDED"]`)
	b.waitRows(rows)

	// By workflow name.
	b.waitJS("the workflow names", `document.querySelectorAll('#filter-name option').length === 5`)
	b.selectValue("#filter-name", "FanOutFanInWorkflow")
	b.waitRows([]string{"fan-1=COMPLETED", "fan-2=COMPLETED"})
	b.selectValue("#filter-name", "")
	b.waitRows(rows)

	// By id: one instance, or a clear "none".
	b.typeInto("#filter-id", "order-paused")
	b.click(".id-search button")
	b.waitRows([]string{"order-paused=SUSPENDED"})
	b.typeInto("#filter-id", "no-such-instance")
	b.click(".id-search button")
	b.waitRows(nil)
	b.waitJS("the not-found message", `document.querySelector('.notice:not([hidden])')?.textContent.includes('No instance has the id "no-such-instance"')`)
	b.typeInto("#filter-id", "")
	b.click(".id-search button")
	b.waitRows(rows)

	// Paging, oldest first: 10 of 11, then the last one.
	b.selectValue("#page-size", "10")
	b.waitJS("a page of 10", `document.querySelectorAll('#instances tbody tr').length === 10 && !document.getElementById('page-next').disabled`)
	first := evalAs[[]string](b, rowsJS)
	b.click("#page-next")
	b.waitJS("the second page", `document.querySelectorAll('#instances tbody tr').length === 1`)
	second := evalAs[[]string](b, rowsJS)
	if got := append(first, second...); len(got) != len(rows) || slices.Contains(first, second[0]) {
		t.Errorf("pages %v and %v, want the %d instances once each", first, second, len(rows))
	}
	if second[0] != "chain-later=PENDING" {
		t.Errorf("the last page shows %v, want the newest instance (chain-later)", second)
	}
	b.click("#page-prev")
	b.waitJS("the first page again", `document.querySelectorAll('#instances tbody tr').length === 10`)
	b.selectValue("#page-size", "25")
	b.waitRows(rows)

	// Live: an approval raised elsewhere shows up without a reload.
	if err := s.client.Raise(ctx, "order-wait-1", "ManagerApproval", json.RawMessage(`{"approved":true}`)); err != nil {
		t.Fatal(err)
	}
	s.waitStatus("order-wait-1", "COMPLETED")
	counts["RUNNING"]--
	counts["COMPLETED"]++
	b.waitCounts(counts)
	rows[slices.Index(rows, "order-wait-1=RUNNING")] = "order-wait-1=COMPLETED"
	b.waitRows(rows)
}

// TestFanOutTimeline clicks a 1,000-wide fan-out in the list and checks that its
// timeline and its diagram group the 1,000 activities legibly, and that the
// history table shows the events `weft history` prints.
func TestFanOutTimeline(t *testing.T) {
	needChromium(t)
	s := startServer(t, "")
	s.start(api.StartRequest{Name: "ChainingWorkflow", InstanceID: "chain-1", Input: json.RawMessage(`{"value":1}`)})
	s.start(api.StartRequest{Name: "FanOutFanInWorkflow", InstanceID: "fan-1000",
		Input: json.RawMessage(`{"count":1000,"maxParallel":1000,"itemDelayMs":20}`)})
	s.waitStatus("chain-1", "COMPLETED")
	s.waitStatus("fan-1000", "COMPLETED")
	hist, err := s.client.History(context.Background(), "fan-1000")
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, s)
	b.open("/ui/")
	b.click(`#instances tr[data-id="fan-1000"] td.id a`)
	b.waitJS("the instance page", `document.getElementById('page')?.dataset.page === 'instance' && document.getElementById('page').dataset.loaded === 'true'`)
	b.waitVisible("#timeline .timeline")
	if st := evalAs[string](b, `document.getElementById('inst-status')?.dataset.status`); st != "COMPLETED" {
		t.Errorf("status %s, want COMPLETED", st)
	}
	if out := strings.TrimSpace(b.text("#output pre")); out != "500500" {
		t.Errorf("output %q, want 500500", out)
	}

	// Timeline: GetWorkBatch, one group of 1000 ProcessWorkItem, PostResults.
	const rowsOf = `[...document.querySelectorAll('#timeline .tl-body > .tl-task, #timeline .tl-body > .tl-group')].map(r =>
		(r.dataset.kind === 'group' ? 'group:' + r.dataset.name + ':' + r.dataset.count : r.dataset.kind + ':' + r.dataset.name + ':' + r.dataset.outcome))`
	gotRows := evalAs[[]string](b, rowsOf)
	wantRows := []string{"activity:GetWorkBatch:completed", "group:ProcessWorkItem:1000", "activity:PostResults:completed"}
	if !slices.Equal(gotRows, wantRows) {
		t.Errorf("timeline rows %q, want %q", gotRows, wantRows)
	}
	if n := evalAs[int](b, `document.querySelectorAll('#timeline .tl-row').length`); n > 10 {
		t.Errorf("the collapsed timeline has %d rows: a fan-out of 1000 must be one group row", n)
	}
	info := b.text(`#timeline .tl-group .tl-info`)
	if !strings.Contains(info, "median") || !strings.Contains(info, "1000 ok") {
		t.Errorf("group summary %q, want durations and 1000 ok", info)
	}
	// Diagram: a line, a fork to a stack of 1000, a join, a line.
	nodes := evalAs[[]string](b, `[...document.querySelectorAll('#diagram .dg-node')].map(n => n.dataset.name + ':' + n.dataset.count)`)
	if want := []string{"GetWorkBatch:1", "ProcessWorkItem:1000", "PostResults:1"}; !slices.Equal(nodes, want) {
		t.Errorf("diagram nodes %q, want %q", nodes, want)
	}
	if n := evalAs[int](b, `document.querySelectorAll('#diagram .dg-fork').length`); n != 2 {
		t.Errorf("diagram has %d fork/join dots, want 2", n)
	}
	if end := evalAs[string](b, `document.querySelector('#diagram .dg-circle[data-kind="end"]')?.getAttribute('class') ?? ''`); !strings.Contains(end, "workflow-completed") {
		t.Errorf("diagram end %q, want completed", end)
	}
	b.saveScreenshot("ui-fanout.png")

	// Expanded, the group lists its tasks: 200 first, all on request.
	b.click(`#timeline .tl-group .toggle`)
	b.waitJS("200 task rows", `document.querySelectorAll('#timeline .tl-row.nested.tl-task').length === 200`)
	b.click(`#timeline .tl-more button`)
	b.waitJS("1000 task rows", `document.querySelectorAll('#timeline .tl-row.nested.tl-task').length === 1000`)
	// A task's details: click one.
	b.click(`#timeline .tl-row.nested.tl-task[data-task="5"]`)
	b.waitVisible("#task-detail")
	if d := b.text("#task-detail"); !strings.Contains(d, "ProcessWorkItem") || !strings.Contains(d, `"Index": 5`) {
		t.Errorf("task detail %q, want ProcessWorkItem with its input", d)
	}

	// The history table: the same events as the API (and `weft history`).
	if sum := b.text("#history summary"); !strings.Contains(sum, fmt.Sprintf("(%d)", len(hist.Events))) {
		t.Errorf("history summary %q, want (%d) events", sum, len(hist.Events))
	}
	b.click("#history summary")
	b.waitJS("the history table", `document.querySelectorAll('#history tbody tr').length === 1001`) // 1000 and "show all"
	kinds := evalAs[[]string](b, `[...document.querySelectorAll('#history tbody tr')].slice(0, 4).map(r => r.children[2].textContent + ' ' + r.children[4].textContent)`)
	var wantKinds []string
	for _, ev := range hist.Events[:4] {
		name := ev.Name
		if ev.Kind == "activity-completed" {
			name = "GetWorkBatch"
		}
		wantKinds = append(wantKinds, ev.Kind+" "+name)
	}
	if !slices.Equal(kinds, wantKinds) {
		t.Errorf("history rows start %q, want %q", kinds, wantKinds)
	}
}

// TestApprovalFromUI raises ManagerApproval from the UI on an order that waits
// for it, and sees the order complete.
func TestApprovalFromUI(t *testing.T) {
	needChromium(t)
	s := startServer(t, "")
	waitingOrder(s, "order-approve")

	b := newBrowser(t, s)
	b.open("/ui/#/instances/order-approve")
	b.waitJS("RUNNING", `document.getElementById('inst-status')?.dataset.status === 'RUNNING'`)
	b.waitVisible(`#timeline .tl-row[data-kind="wait"][data-outcome="waiting"]`)
	if cs := b.text("#custom-status pre"); !strings.Contains(cs, "waiting for ManagerApproval") {
		t.Errorf("custom status %q", cs)
	}
	if n := evalAs[string](b, `document.querySelector('#diagram .dg-node[data-kind="wait"]')?.dataset.name ?? ''`); n != "ManagerApproval" {
		t.Errorf("the diagram's wait node is %q, want ManagerApproval", n)
	}

	b.click("#act-raise")
	b.waitVisible("#confirm-dialog[open] #raise-name")
	if name := evalAs[string](b, `document.getElementById('raise-name').value`); name != "ManagerApproval" {
		t.Errorf("the event name is %q, want ManagerApproval (the event the instance waits for)", name)
	}
	// Invalid JSON is refused in the dialog, which stays open.
	b.typeInto("#raise-data", `{approved: yes}`)
	b.click("#confirm-ok")
	b.waitVisible("#confirm-error")
	if e := b.text("#confirm-error"); !strings.Contains(e, "not valid JSON") {
		t.Errorf("error %q, want a JSON error", e)
	}
	if st, _ := s.client.Status(context.Background(), "order-approve"); st.Status != "RUNNING" {
		t.Fatalf("the invalid event changed the status to %s", st.Status)
	}
	b.typeInto("#raise-data", `{"approved": true}`)
	// The event goes with an idempotency key, so that submitting it again
	// after an error that left its outcome unknown raises it once.
	evalAs[bool](b, `(() => { const f = window.fetch; window.raiseKeys = [];
		window.fetch = (path, init) => { if (String(path).includes('/events/')) window.raiseKeys.push(init?.headers?.['Idempotency-Key'] ?? ''); return f(path, init); };
		return true; })()`)
	b.click("#confirm-ok")
	b.waitJS("the result", `document.getElementById('action-result')?.textContent.includes('Status: COMPLETED')`)
	if keys := evalAs[string](b, `window.raiseKeys.join(',')`); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(keys) {
		t.Errorf("the raise went with idempotency keys %q, want one of 32 hex digits", keys)
	}
	b.waitJS("COMPLETED", `document.getElementById('inst-status')?.dataset.status === 'COMPLETED'`)
	if r := b.text("#action-result"); !strings.Contains(r, "Event ManagerApproval raised") {
		t.Errorf("action result %q", r)
	}
	st := s.waitStatus("order-approve", "COMPLETED")
	if string(st.Output) != `{"Processed":true}` {
		t.Errorf("output %s, want {\"Processed\":true}", st.Output)
	}
	b.waitVisible(`#timeline .tl-row[data-kind="wait"][data-outcome="received"]`)
	b.waitVisible(`#timeline .tl-row[data-name="ShipOrderActivity"][data-outcome="completed"]`)
	if n := evalAs[string](b, `document.querySelector('#timeline .tl-events')?.dataset.count ?? ''`); n != "1" {
		t.Errorf("events row counts %q events, want 1", n)
	}
	if d := evalAs[bool](b, `document.getElementById('act-raise').disabled && document.getElementById('act-terminate').disabled && !document.getElementById('act-purge').disabled`); !d {
		t.Errorf("a completed instance offers purge only")
	}
}

// TestLifecycleFromUI pauses, resumes, terminates and purges an instance from
// the UI, confirming each, and sees each resulting status.
func TestLifecycleFromUI(t *testing.T) {
	needChromium(t)
	s := startServer(t, "")
	waitingOrder(s, "order-stop")
	ctx := context.Background()

	b := newBrowser(t, s)
	b.open("/ui/#/instances/order-stop")
	b.waitJS("RUNNING", `document.getElementById('inst-status')?.dataset.status === 'RUNNING'`)

	act := func(button, wantStatus string) {
		t.Helper()
		b.click(button)
		b.waitVisible("#confirm-dialog[open] #confirm-ok")
		b.click("#confirm-ok")
		b.waitJS(wantStatus, fmt.Sprintf(`document.getElementById('inst-status')?.dataset.status === %q`, wantStatus))
		b.waitJS("the result", fmt.Sprintf(`document.getElementById('action-result')?.dataset.status === %q`, wantStatus))
		if st := s.waitStatus("order-stop", wantStatus); st.Status != wantStatus {
			t.Fatalf("after %s the API says %s", button, st.Status)
		}
	}
	// Cancel does nothing.
	b.click("#act-terminate")
	b.waitVisible("#confirm-dialog[open] #confirm-cancel")
	b.click("#confirm-cancel")
	b.waitJS("the dialog closed", `!document.getElementById('confirm-dialog').open`)
	if st, _ := s.client.Status(ctx, "order-stop"); st.Status != "RUNNING" {
		t.Fatalf("cancel changed the status to %s", st.Status)
	}

	act("#act-pause", "SUSPENDED")
	b.waitVisible(`#timeline .tl-life .tl-bar.paused`)
	act("#act-resume", "RUNNING")
	b.click("#act-terminate")
	b.typeInto("#terminate-reason", "stopped from the UI test")
	b.click("#confirm-ok")
	b.waitJS("TERMINATED", `document.getElementById('inst-status')?.dataset.status === 'TERMINATED'`)
	b.waitJS("the result", `document.getElementById('action-result')?.textContent.includes('Status: TERMINATED')`)
	s.waitStatus("order-stop", "TERMINATED")
	b.waitJS("the diagram's end", `document.querySelector('#diagram .dg-circle[data-kind="end"]')?.classList.contains('workflow-terminated')`)

	// The list shows it TERMINATED too.
	b.click(".crumbs a")
	b.waitRows([]string{"order-stop=TERMINATED"})
	b.waitCounts(map[string]int{"TERMINATED": 1})

	// Purge: gone from the API and the page says so.
	b.click(`#instances tr[data-id="order-stop"] td.id a`)
	b.waitJS("the instance page", `document.getElementById('inst-status')?.dataset.status === 'TERMINATED'`)
	b.click("#act-purge")
	b.waitVisible("#confirm-dialog[open] #purge-recursive")
	b.click("#confirm-ok")
	b.waitJS("purged", `document.getElementById('action-result')?.textContent.includes('deleted')`)
	_, err := s.client.Status(ctx, "order-stop")
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("after purge: %v, want 404", err)
	}
	b.waitJS("the page says purged", `document.getElementById('inst-status')?.dataset.status === 'PURGED'`)
}

// TestAPIToken: with --api-token the UI's assets load without the token, the UI
// asks for it once, refuses a wrong one, and then works.
func TestAPIToken(t *testing.T) {
	needChromium(t)
	const token = "s3cret-token"
	s := startServer(t, token)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{"/ui/": 200, "/ui/js/app.js": 200, "/api/v1/counts": 401, "/": 302} {
		resp, err := noRedirect.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without the token: %d, want %d", path, resp.StatusCode, want)
		}
	}
	s.start(api.StartRequest{Name: "ChainingWorkflow", InstanceID: "chain-1", Input: json.RawMessage(`{"value":1}`)})
	s.waitStatus("chain-1", "COMPLETED")

	b := newBrowser(t, s)
	if err := chromedp.Do(b.timeout(20*time.Second), chromedp.Navigate(s.URL+"/ui/")); err != nil {
		t.Fatal(err)
	}
	b.waitVisible("#token-dialog[open] #token-input")
	b.typeInto("#token-input", "wrong")
	b.click("#token-submit")
	b.waitVisible("#token-dialog[open] #token-error")
	b.typeInto("#token-input", token)
	b.click("#token-submit")
	b.waitJS("the page loaded", `document.getElementById('page')?.dataset.loaded === 'true'`)
	b.waitRows([]string{"chain-1=COMPLETED"})
	if !evalAs[bool](b, fmt.Sprintf(`sessionStorage.getItem('weft.apiToken') === %q`, token)) {
		t.Errorf("the token is not kept in sessionStorage")
	}
	// Asked once: a reload in the same tab does not ask again.
	if err := chromedp.Do(b.timeout(20*time.Second), chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	b.waitJS("the page loaded", `document.getElementById('page')?.dataset.loaded === 'true'`)
	if open := evalAs[bool](b, `document.getElementById('token-dialog').open`); open {
		t.Errorf("the token dialog opened again after a reload")
	}
	b.waitRows([]string{"chain-1=COMPLETED"})
	b.goTo("#/instances/chain-1")
	b.waitJS("COMPLETED", `document.getElementById('inst-status')?.dataset.status === 'COMPLETED'`)
}

// TestClusterPage: on a cluster node the Cluster link appears and its page shows
// the members and one cell per partition, colored by owner; on a lone server the
// link stays hidden and the page says why.
func TestClusterPage(t *testing.T) {
	needChromium(t)
	s := startServer(t, "", "--node-id", "ui-node", "--gossip", "127.0.0.1:0", "--actor", "127.0.0.1:0")
	b := newBrowser(t, s)
	b.open("/ui/")
	b.waitVisible("#nav-cluster")
	b.click("#nav-cluster")
	b.waitJS("the cluster page", `document.getElementById('page')?.dataset.page === 'cluster' && document.getElementById('page').dataset.loaded === 'true'`)
	if got := evalAs[[]string](b, `[...document.querySelectorAll('#members tbody tr')].map(r => r.dataset.node + '=' + r.dataset.state)`); !slices.Equal(got, []string{"ui-node=alive"}) {
		t.Errorf("members %v, want [ui-node=alive]", got)
	}
	if n := evalAs[int](b, `document.querySelectorAll('#partition-map .cell[data-owner="ui-node"]:not(.away):not(.off)').length`); n != 256 {
		t.Errorf("%d served cells owned by ui-node, want 256", n)
	}
	b.saveScreenshot("ui-cluster.png")

	lone := startServer(t, "")
	lb := newBrowser(t, lone)
	lb.open("/ui/#/cluster")
	if !strings.Contains(lb.text("#page .notice"), "runs alone") {
		t.Errorf("a lone server's cluster page says %q", lb.text("#page .notice"))
	}
	if hidden := evalAs[bool](lb, `document.getElementById('nav-cluster').hidden`); !hidden {
		t.Error("a lone server shows the Cluster link")
	}
}

// TestRerunFromUI: on a finished chain, a task's details offer "Rerun from
// here"; with a new id the dialog starts the rerun and shows the new instance,
// which completes.
func TestRerunFromUI(t *testing.T) {
	needChromium(t)
	s := startServer(t, "")
	s.start(api.StartRequest{Name: "ChainingWorkflow", InstanceID: "chain-src", Input: json.RawMessage(`{"value":1}`)})
	s.waitStatus("chain-src", "COMPLETED")

	b := newBrowser(t, s)
	b.open("/ui/#/instances/chain-src")
	b.waitJS("the instance page", `document.getElementById('page')?.dataset.page === 'instance' && document.getElementById('page').dataset.loaded === 'true'`)
	b.click(`#timeline .tl-task[data-task="1"]`)
	b.waitVisible("#act-rerun")
	b.click("#act-rerun")
	b.waitVisible("#confirm-dialog[open] #rerun-id")
	b.typeInto("#rerun-id", "chain-rerun")
	b.click("#confirm-ok")
	b.waitJS("the rerun's page", `location.hash === '#/instances/chain-rerun' && document.getElementById('page')?.dataset.loaded === 'true'`)
	s.waitStatus("chain-rerun", "COMPLETED")
	src, err := s.client.Status(context.Background(), "chain-src")
	if err != nil {
		t.Fatal(err)
	}
	rerun, err := s.client.Status(context.Background(), "chain-rerun")
	if err != nil || string(rerun.Output) != string(src.Output) {
		t.Fatalf("the rerun: %+v %v, want the source's output %s", rerun, err, src.Output)
	}
}

// TestRetriesFromUI: an activity that failed once and was retried says so on
// its timeline row and in its detail: how many attempts, and why and when the
// failed one ended.
func TestRetriesFromUI(t *testing.T) {
	needChromium(t)
	s := startServer(t, "")
	s.start(api.StartRequest{Name: "ChainingWorkflow", InstanceID: "chain-retried",
		Input: json.RawMessage(`{"value":1,"failStep":"Step2","failTimes":1,"retrySeconds":1}`)})
	s.waitStatus("chain-retried", "COMPLETED")

	b := newBrowser(t, s)
	b.open("/ui/#/instances/chain-retried")
	b.waitJS("the instance page", `document.getElementById('page')?.dataset.page === 'instance' && document.getElementById('page').dataset.loaded === 'true'`)
	if got := b.text(`#timeline .tl-task[data-task="1"]`); !strings.Contains(got, "completed after 2 attempts") {
		t.Errorf("Step2's timeline row says %q, want \"completed after 2 attempts\"", got)
	}
	b.click(`#timeline .tl-task[data-task="1"]`)
	b.waitVisible("#act-rerun")
	detail := b.text("#task-detail")
	for _, want := range []string{"Attempts", "attempt 1 failed at", "StepFailed: Step2 failed on attempt 1", "next attempt at"} {
		if !strings.Contains(detail, want) {
			t.Errorf("Step2's detail has no %q:\n%s", want, detail)
		}
	}
}

// TestSchedulesPage: a schedule created with the page's form ticks (its
// runs link to their instances), pauses, runs now while paused, resumes and
// is deleted, all from its buttons; a bad timetable is refused with the
// server's message.
func TestSchedulesPage(t *testing.T) {
	needChromium(t)
	s := startServer(t, "")
	b := newBrowser(t, s)
	b.open("/ui/")
	b.click("#nav-schedules")
	b.waitJS("the schedules page", `document.getElementById('page')?.dataset.page === 'schedules' && document.getElementById('page').dataset.loaded === 'true'`)
	b.waitJS("the workflows in the form", `[...document.querySelectorAll('#sched-workflow option')].some(o => o.value === 'ChainingWorkflow')`)

	b.typeInto("#sched-id", "bad")
	b.selectValue("#sched-workflow", "ChainingWorkflow")
	b.typeInto("#sched-when", "61 * * * *")
	b.click("#sched-create")
	b.waitJS("the refusal", `document.getElementById('schedules-message').textContent.includes('cron expression')`)

	b.typeInto("#sched-id", "ui-chain")
	b.selectValue("#sched-kind", "every")
	b.typeInto("#sched-when", "1s")
	b.typeInto("#sched-input", `{"value": 2}`)
	b.click("#sched-create")
	b.waitJS("the schedule's row", `document.querySelector('#schedules tr[data-id="ui-chain"]')?.dataset.state === 'active'`)
	b.waitJS("a run", `Number(document.querySelector('#schedules tr[data-id="ui-chain"] [data-count="started"]')?.textContent) >= 1`)
	b.saveScreenshot("ui-schedules.png")

	b.click(`#schedules tr[data-id="ui-chain"] button.pause`)
	b.waitJS("paused", `document.querySelector('#schedules tr[data-id="ui-chain"]')?.dataset.state === 'paused'`)
	b.click(`#schedules tr[data-id="ui-chain"] button.trigger`)
	b.waitJS("the run started by the button", `document.getElementById('schedules-message').textContent.startsWith('Started ui-chain-')`)
	run := strings.TrimSuffix(strings.TrimPrefix(b.text("#schedules-message"), "Started "), ".")
	if st := s.waitStatus(run, "COMPLETED"); string(st.Output) != "6" {
		t.Errorf("the run %s: %+v", run, st)
	}
	b.click(`#schedules tr[data-id="ui-chain"] button.recent`)
	b.waitJS("the recent actions", fmt.Sprintf(`[...document.querySelectorAll('[data-recent="ui-chain"] li a')].some(a => a.textContent === %q)`, run))
	b.click(`#schedules tr[data-id="ui-chain"] button.resume`)
	b.waitJS("active again", `document.querySelector('#schedules tr[data-id="ui-chain"]')?.dataset.state === 'active'`)

	b.eval(`(window.confirm = () => true, true)`)
	b.click(`#schedules tr[data-id="ui-chain"] button.delete`)
	b.waitJS("the schedule gone", `!document.querySelector('#schedules tr[data-id="ui-chain"]') && document.getElementById('schedules-message').textContent === 'Deleted ui-chain.'`)
}
