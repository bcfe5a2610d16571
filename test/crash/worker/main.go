// Command worker is the process that the crash tests in test/crash start, kill
// with SIGKILL and start again on the same data directory.
//
// It opens weft on -dir, registers the workflows and the activity, and before
// calling Start prints what the store holds for each of the scenario's instances
// (so the test sees the state a kill left behind, as the first reader after the
// crash):
//
//	STATE <id> <status|ABSENT>
//	HIST <id> <JSON array of the instance's history events>
//	COUNT <n> <ms>                 instances in the store (rt.List); ms since main began
//
// Then it starts the runtime, schedules every instance of the scenario under a
// fixed id with ReuseIgnore (a restarted worker neither duplicates nor replaces
// them), waits for each one and prints
//
//	READY <ms>                     ms since main began
//	SCHEDULED <id>                 rt.Schedule returned: the start is durable
//	COMMITTED <id> <n>             with -watch: n activity completions are committed
//	TIMER <id> <fire at>           with -watch: the instance's timer is committed
//	RESULT <id> <status> <output JSON>
//	FINAL <id> <JSON array of history events>
//	CLOSED
//
// and exits 0. Any error is printed as "ERROR ..." and exits 1.
//
// The activity "Work" appends "start <instance> <item> <attempt> <run>" to the
// -log file when it starts and "done <instance> <item> <run>" when it finishes,
// each line written with O_APPEND and fsync'd, so the test can tell exactly what
// ran before a kill.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/test/crash/scenario"
	"github.com/weftrt/weft/workflow"
)

// execLog is the append-only execution log shared by every run of a test.
type execLog struct {
	mu  sync.Mutex
	f   *os.File
	run int
}

func (l *execLog) line(format string, args ...any) {
	s := fmt.Sprintf(format, args...) + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.WriteString(s); err != nil {
		fail("write log: %v", err)
	}
	if err := l.f.Sync(); err != nil {
		fail("sync log: %v", err)
	}
}

var stdoutMu sync.Mutex

func say(format string, args ...any) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func fail(format string, args ...any) {
	say("ERROR "+format, args...)
	os.Exit(1)
}

