// Command idle measures what idle workflow instances cost: it schedules -n
// instances that each wait on a one-hour durable timer, lets them passivate, then
// reports RSS, Go heap and the CPU used over an idle period.
//
//	cd bench && go run ./idle -n 100000   (bench/ is a module of its own)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftrt/weft"
	"github.com/weftrt/weft/workflow"
)

func sleeper(ctx *workflow.Context, _ int) (int, error) {
	if err := ctx.CreateTimer(time.Hour).Await(nil); err != nil {
		return 0, err
	}
	return 1, nil
}

func main() {
	n := flag.Int("n", 100_000, "instances to schedule")
	dir := flag.String("dir", "", "data directory (default: a new temporary directory, removed at exit)")
	conc := flag.Int("c", 64, "goroutines scheduling concurrently")
	idle := flag.Duration("idle", 10*time.Second, "idle period over which CPU is measured")
	maxActive := flag.Int("max-active", 1000, "weft.Options.MaxActiveInstances")
	idleTimeout := flag.Duration("idle-timeout", time.Second, "weft.Options.IdleTimeout")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the idle period to this file")
	flag.Parse()

	if *dir == "" {
		d, err := os.MkdirTemp("", "weft-idle-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	report("before open")
	rt, err := weft.Open(weft.Options{
		Dir:                *dir,
		IdleTimeout:        *idleTimeout,
		MaxActiveInstances: *maxActive,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := weft.RegisterWorkflow(rt, sleeper, workflow.WithName("Sleeper")); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		log.Fatal(err)
	}

	// Schedule.
	start := time.Now()
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				fmt.Printf("  ... %d scheduled in %s (active %d, rss %s)\n", done.Load(), time.Since(start).Round(time.Second), rt.Host().Active(), mib(rssKB()*1024))
			}
		}
	}()
	for range *conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				id := fmt.Sprintf("idle-%d", i)
				if _, err := rt.Schedule(ctx, "Sleeper", i, weft.WithInstanceID(id)); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("schedule %s: %w", id, err))
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(stopProgress)
	if e := firstErr.Load(); e != nil {
		log.Fatal(e)
	}
	sched := time.Since(start)
	fmt.Printf("scheduled %d instances in %s (%.0f/s) with %d goroutines\n", *n, sched.Round(time.Millisecond), float64(*n)/sched.Seconds(), *conc)

	// Every Schedule returned after the start was committed; check that all of
	// them are really started (RUNNING, not PENDING), from the committed rows.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	for i := range *n {
		st, err := rt.WaitForStart(wctx, fmt.Sprintf("idle-%d", i))
		if err != nil {
			log.Fatalf("wait for start of idle-%d: %v", i, err)
		}
		if st.Status != weft.StatusRunning {
			log.Fatalf("idle-%d: status %s", i, st.Status)
		}
	}
	cancel()
	fmt.Printf("all %d started (checked in %s)\n", *n, time.Since(start.Add(sched)).Round(time.Millisecond))
	report("after scheduling")

	// Passivation: wait until the active count stops falling (IdleTimeout).
	pstart := time.Now()
	for rt.Host().Active() > 0 && time.Since(pstart) < 2*time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("active instances %d after %s (activations %d, passivations %d), reminders in memory %d\n",
		rt.Host().Active(), time.Since(pstart).Round(time.Millisecond),
		rt.Host().Stats().Activations.Load(), rt.Host().Stats().Passivations.Load(), rt.Host().Reminders().Pending())

	runtime.GC()
	debug.FreeOSMemory()
	report("idle, after GC + FreeOSMemory")

	// CPU over an idle period.
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
	}
	u0, s0 := cpu()
	w0 := time.Now()
	time.Sleep(*idle)
	u1, s1 := cpu()
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	wall := time.Since(w0)
	fmt.Printf("idle %s: CPU user %s sys %s total %s (%.2f%% of one core)\n", wall.Round(time.Millisecond),
		(u1 - u0).Round(time.Millisecond), (s1 - s0).Round(time.Millisecond), (u1 - u0 + s1 - s0).Round(time.Millisecond),
		100*float64(u1-u0+s1-s0)/float64(wall))
	report("after idle period")

	cstart := time.Now()
	if err := rt.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("closed in %s\n", time.Since(cstart).Round(time.Millisecond))
}

func report(when string) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Printf("[%s] VmRSS %s  VmHWM %s  HeapAlloc %s  HeapInuse %s  HeapSys %s  HeapReleased %s  Sys %s  objects %d  goroutines %d  GCs %d\n",
		when, mib(rssKB()*1024), mib(statusKB("VmHWM")*1024), mib(m.HeapAlloc), mib(m.HeapInuse), mib(m.HeapSys), mib(m.HeapReleased), mib(m.Sys),
		m.HeapObjects, runtime.NumGoroutine(), m.NumGC)
}

func rssKB() uint64 { return statusKB("VmRSS") }

// statusKB reads a "kB" field of /proc/self/status.
func statusKB(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb uint64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb
		}
	}
	return 0
}

func cpu() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func mib[T uint64 | int](b T) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
