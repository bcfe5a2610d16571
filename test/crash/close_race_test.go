package crashtest

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/weftrt/weft"
)

// TestCloseWaitsForReadsInProgress: reads through the client API (Status,
// History, List) running while Runtime.Close closes the store return ErrClosed or
// their answer; they never crash the process. storage.DB counts the calls in
// progress and Close waits for them before it closes pebble (pebble panics when
// used after Close, and its Close panics while an iterator is open). Found by the
// crash worker, whose progress watcher polled rt.History while main called
// rt.Close; `weft serve` could hit it when Shutdown timed out with a long
// WaitForCompletion still running.
//
// The reproduction runs in a child process (this test binary again), because a
// panic there can happen on a goroutine no recover can reach.
func TestCloseWaitsForReadsInProgress(t *testing.T) {
	if os.Getenv(closeRaceChild) == "1" {
		closeDuringReads(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCloseWaitsForReadsInProgress$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), closeRaceChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("reads racing Runtime.Close crashed the process (%v):\n%s", err, abbreviate(string(out)))
	}
}

// closeRaceChild is set in the environment of the reproduction's child process.
const closeRaceChild = "WEFT_CLOSE_RACE_CHILD"

// closeDuringReads opens a store, has goroutines read it through the client API
// without pause, and closes the runtime under them; again and again.
func closeDuringReads(t *testing.T) {
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		rt, err := weft.Open(weft.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if g%2 == 0 {
						_, _ = rt.Status(ctx, "some-instance")
					} else {
						_, _ = rt.List(ctx, weft.ListQuery{})
					}
				}
			}()
		}
		time.Sleep(2 * time.Millisecond)
		err = rt.Close()
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("iteration %d: close: %v", i, err)
		}
	}
}
