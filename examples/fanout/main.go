// Command fanout runs the fan-out/fan-in pattern: an activity returns a batch of
// N work items, each item is processed by its own activity with at most K in
// flight, and a final activity posts the sum of the results.
//
// It can also show what happens when the process dies halfway:
//
//	go run ./examples/fanout -dir /tmp/fan -n 100 -k 8 -crash-after 40   # exits after 40 items
//	go run ./examples/fanout -dir /tmp/fan                                # finishes the rest
//
// Every item processed is appended to <dir>/executions.log with the number of the
// run that processed it, so the second run can report how many items each run
// processed: only the items whose results were not yet saved run again. The
// run that crashes exits with status 3.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

// Batch is the workflow's input.
type Batch struct {
	Size        int // how many items GetWorkBatch returns
	MaxInFlight int // at most this many ProcessItem activities at once
}

// FanOut is the workflow. Every ProcessItem result is saved in the instance's
// history as it arrives; after a crash the instance is resumed, the items whose
// results are saved are not run again, and the rest are.
func FanOut(ctx *workflow.Context, b Batch) (int, error) {
	var items []int
	if err := ctx.CallActivity("GetWorkBatch", b.Size).Await(&items); err != nil {
		return 0, err
	}
	// Fan out: one activity per item, at most MaxInFlight outstanding.
	tasks, err := workflow.Parallel(ctx, len(items), b.MaxInFlight, func(i int) *workflow.Task {
		return ctx.CallActivity("ProcessItem", items[i])
	})
	if err != nil {
		return 0, err
	}
	// Fan in: aggregate and publish.
	sum := 0
	for _, t := range tasks {
		var v int
		if err := t.Await(&v); err != nil {
			return 0, err
		}
		sum += v
	}
	if err := ctx.CallActivity("PostResults", sum).Await(nil); err != nil {
		return 0, err
	}
	return sum, nil
}

const instanceID = "fanout-batch"