func main() {
	began := time.Now()
	dir := flag.String("dir", "", "data directory")
	scen := flag.String("scenario", "", "fanout, chain, timer or mixed")
	logPath := flag.String("log", "", "append-only execution log")
	run := flag.Int("run", 0, "run number, written into the execution log")
	minSleep := flag.Duration("min-sleep", 5*time.Millisecond, "shortest activity")
	maxSleep := flag.Duration("max-sleep", 20*time.Millisecond, "longest activity")
	concurrency := flag.Int("concurrency", 8, "weft.Options.ActivityConcurrency")
	timer := flag.Duration("timer", 3*time.Second, "the timer scenario's timer")
	rounds := flag.Int("rounds", 1, "rounds of the mixed scenario")
	watch := flag.Bool("watch", false, "print COMMITTED and TIMER progress lines")
	flag.Parse()
	if *dir == "" || *logPath == "" {
		fail("-dir and -log are required")
	}
	instances, err := scenario.Get(*scen, *timer, *rounds)
	if err != nil {
		fail("%v", err)
	}
	f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fail("open log: %v", err)
	}
	xlog := &execLog{f: f, run: *run}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, err := weft.Open(weft.Options{Dir: *dir, Logger: logger, ActivityConcurrency: *concurrency})
	if err != nil {
		fail("open: %v", err)
	}
	work := func(ctx context.Context, in scenario.Item) (int, error) {
		info, ok := workflow.ActivityInfoFrom(ctx)
		if !ok {
			return 0, workflow.NonRetriable(fmt.Errorf("no activity info"))
		}
		xlog.line("start %s %d %d %d", info.InstanceID, in.Item, info.Attempt, xlog.run)
		d := *minSleep
		if *maxSleep > *minSleep {
			d += rand.N(*maxSleep - *minSleep)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		xlog.line("done %s %d %d", info.InstanceID, in.Item, xlog.run)
		return in.Value + 1, nil
	}
	must(weft.RegisterActivity(rt, work, workflow.WithName("Work")))
	must(weft.RegisterWorkflow(rt, scenario.Chain, workflow.WithName("Chain")))
	must(weft.RegisterWorkflow(rt, scenario.FanOut, workflow.WithName("FanOut")))
	must(weft.RegisterWorkflow(rt, scenario.TimerFlow, workflow.WithName("TimerFlow")))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// What the last run (or the kill) left behind, read before anything resumes.
	for _, in := range instances {
		st, err := rt.Status(ctx, in.ID)
		if err != nil {
			if errors.Is(err, weft.ErrInstanceNotFound) {
				say("STATE %s ABSENT", in.ID)
				continue
			}
			fail("status of %s: %v", in.ID, err)
		}
		say("STATE %s %s", in.ID, st.Status)
		printHistory(ctx, rt, "HIST", in.ID)
	}
	page, err := rt.List(ctx, weft.ListQuery{PageSize: 1000})
	if err != nil {
		fail("list: %v", err)
	}
	say("COUNT %d %d", len(page.Instances), time.Since(began).Milliseconds())

	if err := rt.Start(ctx); err != nil {
		fail("start: %v", err)
	}
	say("READY %d", time.Since(began).Milliseconds())
	// The watchers read the store; they stop before rt.Close so their last reads
	// are not cut short (a read racing Close gets ErrClosed).
	watchCtx, stopWatchers := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	for _, in := range instances {
		if _, err := rt.Schedule(ctx, in.Workflow, in.Job, weft.WithInstanceID(in.ID), weft.WithReusePolicy(weft.ReuseIgnore)); err != nil {
			fail("schedule %s: %v", in.ID, err)
		}
		say("SCHEDULED %s", in.ID)
		if *watch {
			watchers.Add(1)
			go func() {
				defer watchers.Done()
				watchProgress(watchCtx, rt, in.ID)
			}()
		}
	}
	for _, in := range instances {
		st, err := rt.WaitForCompletion(ctx, in.ID)
		if err != nil {
			fail("wait for %s: %v", in.ID, err)
		}
		out := string(st.Output)
		if out == "" {
			out = "null"
		}
		say("RESULT %s %s %s", in.ID, st.Status, out)
		printHistory(ctx, rt, "FINAL", in.ID)
	}
	stopWatchers()
	watchers.Wait()
	if err := rt.Close(); err != nil {
		fail("close: %v", err)
	}
	say("CLOSED")
}

// watchProgress polls the instance's committed history and prints
// "COMMITTED <id> <n>" whenever the number of committed activity completions
// changes, and "TIMER <id> <fire at>" once its timer is committed, so a test can
// kill the process right after a given commit.
func watchProgress(ctx context.Context, rt *weft.Runtime, id string) {
	last, timer := -1, false
	for ctx.Err() == nil {
		evs, err := rt.History(ctx, id)
		if err == nil {
			n := 0
			for _, ev := range evs {
				switch ev.Kind {
				case workflow.ActivityCompleted:
					n++
				case workflow.TimerCreated:
					if !timer {
						say("TIMER %s %s", id, ev.FireAt.Format(time.RFC3339Nano))
						timer = true
					}
				case workflow.WorkflowCompleted, workflow.WorkflowFailed:
					return
				}
			}
			if n != last {
				say("COMMITTED %s %d", id, n)
				last = n
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func printHistory(ctx context.Context, rt *weft.Runtime, tag, id string) {
	evs, err := rt.History(ctx, id)
	if err != nil {
		fail("history of %s: %v", id, err)
	}
	b, err := json.Marshal(scenario.Compact(evs))
	if err != nil {
		fail("encode history of %s: %v", id, err)
	}
	say("%s %s %s", tag, id, b)
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}
