// Command monitor runs the monitor pattern as sharded actors: one eternal
// workflow per host, each checking its host's status, alerting once when the
// host goes from healthy to unhealthy, sleeping longer while it is healthy, and
// continuing as new after every check so that its history never grows.
//
//	go run ./examples/monitor                        # 5 hosts, 6 cycles each
//	go run ./examples/monitor -n 10000 -cycles 20    # 10,000 monitors; memory stays flat
//	go run ./examples/monitor -cycles 0              # run forever; Ctrl-C prints the summary
//
// The status source is simulated: a pure function of host and cycle, about 30%
// unhealthy, so every run sees the same statuses. With -n 100 or fewer the
// program prints every alert and one line per host.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

// MonitorState is the monitor's input. ContinueAsNew hands it, updated, to the
// next cycle: it is the only thing one cycle passes to the next.
type MonitorState struct {
	Host           string
	Cycle          int // cycles done
	Cycles         int // stop after this many; 0: never
	Healthy        bool
	Alerts         int
	HealthySleep   time.Duration
	UnhealthySleep time.Duration
}

// Check names one status check.
type Check struct {
	Host  string
	Cycle int
}

// Monitor is the workflow: one cycle per generation.
func Monitor(ctx *workflow.Context, st MonitorState) (MonitorState, error) {
	var status string
	if err := ctx.CallActivity("GetStatus", Check{st.Host, st.Cycle}).Await(&status); err != nil {
		return st, err
	}
	sleep := st.HealthySleep // check less often while healthy
	if status == "healthy" {
		st.Healthy = true
	} else {
		if st.Healthy { // healthy → unhealthy: alert once, not on every unhealthy check
			st.Healthy = false
			st.Alerts++
			if err := ctx.CallActivity("SendAlert", Check{st.Host, st.Cycle}).Await(nil); err != nil {
				return st, err
			}
		}
		sleep = st.UnhealthySleep
	}
	if err := ctx.CreateTimer(sleep).Await(nil); err != nil { // a durable timer
		return st, err
	}
	st.Cycle++
	if st.Cycles > 0 && st.Cycle >= st.Cycles {
		return st, nil // finish instead of continuing
	}
	ctx.ContinueAsNew(st, false) // start over with the new state and an empty history
	return st, nil
}

// simulatedStatus is the status source: the same answer for the same host and
// cycle on every run, unhealthy about 30% of the time.
func simulatedStatus(host string, cycle int) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", host, cycle)
	if h.Sum32()%10 < 3 {
		return "unhealthy"
	}
	return "healthy"
}