func main() {
	n := flag.Int("n", 100, "work items in the batch")
	k := flag.Int("k", 8, "at most this many items in flight")
	crashAfter := flag.Int("crash-after", 0, "exit the process (os.Exit, inside an activity) once this many items were processed in this run; 0: never")
	dir := flag.String("dir", "", "data directory; run again on the same one to resume (default: a fresh temporary directory)")
	flag.Parse()

	if *dir == "" {
		d, err := os.MkdirTemp("", "weft-fanout-")
		if err != nil {
			exit(err)
		}
		*dir = d
		if *crashAfter == 0 {
			defer os.RemoveAll(d)
		}
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		exit(err)
	}
	execs, err := openExecLog(filepath.Join(*dir, "executions.log"))
	if err != nil {
		exit(err)
	}
	fmt.Printf("run %d on %s\n", execs.run, *dir)

	rt, err := weft.Open(weft.Options{
		Dir:    filepath.Join(*dir, "weft"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		exit(err)
	}
	defer rt.Close()

	must(weft.RegisterWorkflow(rt, FanOut))
	must(weft.RegisterActivity(rt, func(ctx context.Context, n int) ([]int, error) {
		items := make([]int, n)
		for i := range items {
			items[i] = i + 1
		}
		return items, nil
	}, workflow.WithName("GetWorkBatch")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, item int) (int, error) {
		if done := execs.processed(); *crashAfter > 0 && done >= *crashAfter {
			fmt.Printf("crash: %d items processed in this run; exiting without warning (run again with -dir %s to finish)\n", done, *dir)
			os.Exit(3)
		}
		select { // the "work"
		case <-time.After(time.Duration(1+item%5) * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if err := execs.record(item); err != nil {
			return 0, err
		}
		return item * item, nil
	}, workflow.WithName("ProcessItem")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, sum int) (any, error) {
		fmt.Printf("posted: sum of the squares = %d\n", sum)
		return nil, nil
	}, workflow.WithName("PostResults")))

	// What the last run left in the store, read before anything resumes.
	if saved, total, ok := savedItems(rt); ok {
		fmt.Printf("resuming: %d of %d item results were saved before this run; %d remain\n", saved, total, total-saved)
	}

	ctx := context.Background()
	if err := rt.Start(ctx); err != nil { // resumes an interrupted instance
		exit(err)
	}
	// A fixed id with ReuseIgnore: the first run starts the instance, later runs
	// find it (running or finished) and just wait for it.
	_, err = rt.Schedule(ctx, "FanOut", Batch{Size: *n, MaxInFlight: *k},
		weft.WithInstanceID(instanceID), weft.WithReusePolicy(weft.ReuseIgnore))
	if err != nil {
		exit(err)
	}
	st, err := rt.WaitForCompletion(ctx, instanceID)
	if err != nil {
		exit(err)
	}
	var b Batch
	_ = json.Unmarshal(st.Input, &b)
	want := b.Size * (b.Size + 1) * (2*b.Size + 1) / 6
	fmt.Printf("result: %s sum=%s expected=%d\n", st.Status, st.Output, want)

	perRun, items, err := execs.summary()
	if err != nil {
		exit(err)
	}
	for run, count := range perRun {
		fmt.Printf("run %d processed %d items\n", run+1, count)
	}
	twice := 0
	for _, runs := range items {
		if runs > 1 {
			twice += runs - 1
		}
	}
	fmt.Printf("items processed: %d distinct, %d more than once (an item runs again when the process dies before its result is saved)\n", len(items), twice)
}

// savedItems counts the ProcessItem results in the instance's history.
func savedItems(rt *weft.Runtime) (saved, total int, ok bool) {
	st, err := rt.Status(context.Background(), instanceID)
	if errors.Is(err, weft.ErrInstanceNotFound) {
		return 0, 0, false
	}
	if err != nil {
		exit(err)
	}
	evs, err := rt.History(context.Background(), instanceID)
	if err != nil {
		exit(err)
	}
	var b Batch
	_ = json.Unmarshal(st.Input, &b)
	names := map[int64]string{}
	for _, ev := range evs {
		switch ev.Kind {
		case workflow.ActivityScheduled:
			names[ev.TaskID] = ev.Name
		case workflow.ActivityCompleted:
			if names[ev.TaskID] == "ProcessItem" {
				saved++
			}
		}
	}
	return saved, b.Size, true
}

// execLog appends "<run> <item>" for every item processed, so that each run can
// be told apart from the others.
type execLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	run  int
	done int // items processed in this run
}

func openExecLog(path string) (*execLog, error) {
	runs := 0
	if b, err := os.ReadFile(path); err == nil {
		runs = strings.Count(string(b), "run ")
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l := &execLog{path: path, f: f, run: runs + 1}
	_, err = fmt.Fprintf(f, "run %d\n", l.run)
	return l, err
}

func (l *execLog) record(item int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done++
	_, err := fmt.Fprintf(l.f, "%d %d\n", l.run, item)
	return err
}

func (l *execLog) processed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done
}

// summary returns how many items each run processed and how many times each
// item was processed.
func (l *execLog) summary() (perRun []int, items map[int]int, err error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	items = map[int]int{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		var run, item int
		if _, err := fmt.Sscanf(s.Text(), "run %d", &run); err == nil {
			perRun = append(perRun, 0)
			continue
		}
		if _, err := fmt.Sscanf(s.Text(), "%d %d", &run, &item); err != nil {
			return nil, nil, fmt.Errorf("%s: bad line %q", l.path, s.Text())
		}
		perRun[run-1]++
		items[item]++
	}
	return perRun, items, s.Err()
}

func must(err error) {
	if err != nil {
		exit(err)
	}
}

func exit(err error) {
	fmt.Fprintln(os.Stderr, "fanout:", err)
	os.Exit(1)
}
