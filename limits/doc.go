// Package limits caps how many attempts of one activity run at once across
// a whole cluster (`weft serve --activity-limit ProcessWorkItem=20`), and
// how many instances of one workflow (`--workflow-limit Report=2`: one
// beyond the limit stays PENDING until a permit starts it; the permit goes
// back when it finishes). What follows tells the activity's case.
//
// Each limited name has a limiter: a workflow instance of weft's own
// (Workflow, instance id InstanceID(name)) that holds the permits. An
// instance that is to run an attempt of a limited activity asks the limiter
// for a permit (an event sent through its outbox, so the request is as
// durable as the step that schedules the attempt) and runs it when the
// permit arrives (an event back, equally durable); it gives the permit back
// with the attempt's outcome, or when the call is dropped (the instance
// finished, continued as new, was terminated). Requests beyond the limit
// wait in the limiter's queue, first come first served, durably: nothing is
// dropped, and since the permit is recorded with the attempt, an attempt is
// never started twice for one permit. A node that dies with attempts running
// keeps their permits held by their instances, which run them again
// elsewhere under the same permits: the limit holds.
//
// Being an instance, a limiter is replicated and fails over with its
// partition like any other. It checks, while requests wait, that the
// holders of its permits still exist and run (a holder purged by force
// gives nothing back), so a permit is never lost for good.
package limits
