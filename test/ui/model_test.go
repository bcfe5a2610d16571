package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftrt/weft/api/ui"
)

// history builds a history event by event, one millisecond apart.
type history struct {
	t0     time.Time
	events []map[string]any
}

func (h *history) add(kind string, task int, name string, extra ...any) *history {
	ev := map[string]any{"seq": len(h.events), "kind": kind, "time": h.t0.Add(time.Duration(len(h.events)) * time.Millisecond)}
	if task >= 0 {
		ev["taskId"] = task
	}
	if name != "" {
		ev["name"] = name
	}
	for i := 0; i+1 < len(extra); i += 2 {
		ev[extra[i].(string)] = extra[i+1]
	}
	h.events = append(h.events, ev)
	return h
}

// TestHistoryModel checks, in the browser, how the UI's model (js/model.js)
// reads histories into the structure the diagram draws and the rows the timeline
// draws: a chain, a bounded fan-out, a WhenAny whose loser is left behind, an
// approval, a loop, and a run still in progress.
func TestHistoryModel(t *testing.T) {
	needChromium(t)
	mux := http.NewServeMux()
	mux.Handle("/ui/", ui.Handler("/ui/"))
	mux.HandleFunc("/blank", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>model</title>")
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	b := newBrowser(t, &server{URL: ts.URL})
	if err := chromedp.Do(b.timeout(20*time.Second), chromedp.Navigate(ts.URL+"/blank")); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	start := func(name string) *history {
		return (&history{t0: t0}).add("workflow-started", -1, name)
	}
	done := func(h *history) *history { return h.add("workflow-completed", -1, "") }

	chain := done(start("Chain").add("activity-scheduled", 0, "A").add("activity-completed", 0, "").
		add("activity-scheduled", 1, "B").add("activity-completed", 1, ""))
	// workflow.Parallel of 4 with at most 2 in flight: each result schedules the next.
	bounded := start("Fan").add("activity-scheduled", 0, "Get").add("activity-completed", 0, "").
		add("activity-scheduled", 1, "P").add("activity-scheduled", 2, "P").
		add("activity-completed", 1, "").add("activity-scheduled", 3, "P").
		add("activity-completed", 2, "").add("activity-scheduled", 4, "P").
		add("activity-completed", 3, "").add("activity-completed", 4, "").
		add("activity-scheduled", 5, "Post").add("activity-completed", 5, "")
	done(bounded)
	// WhenAny(event wait, timer): the timer wins; the wait is left behind.
	whenAny := done(start("Race").add("timer-created", 0, "wait:Go").add("timer-created", 1, "").
		add("timer-fired", 1, "").add("activity-scheduled", 2, "N").add("activity-completed", 2, ""))
	approval := done(start("Order").add("activity-scheduled", 0, "Request").add("activity-completed", 0, "").
		add("timer-created", 1, "wait:ManagerApproval").add("event-raised", -1, "ManagerApproval", "data", map[string]bool{"approved": true}).
		add("timer-canceled", 1, "").add("activity-scheduled", 2, "Pay").add("activity-completed", 2, ""))
	loop := start("Loop")
	for i := range 4 {
		loop.add("activity-scheduled", i, "Poll").add("activity-completed", i, "")
	}
	done(loop)
	running := start("Running").add("activity-scheduled", 0, "A").add("activity-completed", 0, "").add("activity-scheduled", 1, "B")
	failed := start("Fails").add("activity-scheduled", 0, "Step3").
		add("activity-failed", 0, "Step3", "failure", map[string]string{"type": "StepFailed", "message": "Step3 failed on attempt 3"}).
		add("workflow-failed", -1, "")
	retried := done(start("Retries").add("activity-scheduled", 0, "Step2").
		add("activity-retrying", 0, "Step2", "data", 1, "failure", map[string]string{"type": "StepFailed", "message": "flaky"}, "fireAt", t0.Add(time.Second)).
		add("activity-retrying", 0, "Step2", "data", 2, "failure", map[string]string{"type": "StepFailed", "message": "flaky"}, "fireAt", t0.Add(3*time.Second)).
		add("activity-completed", 0, ""))
	// Past the tenth failed attempt only every hundredth is marked.
	persistent := start("Persistent").add("activity-scheduled", 0, "Down")
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100} {
		persistent.add("activity-retrying", 0, "Down", "data", n, "fireAt", t0.Add(time.Hour))
	}
	done(persistent.add("activity-completed", 0, ""))

	for _, c := range []struct {
		name     string
		status   string
		h        *history
		items    []string // the structure: start, stage[branch×n,...], event, send, end
		rows     []string // the timeline
		extra    string   // a JS expression over the model m, with its expected value
		extraHas string
	}{
		{"chain", "COMPLETED", chain,
			[]string{"start", "stage[A×1]", "stage[B×1]", "end"},
			[]string{"activity:A:completed", "activity:B:completed"}, "", ""},
		{"bounded fan-out", "COMPLETED", bounded,
			[]string{"start", "stage[Get×1]", "stage[P×4]", "stage[Post×1]", "end"},
			[]string{"activity:Get:completed", "group:P×4 peak 2", "activity:Post:completed"}, "", ""},
		{"WhenAny leaves the loser behind", "COMPLETED", whenAny,
			[]string{"start", "stage[Go×1,×1]", "stage[N×1]", "end"},
			[]string{"wait:Go:abandoned", "timer::fired", "activity:N:completed"}, "", ""},
		{"approval", "COMPLETED", approval,
			[]string{"start", "stage[Request×1]", "stage[ManagerApproval×1]", "stage[Pay×1]", "end"},
			[]string{"activity:Request:completed", "wait:ManagerApproval:received", "activity:Pay:completed"},
			`m.events.map(e => e.name + ' ended the wait of task ' + e.wait?.id).join()`, "ManagerApproval ended the wait of task 1"},
		{"loop", "COMPLETED", loop,
			[]string{"start", "stage[Poll×1]", "stage[Poll×1]", "stage[Poll×1]", "stage[Poll×1]", "end"},
			[]string{"group:Poll×4 in sequence peak 1"}, "", ""},
		{"running", "RUNNING", running,
			[]string{"start", "stage[A×1]", "stage[B×1]", "end"},
			[]string{"activity:A:completed", "activity:B:running"}, `m.finished`, "false"},
		{"failed after attempts", "FAILED", failed,
			[]string{"start", "stage[Step3×1]", "end"},
			[]string{"activity:Step3:failed"}, `m.tasks[0].attempts`, "3"},
		{"retried, then completed", "COMPLETED", retried,
			[]string{"start", "stage[Step2×1]", "end"},
			[]string{"activity:Step2:completed"},
			`m.tasks[0].attempts + ' attempts: ' + m.tasks[0].retries.map(r => r.attempt + ' ' + r.failure.message + ' next +' + (r.nextAt - m.t0)).join(', ')`,
			"3 attempts: 1 flaky next +1000, 2 flaky next +3000"},
		{"retried past the thinning", "COMPLETED", persistent,
			[]string{"start", "stage[Down×1]", "end"},
			[]string{"activity:Down:completed"}, `(m.tasks[0].attemptsAtLeast ? 'at least ' : '') + m.tasks[0].attempts`, "at least 101"},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs, _ := json.Marshal(c.h.events)
			st, _ := json.Marshal(map[string]any{"id": "x", "name": "w", "status": c.status, "createdAt": t0,
				"completedAt": c.h.events[len(c.h.events)-1]["time"]})
			extra := c.extra
			if extra == "" {
				extra = "''"
			}
			js := fmt.Sprintf(`(async () => {
				const {buildModel, branchesOf} = await import('/ui/js/model.js');
				const m = buildModel(%s, %s, Date.parse(%q) + 60000);
				return {
					items: m.items.map(it => it.type === 'stage' ? 'stage[' + branchesOf(it).map(b => b.name + '×' + b.tasks.length).join(',') + ']' : it.type),
					rows: m.rows.map(r => r.type === 'group' ?
						'group:' + r.name + '×' + r.tasks.length + (r.sequential ? ' in sequence' : '') + ' peak ' + r.peak :
						r.task.kind + ':' + r.task.name + ':' + r.task.outcome),
					extra: String(%s),
				};
			})()`, st, evs, t0.Format(time.RFC3339Nano), extra)
			got, err := chromedp.Run(b.timeout(20*time.Second), chromedp.Evaluate[struct {
				Items []string `json:"items"`
				Rows  []string `json:"rows"`
				Extra string   `json:"extra"`
			}](js, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("evaluate: %v", err)
			}
			if !slices.Equal(got.Items, c.items) {
				t.Errorf("structure %q, want %q", got.Items, c.items)
			}
			if !slices.Equal(got.Rows, c.rows) {
				t.Errorf("timeline rows %q, want %q", got.Rows, c.rows)
			}
			if c.extra != "" && got.Extra != c.extraHas {
				t.Errorf("%s = %q, want %q", c.extra, got.Extra, c.extraHas)
			}
		})
	}
}
