package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// protoactor's dead-letter throttle: started by a message to a node that
		// is gone (TestClusterRaftOverTheActorTransport stops one with raft
		// messages on their way), it ends by itself after its 1 s period.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"))
}

// testTiming detects a dead node in about a second on loopback, with room for
// -race on a busy machine: a probe every 200 ms, and a suspicion of 2 probe
// intervals, which memberlist does not stretch waiting for confirmations.
var testTiming = Timing{
	ProbeInterval:    200 * time.Millisecond,
	ProbeTimeout:     100 * time.Millisecond,
	GossipInterval:   20 * time.Millisecond,
	PushPullInterval: time.Second,
	SuspicionMult:    2,
	TCPTimeout:       time.Second,
}

// testLogger discards logs unless WEFT_TEST_LOG=debug (or info, warn, ...).
func testLogger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("WEFT_TEST_LOG"))); err != nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func testConfig(id string) Config {
	return Config{
		NodeID:      id,
		ClusterName: "weft-test",
		BindAddr:    "127.0.0.1:0",
		Meta: Meta{
			ActorAddr:  "127.0.0.1:8" + id,
			HTTPAddr:   "127.0.0.1:3" + id,
			GRPCAddr:   "127.0.0.1:5" + id,
			Partitions: 256,
		},
		Timing: testTiming,
		Logger: testLogger().With("test_node", id),
	}
}

