// Package workflow is weft's authoring API and its deterministic executor.
//
// Workflows are plain Go functions, func(*Context, In) (Out, error); activities are
// func(context.Context, In) (Out, error). A workflow calls activities, child workflows,
// timers and external events through its Context and blocks on the returned Task
// with Await, exactly as ordinary code would. weft saves the outcome of every step
// in the instance's history, so a workflow resumes after a crash from its last
// completed step.
//
// The Executor turns history into actions: history events in, new history events
// (activities to schedule, timers to create, the completion, ...) out. It does no
// I/O; the runtime that owns an Executor commits the actions, then carries them
// out (the shape of etcd-raft's Ready loop). The workflow function runs on its own
// goroutine and the executor hands control back and forth with it, one running at a
// time, so between batches of events the function stays blocked where it was: a
// chain of N steps costs O(N), not the O(N²) of re-running from the top every step.
//
// # Determinism
//
// A fresh Executor replays the recorded history from the start; IsReplaying reports
// true until the code reaches new ground. Workflow code must therefore make the same
// calls in the same order every time it runs with the same history:
//
//   - use ctx.Now, ctx.NewUUID and ctx.CreateTimer instead of time.Now, random ids and
//     time.Sleep;
//   - do I/O (HTTP, databases, files) in activities, never in workflow code;
//   - do not block on channels, mutexes or sleeps: the executor reports a workflow that
//     does not hand control back within DeadlockTimeout as deadlocked;
//   - do not start goroutines that call the Context.
//
// A replayed call that does not match its history (another activity name, another
// kind of call, a removed step) fails the instance with a *NonDeterminismError
// naming the step, the recorded call and the new one.
package workflow
