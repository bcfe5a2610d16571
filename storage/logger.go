package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleLogger routes pebble's printf-style logging to slog. pebble v2 logs WAL
// replay and background events to stderr by default, which is noise in a library,
// so informational lines go to debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf must not return: pebble calls it on invariant violations (a corrupt
// manifest, a failed WAL write) after which continuing could lose committed
// data. pebble's own default exits the process; a panic at least lets the
// embedding program's handler see it.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}

// stallListener makes pebble's write stalls visible: while one lasts, every
// step of the node waits (its commits are writes), so an operator who sees a
// node stop should find why in its log.
func stallListener(l *slog.Logger) *pebble.EventListener {
	var mu sync.Mutex
	var began time.Time
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			mu.Lock()
			began = time.Now()
			mu.Unlock()
			l.Warn("storage: writes stalled until pebble's compactions or flushes catch up", "component", "pebble", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			mu.Lock()
			d := time.Since(began)
			mu.Unlock()
			l.Warn("storage: writes resumed", "component", "pebble", "stalled", d.Round(time.Millisecond))
		},
	}
}
