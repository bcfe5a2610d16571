// Package weft is a durable workflow runtime for Go, built on virtual actors.
//
// Open a runtime on a directory, register workflows and activities, start it, and
// schedule workflows through its client methods:
//
//	rt, err := weft.Open(weft.Options{Dir: "./weft-data"})
//	weft.RegisterWorkflow(rt, OrderProcessing)
//	weft.RegisterActivity(rt, ReserveInventory)
//	rt.Start(ctx)
//	defer rt.Close()
//	id, err := rt.Schedule(ctx, "OrderProcessing", order)
//	st, err := rt.WaitForCompletion(ctx, id)
//
// Every workflow instance is a virtual actor whose state is an append-only history
// in pebble; every step commits one synced batch before anything it decided is
// sent, so a crash at any point resumes from the last completed step. See the
// workflow package for how workflows are written.
package weft
