// Package replay checks workflow code against the histories of instances that
// already ran, before the code is deployed: would it continue each running
// instance (ok), stall it (a version or patch it lacks), or diverge from its
// history (a changed step that would fail the instance)? It replays through
// weft's executor and runs nothing else: no activity, no timer, no write.
//
// Three ways in: History replays one history (a unit test's regression check
// with File and a history exported by `weft history ID --json`); Check replays
// the instances of a live server (FromServer) or of a stopped server's data
// directory (FromData); Main is the `replay` command a program embedding weft
// exposes (`weft replay` is it, for the binary's own workflows).
package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"github.com/weftrt/weft/api"
	"github.com/weftrt/weft/workflow"
)

// Verdict is what replaying one instance's history with the code found.
type Verdict string

const (
	// OK: the code makes every recorded call; the instance would go on.
	OK Verdict = "ok"
	// Stall: the code lacks the instance's version (or workflow) or a patch
	// its history took; it would wait, STALLED, for code that has it.
	Stall Verdict = "stall"
	// Diverge: the code no longer makes a recorded call; the instance would
	// fail with a NonDeterminismError.
	Diverge Verdict = "diverge"
	// Fail: the code panicked or did not yield (deadlock) on the recorded
	// history.
	Fail Verdict = "fail"
)

// Result is the verdict on one instance.
type Result struct {
	InstanceID string  `json:"instanceId"`
	Workflow   string  `json:"workflow"`
	Version    string  `json:"version,omitempty"`
	Status     string  `json:"status,omitempty"` // the instance's runtime status, when known
	Verdict    Verdict `json:"verdict"`
	// Event is the position in history (from 0, as `weft history` numbers
	// events) where the replay diverged; -1 when it did not.
	Event    int    `json:"event"`
	TaskID   int64  `json:"taskId,omitempty"`
	Recorded string `json:"recorded,omitempty"` // what history has there
	Replayed string `json:"replayed,omitempty"` // what the code did instead
	Reason   string `json:"reason,omitempty"`   // a stall's reason: PATCH_MISMATCH, VERSION_NOT_AVAILABLE
	Detail   string `json:"detail,omitempty"`   // the stall's description or the failure
	// Patches are the patch answers the replay saw (recorded or given).
	Patches map[string]bool `json:"patches,omitempty"`
}

func (r Result) String() string {
	switch r.Verdict {
	case Diverge:
		return fmt.Sprintf("%s (%s): would diverge at event %d: history has %s, the code made %s", r.InstanceID, r.Workflow, r.Event, r.Recorded, r.Replayed)
	case Stall:
		return fmt.Sprintf("%s (%s): would stall, %s: %s", r.InstanceID, r.Workflow, r.Reason, r.Detail)
	case Fail:
		return fmt.Sprintf("%s (%s): would fail: %s", r.InstanceID, r.Workflow, r.Detail)
	}
	return fmt.Sprintf("%s (%s): ok", r.InstanceID, r.Workflow)
}

// History replays one instance's history (its current generation, oldest
// first, as the history API returns it) against the code registered in reg.
func History(reg *workflow.Registry, instanceID string, history []workflow.Event) Result {
	res := Result{InstanceID: instanceID, Event: -1, Verdict: OK}
	if i := slices.IndexFunc(history, func(ev workflow.Event) bool { return ev.Kind == workflow.WorkflowStarted }); i >= 0 {
		res.Workflow, res.Version = history[i].Name, history[i].Version
	}
	exec := workflow.NewExecutor(reg, instanceID, workflow.ExecutorOptions{Logger: discard})
	defer exec.Close()
	o := exec.Execute(history, nil)
	if len(exec.Patches()) > 0 {
		res.Patches = exec.Patches()
	}
	if d := o.Divergence; d != nil {
		res.Event, res.TaskID, res.Recorded, res.Replayed = d.Event, d.TaskID, d.Recorded, d.Replayed
	}
	switch {
	case o.Stall != nil:
		res.Verdict, res.Reason, res.Detail = Stall, string(o.Stall.Reason), o.Stall.Description
	case o.Divergence != nil:
		res.Verdict, res.Detail = Diverge, o.Divergence.Error()
	case o.Deadlocked:
		res.Verdict, res.Detail = Fail, o.Actions[0].Failure.Message
	default:
		for _, a := range o.Actions {
			if a.Kind == workflow.WorkflowFailed && a.Failure != nil && a.Failure.Type == "panic" {
				res.Verdict, res.Detail = Fail, a.Failure.Message
			}
		}
	}
	return res
}

// File replays the history in path, a file written by `weft history ID --json`
// (the body of GET /api/v1/instances/{id}/history). In a test:
//
//	res, err := replay.File(reg, "testdata/order-1234.json")
//	if err != nil || res.Verdict != replay.OK {
//		t.Fatalf("%v %v", res, err)
//	}
func File(reg *workflow.Registry, path string) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	id, history, err := ReadHistoryJSON(f)
	if err != nil {
		return Result{}, fmt.Errorf("replay %s: %w", path, err)
	}
	return History(reg, id, history), nil
}

// ReadHistoryJSON reads a history in the history API's JSON.
func ReadHistoryJSON(r io.Reader) (instanceID string, history []workflow.Event, err error) {
	var resp api.HistoryResponse
	dec := json.NewDecoder(r)
	if err := dec.Decode(&resp); err != nil {
		return "", nil, fmt.Errorf("read history JSON: %w", err)
	}
	history, err = FromAPI(resp.Events)
	return resp.ID, history, err
}

// FromAPI turns the history API's events back into history events.
func FromAPI(events []api.HistoryEvent) ([]workflow.Event, error) {
	out := make([]workflow.Event, 0, len(events))
	for i, he := range events {
		kind, ok := workflow.ParseEventKind(he.Kind)
		if !ok {
			return nil, fmt.Errorf("history event %d: unknown kind %q", i, he.Kind)
		}
		ev := workflow.Event{Kind: kind, Time: he.Time, Name: he.Name, Instance: he.Instance, Failure: he.Failure, Retry: he.Retry, Version: he.Version}
		if len(he.Data) > 0 {
			ev.Data = slices.Clone([]byte(he.Data))
		}
		if he.TaskID != nil {
			ev.TaskID = *he.TaskID
		}
		if he.FireAt != nil {
			ev.FireAt = *he.FireAt
		}
		out = append(out, ev)
	}
	if !slices.ContainsFunc(out, func(ev workflow.Event) bool { return ev.Kind == workflow.WorkflowStarted }) {
		return nil, fmt.Errorf("a history has a %s event; this one (%d events) has none", workflow.WorkflowStarted, len(out))
	}
	return out, nil
}

// Summary counts results by verdict.
func Summary(results []Result) map[Verdict]int {
	m := map[Verdict]int{}
	for _, r := range results {
		m[r.Verdict]++
	}
	return m
}

var discard = slog.New(slog.DiscardHandler)