// start starts a node that the test shuts down when it ends.
func start(t *testing.T, cfg Config) *Membership {
	t.Helper()
	m, err := Start(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

// eventually polls cond until it returns nil, failing the test with cond's
// last error after within; it returns how long the condition took.
func eventually(t *testing.T, what string, within time.Duration, cond func() error) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(begin)
		}
		if time.Since(begin) > within {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sees reports whether m lists exactly the given members in the given states.
func sees(m *Membership, want map[string]State) error {
	got := m.Members()
	var desc []string
	for _, mem := range got {
		desc = append(desc, mem.ID+"="+mem.State.String())
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s sees %v; want %v", m.ID(), desc, want)
	}
	for _, mem := range got {
		if want[mem.ID] != mem.State {
			return fmt.Errorf("%s sees %v; want %v", m.ID(), desc, want)
		}
	}
	return nil
}

func TestThreeNodesJoinThroughAnyMember(t *testing.T) {
	n1 := start(t, testConfig("1"))
	if !strings.HasPrefix(n1.Addr(), "127.0.0.1:") || strings.HasSuffix(n1.Addr(), ":0") {
		t.Fatalf("Addr() = %q; want the real port", n1.Addr())
	}
	c2 := testConfig("2")
	c2.Join = []string{n1.Addr()}
	n2 := start(t, c2)
	n3 := start(t, testConfig("3"))
	if err := n3.Join([]string{"127.0.0.1:1", n2.Addr()}); err != nil { // one dead seed, one live
		t.Fatalf("join through n2: %v", err)
	}

	nodes := []*Membership{n1, n2, n3}
	all := map[string]State{"1": StateAlive, "2": StateAlive, "3": StateAlive}
	took := eventually(t, "three alive members everywhere", 10*time.Second, func() error {
		for _, n := range nodes {
			if err := sees(n, all); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("converged %v after the last join", took)

	for _, n := range nodes {
		for i, mem := range n.Members() {
			want := nodes[i]
			if mem.ID != want.ID() || mem.Addr != want.Addr() {
				t.Errorf("%s lists %s at %s; want %s at %s (sorted by id)", n.ID(), mem.ID, mem.Addr, want.ID(), want.Addr())
			}
			m := mem.Meta
			if m.NodeID != mem.ID || m.ActorAddr != "127.0.0.1:8"+mem.ID || m.HTTPAddr != "127.0.0.1:3"+mem.ID ||
				m.GRPCAddr != "127.0.0.1:5"+mem.ID || m.Partitions != 256 || m.Epoch == 0 || m.Leaving {
				t.Errorf("%s has %s's metadata as %+v", n.ID(), mem.ID, m)
			}
		}
	}
}

// recorder collects a subscription's events.
type recorder struct {
	mu     sync.Mutex
	events []Event
	done   chan struct{}
}

func record(ch <-chan Event) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for e := range ch {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		}
	}()
	return r
}

// has reports whether an event of type t about id arrived, with the member in
// state s.
func (r *recorder) has(t EventType, id string, s State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var desc []string
	for _, e := range r.events {
		if e.Type == t && e.Member.ID == id && e.Member.State == s {
			return nil
		}
		desc = append(desc, e.Type.String()+":"+e.Member.ID)
	}
	return fmt.Errorf("no %s of %s (%s) among %v", t, id, s, desc)
}

// TestLeaveIsLeftAndSilenceIsDead: a node that leaves is recorded as left, one
// that stops without leaving as dead, and a subscriber sees both, and the joins.
func TestLeaveIsLeftAndSilenceIsDead(t *testing.T) {
	n1 := start(t, testConfig("1"))
	events, cancel := n1.Subscribe()
	rec := record(events)
	c2, c3 := testConfig("2"), testConfig("3")
	c2.Join, c3.Join = []string{n1.Addr()}, []string{n1.Addr()}
	n2, n3 := start(t, c2), start(t, c3)
	all := map[string]State{"1": StateAlive, "2": StateAlive, "3": StateAlive}
	eventually(t, "three alive members", 10*time.Second, func() error {
		return errors.Join(sees(n1, all), sees(n2, all), sees(n3, all))
	})
	eventually(t, "join events", time.Second, func() error {
		return errors.Join(rec.has(EventJoin, "2", StateAlive), rec.has(EventJoin, "3", StateAlive))
	})

	// n3 stops without a word: the others declare it dead.
	stopped := time.Now()
	if err := n3.Shutdown(); err != nil {
		t.Fatal(err)
	}
	want := map[string]State{"1": StateAlive, "2": StateAlive, "3": StateDead}
	eventually(t, "n3 dead", 10*time.Second, func() error { return errors.Join(sees(n1, want), sees(n2, want)) })
	t.Logf("a silent node was declared dead by both others %v after it stopped", time.Since(stopped))

	// n2 leaves: n1 records it as left, not dead, and n2 itself as left too.
	if err := n2.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	want = map[string]State{"1": StateAlive, "2": StateLeft, "3": StateDead}
	took := eventually(t, "n2 left", 5*time.Second, func() error { return errors.Join(sees(n1, want), sees(n2, want)) })
	t.Logf("a leave was seen %v after Leave returned", took)
	if err := n2.Join([]string{n1.Addr()}); !errors.Is(err, ErrLeft) {
		t.Errorf("join after leave: %v; want ErrLeft", err)
	}
	if err := n2.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n2.Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Errorf("leave after shutdown: %v; want ErrShutdown", err)
	}

	eventually(t, "fail and leave events", time.Second, func() error {
		return errors.Join(rec.has(EventFail, "3", StateDead), rec.has(EventLeave, "2", StateLeft))
	})
	cancel()
	<-rec.done // cancel closes the channel
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.events {
		if e.Member.ID == "1" {
			t.Errorf("n1 got an event about itself after subscribing: %v", e)
		}
		if e.Type == EventFail && e.Member.ID == "2" {
			t.Errorf("n2 left gracefully but n1 got %v", e)
		}
	}
}

func TestDifferentClusterNamesStayApart(t *testing.T) {
	a := start(t, testConfig("a"))
	cb := testConfig("b")
	cb.ClusterName = "other"
	b := start(t, cb)
	err := b.Join([]string{a.Addr()})
	t.Logf("join across cluster names: %v", err)
	if err == nil || !strings.Contains(err.Error(), "cluster name") {
		t.Fatalf("got %v; want a failed join that hints at the cluster name", err)
	}
	checkAlone(t, a, b)
}

func TestDifferentGossipKeysStayApart(t *testing.T) {
	key1, _ := GenerateGossipKey()
	key2, _ := GenerateGossipKey()
	ca, cb, cc := testConfig("a"), testConfig("b"), testConfig("c")
	ca.GossipKey, cb.GossipKey = key1, key2 // c has none
	a, b, c := start(t, ca), start(t, cb), start(t, cc)
	for _, tc := range []struct {
		name     string
		from, to *Membership
	}{{"other key", b, a}, {"no key into a keyed cluster", c, a}, {"a key into a plain cluster", b, c}} {
		err := tc.from.Join([]string{tc.to.Addr()})
		t.Logf("%s: %v", tc.name, err)
		if err == nil {
			t.Fatalf("%s: joined", tc.name)
		}
	}
	checkAlone(t, a, b, c)

	// The same key joins.
	cd := testConfig("d")
	cd.GossipKey, cd.Join = key1, []string{a.Addr()}
	d := start(t, cd)
	both := map[string]State{"a": StateAlive, "d": StateAlive}
	eventually(t, "same key joins", 10*time.Second, func() error { return errors.Join(sees(a, both), sees(d, both)) })
}

// checkAlone: each node still lists only itself.
func checkAlone(t *testing.T, nodes ...*Membership) {
	t.Helper()
	for _, n := range nodes {
		if err := sees(n, map[string]State{n.ID(): StateAlive}); err != nil {
			t.Error(err)
		}
	}
}

func TestDifferentPartitionCountIsRefused(t *testing.T) {
	a := start(t, testConfig("a"))
	cb := testConfig("b")
	cb.Meta.Partitions = 64
	cb.Join = []string{a.Addr()}
	_, err := Start(cb)
	t.Logf("join with 64 partitions into 256: %v", err)
	var pm *PartitionMismatchError
	if !errors.As(err, &pm) || pm.Node != "a" || pm.Theirs != 256 || pm.Ours != 64 {
		t.Fatalf("got %v; want a PartitionMismatchError naming a, 256 and 64", err)
	}
	if !strings.Contains(err.Error(), "256") || !strings.Contains(err.Error(), "64") {
		t.Fatalf("error %q does not name both counts", err)
	}

	// The contacted side refuses too, rather than adopting the joiner.
	eventually(t, "a refuses b", 5*time.Second, func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.refusal == nil {
			return errors.New("a has not refused a merge yet")
		}
		return nil
	})
	checkAlone(t, a)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no node id", func(c *Config) { c.NodeID = "" }, "node id is empty"},
		{"gossip key not base64", func(c *Config) { c.GossipKey = "not base64!" }, "not valid base64"},
		{"gossip key of 10 bytes", func(c *Config) { c.GossipKey = "AAAAAAAAAAAAAA==" }, "10 bytes"},
		{"partitions", func(c *Config) { c.Meta.Partitions = 1 << 17 }, "1 to 65536"},
		{"meta id", func(c *Config) { c.Meta.NodeID = "other" }, "differs"},
		{"bind address", func(c *Config) { c.BindAddr = "127.0.0.1" }, "bind address"},
		{"advertise port on a random bind port", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:7946" }, "fixed bind port"},
		{"cluster name", func(c *Config) { c.ClusterName = strings.Repeat("c", 256) }, "cluster name"},
		{"probe timeout", func(c *Config) { c.Timing.ProbeTimeout = time.Minute }, "probe timeout"},
	} {
		cfg := testConfig("n")
		tc.change(&cfg)
		m, err := Start(cfg)
		if err == nil {
			m.Shutdown()
			t.Errorf("%s: started", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want it to say %q", tc.name, err, tc.want)
		}
	}
}

// TestShutdownLeavesNoGoroutines: memberlist's listeners and timers, and the
// subscription pumps, all end with Shutdown, including a Start whose join failed.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	// A port nothing listens on: bind one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	cfg := testConfig("x")
	cfg.Join = []string{closed}
	if _, err := Start(cfg); err == nil {
		t.Fatal("joined a closed port")
	}

	a, err := Start(testConfig("a"))
	if err != nil {
		t.Fatal(err)
	}
	cb := testConfig("b")
	cb.Join = []string{a.Addr()}
	b, err := Start(cb)
	if err != nil {
		t.Fatal(err)
	}
	events, _ := a.Subscribe() // never read, never cancelled: Shutdown must still end its pump
	_, cancel := b.Subscribe()
	cancel()
	both := map[string]State{"a": StateAlive, "b": StateAlive}
	eventually(t, "two members", 10*time.Second, func() error { return errors.Join(sees(a, both), sees(b, both)) })
	if err := b.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.Shutdown()
	a.Shutdown()
	a.Shutdown() // idempotent
	for range events {
	}
	cancel() // after Shutdown closed it
	if _, ok := <-func() <-chan Event { ch, _ := a.Subscribe(); return ch }(); ok {
		t.Error("a subscription after Shutdown is open")
	}
}

func TestSlowSubscriberSeesLatestPerMember(t *testing.T) {
	s := newSubscription()
	ev := func(t EventType, id string, st State) Event { return Event{Type: t, Member: Member{ID: id, State: st}} }
	s.push(ev(EventJoin, "a", StateAlive))
	s.push(ev(EventJoin, "b", StateAlive))
	s.push(ev(EventFail, "a", StateDead)) // replaces a's undelivered join
	go s.run()
	got := []Event{<-s.ch, <-s.ch}
	want := []Event{ev(EventJoin, "b", StateAlive), ev(EventFail, "a", StateDead)}
	if got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v; want %v", got, want)
	}
	s.push(ev(EventJoin, "a", StateAlive)) // delivered once the subscriber reads again
	if e := <-s.ch; e != ev(EventJoin, "a", StateAlive) {
		t.Fatalf("got %v after a rejoin", e)
	}
	s.close()
	if _, ok := <-s.ch; ok {
		t.Fatal("channel open after close")
	}
}
