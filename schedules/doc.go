// Package schedules starts workflows on a recurring timetable: a cron
// expression or a fixed interval, with an overlap policy (what a tick does
// while the previous run still runs), a jitter, and a catch-up window for
// ticks that fell due while weft was down.
//
// A schedule is itself a workflow instance (Workflow, named WorkflowName,
// instance id "schedule:" + the schedule's id), as Temporal builds its
// schedules: its state is the instance's input, carried from one generation
// to the next by continue-as-new; its next tick is a durable timer; pause,
// resume and trigger reach it as external events. So a schedule is exactly as
// durable as an instance: it survives restarts, moves with its partition, is
// replicated with it, and fires once per tick in a cluster, because one
// replica leads its partition and each tick's run has an instance id derived
// from the schedule and the tick (RunID), so a start sent twice finds the run
// its first attempt made.
//
// This package holds what a schedule is and how it decides (Spec, State,
// Workflow); starting, inspecting and stopping runs is the StartRunActivity
// that package weft registers, since only the runtime can do it.
package schedules
