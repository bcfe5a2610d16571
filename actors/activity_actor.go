package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/weftrt/weft/workflow"
)

// activityActor runs one attempt of one activity invocation, reports the outcome to
// its workflow until the workflow acknowledges it, and stops. It keeps nothing on
// disk: the invocation's durable record (attempt, next attempt time) is the
// workflow's, so a crash here at worst runs the attempt again.
//
// The invocation arrives as the actor's first message rather than through its
// producer, so every activity actor is spawned from the host's one Props.
type activityActor struct {
	h *Host
}

func (a *activityActor) Receive(ctx actor.Context) {
	inv, ok := ctx.Message().(Invocation)
	if !ok {
		return
	}
	h := a.h
	reported := false
	defer func() {
		h.activityFinished(inv, reported)
		ctx.Stop(ctx.Self())
		h.background.Done()
	}()
	start := time.Now()
	actx := workflow.WithActivityInfo(h.activityCtx, workflow.ActivityInfo{
		InstanceID: inv.InstanceID, TaskID: inv.TaskID, Name: inv.Name, Attempt: inv.Attempt,
	})
	if inv.Remote != nil && inv.Remote.TraceParent != "" {
		// The activity's own spans (its context) join the trace it runs in:
		// the attempt's span with tracing on, else the instance's traceparent.
		actx = withTraceParent(actx, inv.Remote.TraceParent, inv.Remote.TraceState)
	}
	out, failure := h.reg.RunActivity(actx, inv.Name, inv.Input)
	h.stats.ActivitiesRun.Add(1)
	outcome := "ok"
	if failure != nil {
		outcome = "failed"
	}
	h.metrics.activities.WithLabelValues(inv.Name, outcome).Inc()
	h.metrics.actLatency.WithLabelValues(inv.Name).Observe(time.Since(start).Seconds())
	if h.activityCtx.Err() != nil {
		return // the node is closing: the workflow re-sends this invocation after the next start
	}
	if h.log.Enabled(h.activityCtx, slog.LevelDebug) { // its arguments cost allocations even when dropped
		h.log.Debug("activity attempt done", "instance", inv.InstanceID, "task", inv.TaskID, "activity", inv.Name,
			"attempt", inv.Attempt, "ok", failure == nil, "took", time.Since(start))
	}
	reported = true
	h.report(ActivityResult{Gen: inv.Gen, TaskID: inv.TaskID, Attempt: inv.Attempt, Output: out, Failure: failure}, inv.InstanceID)
}
