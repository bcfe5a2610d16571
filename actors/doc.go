// Package actors runs workflow instances and activity invocations as virtual
// actors on protoactor-go.
//
// A workflow actor owns one instance: it is activated on its first message (loading
// the instance row and replaying its history into a live workflow.Executor), handles
// each message by appending events, advancing the executor, committing one pebble
// batch, and only then sending what the batch decided (activity invocations, child
// starts, replies). An activity actor runs one attempt of one invocation and reports
// the outcome until the workflow acknowledges it; it holds no durable state.
//
// The Host is the per-node registry of active actors: it activates on demand,
// passivates idle ones and caps how many are active, bounds how many activities run
// at once (the rest queue), and routes every request to the one live activation of
// its instance.
package actors
