package durabletask

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftrt/weft/actors"
	"github.com/weftrt/weft/api/durabletask/protos"
	"github.com/weftrt/weft/workflow"
)

// chainEpisode is episode k of a chain of activities as the instance hands it
// out: the past of k steps (each: its episode, the previous result, the next
// call) and the result of step k.
func chainEpisode(created time.Time, execution string, k int) *actors.OrchestrationWork {
	at := created
	var evs []workflow.Event
	evs = append(evs, workflow.Event{Kind: workflow.EpisodeStarted, Time: at},
		workflow.Event{Kind: workflow.WorkflowStarted, Name: "Chain", Data: []byte(`{"start":17}`), Time: at})
	for i := range k + 1 {
		at = at.Add(time.Millisecond)
		if i > 0 {
			evs = append(evs, workflow.Event{Kind: workflow.EpisodeStarted, Time: at},
				workflow.Event{Kind: workflow.ActivityCompleted, TaskID: int64(i - 1), Data: []byte("18"), Time: at})
		}
		evs = append(evs, workflow.Event{Kind: workflow.ActivityScheduled, TaskID: int64(i), Name: "Inc", Data: []byte("17"),
			TaskExecutionID: "exec-" + string(rune('a'+i)), Time: at})
	}
	at = at.Add(time.Millisecond)
	return &actors.OrchestrationWork{InstanceID: "chain", ExecutionID: execution, Name: "Chain", Created: created,
		Past: evs, New: []workflow.Event{{Kind: workflow.EpisodeStarted, Time: at},
			{Kind: workflow.ActivityCompleted, TaskID: int64(k), Data: []byte("18"), Time: at}}}
}

// TestEncodedPastIsTheWholeHistory sends episodes of one instance through its
// cache, in the orders an instance can hand them out, and checks what a worker
// decodes against a fresh conversion of each: the same past and new events,
// in order, whatever the cache held before.
func TestEncodedPastIsTheWholeHistory(t *testing.T) {
	created := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	versioned := func(o *actors.OrchestrationWork) *actors.OrchestrationWork { o.Version = "v2"; return o }
	traced := func(o *actors.OrchestrationWork) *actors.OrchestrationWork {
		o.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		return o
	}
	for _, tc := range []struct {
		name     string
		episodes []*actors.OrchestrationWork
	}{
		{"a chain, step by step", []*actors.OrchestrationWork{
			chainEpisode(created, "0", 0), chainEpisode(created, "0", 1), chainEpisode(created, "0", 2), chainEpisode(created, "0", 3)}},
		{"the same episode offered twice", []*actors.OrchestrationWork{
			chainEpisode(created, "0", 1), chainEpisode(created, "0", 1), chainEpisode(created, "0", 2)}},
		{"an older episode offered after a newer one", []*actors.OrchestrationWork{
			chainEpisode(created, "0", 3), chainEpisode(created, "0", 1), chainEpisode(created, "0", 4)}},
		{"the version named after the first episode", []*actors.OrchestrationWork{
			chainEpisode(created, "0", 1), versioned(chainEpisode(created, "0", 2)), versioned(chainEpisode(created, "0", 3))}},
		{"a trace context", []*actors.OrchestrationWork{
			traced(chainEpisode(created, "0", 1)), traced(chainEpisode(created, "0", 2))}},
		{"continued as new", []*actors.OrchestrationWork{
			chainEpisode(created, "0", 3), chainEpisode(created, "1", 1), chainEpisode(created, "1", 2)}},
		{"purged and started again", []*actors.OrchestrationWork{
			chainEpisode(created, "0", 3), chainEpisode(created.Add(time.Hour), "0", 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := &actors.EpisodeCache{}
			for i, o := range tc.episodes {
				o.Cache = cache
				b, err := proto.Marshal(workItem(&actors.WorkItem{Orchestration: o}, nil))
				if err != nil {
					t.Fatalf("episode %d: %v", i, err)
				}
				var got protos.WorkItem
				if err := proto.Unmarshal(b, &got); err != nil {
					t.Fatalf("episode %d: %v", i, err)
				}
				req := got.GetWorkflowRequest()
				wantPast, wantNew := episodeEvents(o)
				if !equalEvents(req.GetPastEvents(), wantPast) || !equalEvents(req.GetNewEvents(), wantNew) {
					t.Fatalf("episode %d: got %d past and %d new events, want %d and %d (or they differ):\n%v\nwant past %v",
						i, len(req.GetPastEvents()), len(req.GetNewEvents()), len(wantPast), len(wantNew), req, wantPast)
				}
				if len(req.ProtoReflect().GetUnknown()) != 0 {
					t.Fatalf("episode %d: the decoded request has unknown fields", i)
				}
			}
		})
	}
}

func equalEvents(a, b []*protos.HistoryEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// BenchmarkChainEpisodes is the server's conversion and encoding of the six
// episodes of a chain of five activities for a whole-history worker: with the
// instance's cache (as sent) and without it (every past converted again).
func BenchmarkChainEpisodes(b *testing.B) {
	created := time.Now()
	for _, cached := range []bool{false, true} {
		name := "converted-each-time"
		if cached {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			var eps []*actors.WorkItem
			for k := range 6 {
				eps = append(eps, &actors.WorkItem{Orchestration: chainEpisode(created, "0", k)})
			}
			b.ReportAllocs()
			for b.Loop() {
				var c *actors.EpisodeCache
				if cached {
					c = &actors.EpisodeCache{}
				}
				for _, it := range eps {
					it.Orchestration.Cache = c
					if _, err := proto.Marshal(workItem(it, nil)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
