package replication

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// gatedLog is a MemLog whose saves wait while the gate is closed: a disk
// that stopped answering.
type gatedLog struct {
	*MemLog
	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func (l *gatedLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = make(chan struct{})
}

func (l *gatedLog) open() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.gate)
	l.gate = nil
}

func (l *gatedLog) Save(saves []Save, sync bool) error {
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return l.MemLog.Save(saves, sync)
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A driver whose pass waits on its log for StuckAfter says so, once, with
// every goroutine's stack (where it waits among them), and counts it; once
// the log answers it goes on, and a later stall is reported again. Its lock
// held for StuckAfter while no pass runs is reported too.
func TestWatchdogReportsAStuckDriver(t *testing.T) {
	var out syncBuffer
	log := &gatedLog{MemLog: NewMemLog()}
	net := NewMemNetwork()
	d, err := NewDriver(DriverConfig{Groups: Config{NodeID: 1}, Tick: 5 * time.Millisecond, Log: log,
		Transport: net.Transport(1), StateMachine: newTestSM(), StuckAfter: 150 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(0, []NodeID{1}, 0); err != nil {
		t.Fatal(err)
	}
	net.Attach(1, d)
	d.Start()
	defer d.Stop()
	if err := d.Campaign(0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	propose := func() error {
		for {
			_, err := d.Propose(ctx, 0, []byte("x"))
			if err == nil || ctx.Err() != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond) // not leader yet
		}
	}
	if err := propose(); err != nil {
		t.Fatal(err)
	}
	reports := func() int { return strings.Count(out.String(), "the driver is stuck") }
	await := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not within the test's time; log:\n%s", what, out.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if reports() != 0 {
		t.Fatalf("a driver that made progress reported stuck:\n%s", out.String())
	}

	for round := 1; round <= 2; round++ {
		log.close()
		done := make(chan error, 1)
		go func() { done <- propose() }()
		await("the stall reported", func() bool { return reports() == round })
		time.Sleep(300 * time.Millisecond) // two more windows: still one report
		if n := reports(); n != round {
			t.Fatalf("round %d: %d reports, want %d (one per stall)", round, n, round)
		}
		var m dto.Metric
		if err := d.metrics.stalls.Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != float64(round) {
			t.Fatalf("weft_raft_driver_stalls_total = %v, want %d", got, round)
		}
		log.open()
		if err := <-done; err != nil {
			t.Fatalf("round %d: the proposal after the stall: %v", round, err)
		}
	}
	// The lock held while no pass runs (the group quiet, nothing to do): a
	// message being stepped that waits on something.
	await("the group quiesced", func() bool { return d.Quiesced() == 1 })
	d.mu.Lock()
	await("the held lock reported", func() bool { return reports() == 3 })
	d.mu.Unlock()
	text := out.String()
	for _, want := range []string{"level=ERROR", "a Ready pass", "replication.(*gatedLog).Save", "replication.(*Driver).pass", "its lock has been held"} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q:\n%.3000s", want, text)
		}
	}
}
