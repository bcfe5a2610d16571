package actors

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"
)

// A worker waiting at its bound is woken by an answer of its own, and only
// then: answers of a worker below its bound wake no one, since it took every
// item it could.
func TestWorkerAtItsBoundWokenByItsAnswer(t *testing.T) {
	const bound = 4
	p := newRemoteWorkers(&Host{log: slog.New(slog.NewTextHandler(io.Discard, nil))}, bound)
	w := p.Connect("w1")
	other := p.Connect("w2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	episode := func(i int) *OrchestrationWork { return &OrchestrationWork{InstanceID: "i" + strconv.Itoa(i)} }
	for i := range bound + 1 {
		p.submitEpisode(episode(i))
	}
	for range bound {
		if _, err := w.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	changed := func() chan struct{} {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.changed
	}
	waiting := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.waiting
	}

	// other takes the last item and answers it: w, below nothing, is not woken.
	it, err := other.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.submitEpisode(episode(bound + 1)) // queued: w is at its bound
	took := make(chan *WorkItem, 1)
	go func() {
		it, err := w.Next(ctx)
		if err != nil {
			t.Error(err)
		}
		took <- it
	}()
	for waiting() != 1 { // until w's Next waits: nothing else signals it
		if ctx.Err() != nil {
			t.Fatal("w's Next never waited")
		}
		time.Sleep(time.Millisecond)
	}
	before := changed()
	if _, err := p.take("w2", it.key); err != nil {
		t.Fatal(err)
	}
	if changed() != before {
		t.Error("an answer of a worker below its bound woke the waiting ones")
	}

	// One of w's own answers makes room: w takes the queued item.
	if _, err := p.take("w1", workKey{"i0", orchestrationTask}); err != nil {
		t.Fatal(err)
	}
	if got := <-took; got == nil || got.Orchestration.InstanceID != "i"+strconv.Itoa(bound+1) {
		t.Fatalf("w took %+v after answering at its bound", got)
	}
}