func main() {
	n := flag.Int("n", 5, "hosts to monitor, one workflow each")
	cycles := flag.Int("cycles", 6, "checks per host before its monitor finishes; 0: run until interrupted")
	healthySleep := flag.Duration("healthy-sleep", 200*time.Millisecond, "wait between checks while healthy")
	unhealthySleep := flag.Duration("unhealthy-sleep", 50*time.Millisecond, "wait between checks while unhealthy")
	dir := flag.String("dir", "", "data directory; run again on the same one to resume (default: a fresh temporary directory)")
	flag.Parse()
	if *n < 1 {
		exit(fmt.Errorf("-n must be at least 1"))
	}
	verbose := *n <= 100

	if *dir == "" {
		d, err := os.MkdirTemp("", "weft-monitor-")
		if err != nil {
			exit(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	rt, err := weft.Open(weft.Options{
		Dir:    *dir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		exit(err)
	}
	defer rt.Close()

	var checks, alerts atomic.Int64
	must(weft.RegisterWorkflow(rt, Monitor))
	must(weft.RegisterActivity(rt, func(ctx context.Context, c Check) (string, error) {
		checks.Add(1)
		return simulatedStatus(c.Host, c.Cycle), nil
	}, workflow.WithName("GetStatus")))
	must(weft.RegisterActivity(rt, func(ctx context.Context, c Check) (any, error) {
		alerts.Add(1)
		if verbose {
			fmt.Printf("ALERT %s: healthy → unhealthy at cycle %d\n", c.Host, c.Cycle)
		}
		return nil, nil
	}, workflow.WithName("SendAlert")))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := rt.Start(ctx); err != nil {
		exit(err)
	}
	start := time.Now()
	hosts := make([]string, *n)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%05d", i+1)
	}
	go func() { // progress, once a second
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Printf("[%4.0fs] %d checks, %d alerts, %s\n", time.Since(start).Seconds(), checks.Load(), alerts.Load(), memory())
			}
		}
	}()
	fmt.Printf("monitoring %d hosts, %s cycles each\n", *n, cyclesText(*cycles))
	scheduleAll(ctx, rt, hosts, MonitorState{Cycles: *cycles, HealthySleep: *healthySleep, UnhealthySleep: *unhealthySleep})

	// Wait for every monitor to finish (or for Ctrl-C), then read each one's state.
	var totalCycles, totalAlerts, wantAlerts, maxCycles int
	minCycles := math.MaxInt
	for _, h := range hosts {
		st, err := rt.WaitForCompletion(ctx, "monitor-"+h)
		if ctx.Err() != nil {
			st, err = rt.Status(context.Background(), "monitor-"+h)
		}
		if err != nil {
			exit(err)
		}
		state := st.Input // the current cycle's state, while the monitor runs
		if st.Status == weft.StatusCompleted {
			state = st.Output
		} else if st.Status != weft.StatusRunning {
			exit(fmt.Errorf("monitor of %s: %s %v", h, st.Status, st.Failure))
		}
		var ms MonitorState
		must(json.Unmarshal(state, &ms))
		seen, transitions := statuses(h, ms.Cycle)
		totalCycles += ms.Cycle
		totalAlerts += ms.Alerts
		wantAlerts += transitions
		minCycles, maxCycles = min(minCycles, ms.Cycle), max(maxCycles, ms.Cycle)
		if verbose {
			fmt.Printf("%s: %d cycles, %d alerts, statuses %s, generation %d\n", h, ms.Cycle, ms.Alerts, seen, st.Generation)
		}
	}
	evs, err := rt.History(context.Background(), "monitor-"+hosts[0])
	if err != nil {
		exit(err)
	}
	fmt.Printf("cycles per host: min %d, max %d (%d in all, in %.1fs)\n", minCycles, maxCycles, totalCycles, time.Since(start).Seconds())
	fmt.Printf("alerts: %d sent, %d healthy→unhealthy transitions\n", totalAlerts, wantAlerts)
	fmt.Printf("history of monitor-%s: %d events (only its last cycle)\n", hosts[0], len(evs))
	fmt.Printf("memory: %s\n", memory())
}

// scheduleAll starts one monitor per host, 64 at a time. A fixed instance id per
// host and ReuseIgnore make a second run on the same directory resume the
// monitors instead of starting duplicates.
func scheduleAll(ctx context.Context, rt *weft.Runtime, hosts []string, st MonitorState) {
	var wg sync.WaitGroup
	next := make(chan string)
	for range 64 {
		wg.Go(func() {
			for h := range next {
				st := st
				st.Host = h
				if _, err := rt.Schedule(ctx, "Monitor", st, weft.WithInstanceID("monitor-"+h), weft.WithReusePolicy(weft.ReuseIgnore)); err != nil {
					exit(err)
				}
			}
		})
	}
	for _, h := range hosts {
		next <- h
	}
	close(next)
	wg.Wait()
}

// statuses returns the host's first n statuses (H or U) and how many of them
// are a healthy → unhealthy transition (the monitor starts as not healthy).
func statuses(host string, n int) (string, int) {
	var b strings.Builder
	healthy, transitions := false, 0
	for c := range n {
		if simulatedStatus(host, c) == "healthy" {
			b.WriteByte('H')
			healthy = true
			continue
		}
		b.WriteByte('U')
		if healthy {
			transitions++
		}
		healthy = false
	}
	return b.String(), transitions
}

// memory reports the Go heap in use and the process's resident set.
func memory() string {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return fmt.Sprintf("heap in use %.1f MiB, RSS %s, goroutines %d", float64(m.HeapInuse)/(1<<20), rss(), runtime.NumGoroutine())
}

// rss reads VmRSS from /proc/self/status (Linux).
func rss() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return fmt.Sprintf("%.1f MiB", kb/1024)
		}
	}
	return "n/a"
}

func cyclesText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func must(err error) {
	if err != nil {
		exit(err)
	}
}

func exit(err error) {
	fmt.Fprintln(os.Stderr, "monitor:", err)
	os.Exit(1)
}
