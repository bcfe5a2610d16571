package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/weftrt/weft/placement"
)

// State is a member's liveness as this node sees it.
type State uint8

const (
	// StateAlive: the member answers probes, or is suspected and not yet declared
	// dead (memberlist does not report suspicion to its listeners).
	StateAlive State = iota + 1
	StateLeft        // left gracefully (Leave)
	StateDead        // stopped answering and was declared dead by the cluster
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateLeft:
		return "left"
	case StateDead:
		return "dead"
	}
	return "unknown"
}

// Member is a node of the cluster as this node last heard of it.
type Member struct {
	ID    string
	Addr  string // gossip address, host:port
	Meta  Meta
	State State
}

var (
	// ErrShutdown is returned by calls on a Membership after Shutdown.
	ErrShutdown = errors.New("cluster: membership is shut down")
	// ErrLeft is returned by Join after Leave: memberlist cannot rejoin once it
	// has announced a leave; start a new Membership instead.
	ErrLeft = errors.New("cluster: this node has left the cluster")
)

// Membership is this node's view of the cluster and its part in the gossip.
// Its methods are safe for concurrent use.
type Membership struct {
	id         string
	partitions int
	log        *slog.Logger
	ml         *memberlist.Memberlist
	state      StateDelegate

	joinMu sync.Mutex // one Join at a time, so a merge refusal is matched to its join
	// lifeMu orders Leave and Shutdown: memberlist panics on a leave after
	// shutdown.
	lifeMu sync.Mutex

	mu       sync.Mutex
	meta     Meta
	metaBuf  []byte // meta encoded, as NodeMeta hands it to memberlist
	members  map[string]Member
	subs     map[*subscription]struct{}
	refusal  error // the last merge this node refused; see Join
	left     bool
	shutdown bool
}

// Start joins the gossip: it binds cfg.BindAddr, and joins cfg.Join if given,
// failing (and releasing the port) if none of those addresses accepts this
// node. A node whose seeds may not be up yet should start without Join and
// call Join until it succeeds.
func Start(cfg Config) (*Membership, error) {
	if cfg.ClusterName == "" {
		cfg.ClusterName = DefaultClusterName
	}
	mlc, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}
	meta := cfg.Meta
	if meta.NodeID != "" && meta.NodeID != cfg.NodeID {
		return nil, fmt.Errorf("cluster: Meta.NodeID %q differs from NodeID %q", meta.NodeID, cfg.NodeID)
	}
	meta.NodeID = cfg.NodeID
	if meta.Partitions == 0 {
		meta.Partitions = placement.DefaultPartitions
	}
	if meta.Partitions < 1 || meta.Partitions > 1<<16 {
		return nil, fmt.Errorf("cluster: %d partitions; must be 1 to 65536", meta.Partitions)
	}
	if meta.Epoch == 0 {
		meta.Epoch = time.Now().UnixMilli()
	}
	leaving := meta
	leaving.Leaving = true
	if _, err := encodeMeta(leaving); err != nil { // the largest this node's metadata gets
		return nil, err
	}
	buf, err := encodeMeta(meta)
	if err != nil {
		return nil, err
	}

	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "cluster", "node", cfg.NodeID)
	m := &Membership{
		id:         cfg.NodeID,
		partitions: meta.Partitions,
		log:        logger,
		meta:       meta,
		metaBuf:    buf,
		members:    map[string]Member{},
		subs:       map[*subscription]struct{}{},
		state:      cfg.State,
	}
	d := &delegate{m}
	mlc.Delegate = d
	mlc.Events = d
	mlc.Merge = d
	mlc.Alive = d
	mlc.Conflict = d
	mlc.Logger = log.New(memberlistLog{logger}, "", 0)

	if cfg.WrapTransport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{mlc.BindAddr}, BindPort: mlc.BindPort, Logger: mlc.Logger})
		if err != nil {
			return nil, fmt.Errorf("cluster: start gossip on %s: %w", net.JoinHostPort(mlc.BindAddr, strconv.Itoa(mlc.BindPort)), err)
		}
		if mlc.BindPort == 0 {
			mlc.BindPort = nt.GetAutoBindPort()
			if mlc.AdvertisePort == 0 {
				mlc.AdvertisePort = mlc.BindPort
			}
		}
		mlc.Transport = cfg.WrapTransport(nt)
	}
	// memberlist calls the delegates during Create (this node's own join), and
	// they never touch m.ml.
	ml, err := memberlist.Create(mlc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", mlc.BindAddr, err)
	}
	m.ml = ml
	m.log.Info("gossip started", "addr", m.Addr(), "cluster", cfg.ClusterName, "encrypted", mlc.SecretKey != nil)
	if len(cfg.Join) > 0 {
		if err := m.Join(cfg.Join); err != nil {
			m.Shutdown()
			return nil, err
		}
	}
	return m, nil
}

// Broadcast sends b to every other alive member over a reliable (TCP) message,
// where the StateDelegate merges it. Sends run in the background: a slow or dead
// peer delays nobody, and push/pull repairs what a lost message missed.
func (m *Membership) Broadcast(b []byte) { m.broadcast(b, nil) }

// BroadcastWait is Broadcast that returns once every send finished (or failed):
// for a node about to leave, whose last word must reach the others.
func (m *Membership) BroadcastWait(b []byte) {
	var wg sync.WaitGroup
	m.broadcast(b, &wg)
	wg.Wait()
}

func (m *Membership) broadcast(b []byte, wg *sync.WaitGroup) {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	done := m.shutdown || m.left
	m.mu.Unlock()
	if done {
		return
	}
	for _, n := range m.ml.Members() {
		if n.Name == m.id {
			continue
		}
		if wg != nil {
			wg.Add(1)
		}
		go func() {
			if wg != nil {
				defer wg.Done()
			}
			if err := m.ml.SendReliable(n, b); err != nil {
				m.log.Debug("state update not sent; push/pull will repair it", "peer", n.Name, "err", err)
			}
		}()
	}
}

// ID returns this node's id.
func (m *Membership) ID() string { return m.id }

// Addr returns the gossip address this node advertises, with the real port
// when BindAddr asked for port 0.
func (m *Membership) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members[m.id].Addr
}

// Join contacts the given members (host:port) and merges with their cluster;
// it succeeds if any one of them accepts. Each attempt is bounded by
// Timing.TCPTimeout. A refusal because the partition counts differ is
// returned as a *PartitionMismatchError.
func (m *Membership) Join(addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	m.joinMu.Lock()
	defer m.joinMu.Unlock()
	m.mu.Lock()
	shut, left := m.shutdown, m.left
	m.refusal = nil
	m.mu.Unlock()
	switch {
	case shut:
		return ErrShutdown
	case left:
		return ErrLeft
	}
	n, err := m.ml.Join(addrs)
	if err == nil {
		m.log.Debug("joined", "via", addrs, "contacted", n)
		return nil
	}
	// memberlist flattens the delegate's error into text; recover the typed
	// refusal when it is the one memberlist reports. (Another node's join
	// refused meanwhile leaves a different text.)
	m.mu.Lock()
	refusal := m.refusal
	m.mu.Unlock()
	if refusal != nil && strings.Contains(err.Error(), refusal.Error()) {
		return fmt.Errorf("cluster: join %s: %w", strings.Join(addrs, ", "), refusal)
	}
	msg := flatten(err)
	if strings.Contains(msg, ": EOF") || strings.Contains(msg, "connection reset by peer") {
		// What a node of another cluster name does: it reads the label, drops
		// the stream and says nothing (a reset when our push-pull state was
		// still unread in its socket when it closed).
		msg += " (a node that closes the connection unanswered usually has another cluster name)"
	}
	return fmt.Errorf("cluster: join %s: %s", strings.Join(addrs, ", "), msg)
}

// flatten turns memberlist's multi-line multierror into one line.
func flatten(err error) string {
	var multi interface{ WrappedErrors() []error }
	if errors.As(err, &multi) {
		var parts []string
		for _, e := range multi.WrappedErrors() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

// Members returns every member this node has heard of, itself included, sorted
// by id. Members that left or died stay listed (as such) until they return:
// whether a dead member still owns partitions is placement's question.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		ms = append(ms, mem)
	}
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return ms
}

// StateOf returns what this node knows of member id's state (0 if nothing).
func (m *Membership) StateOf(id string) State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members[id].State
}

// Subscribe returns a channel of membership events from now on, and a cancel
// function that closes it. Call Subscribe before Members to miss nothing.
// This node's own changes are included (its Leave shows as an update, then a
// leave).
//
// Events about one member arrive in order; events never block memberlist. A
// subscriber that falls behind does not see every transition: while an event
// about a member waits to be received, a newer one about the same member
// replaces it (a join quickly followed by a failure arrives as the failure
// alone), so what it receives always converges on the latest state of every
// member. Shutdown closes every subscription's channel.
func (m *Membership) Subscribe() (<-chan Event, func()) {
	s := newSubscription()
	go s.run()
	m.mu.Lock()
	if m.shutdown {
		m.mu.Unlock()
		s.close()
		return s.ch, func() {}
	}
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	return s.ch, func() {
		m.mu.Lock()
		delete(m.subs, s)
		m.mu.Unlock()
		s.close()
	}
}

// Leave announces that this node leaves, so the others record it as left
// rather than dead, waiting up to timeout (positive) for the announcement to
// go out. The node keeps answering gossip until Shutdown, which should follow.
// Leave cannot be undone, even when it times out; it is idempotent.
func (m *Membership) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("cluster: leave: timeout %v; must be positive", timeout)
	}
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	if m.shutdown {
		m.mu.Unlock()
		return ErrShutdown
	}
	if m.left {
		m.mu.Unlock()
		return nil
	}
	m.left = true
	m.meta.Leaving = true
	buf, err := encodeMeta(m.meta) // fits: Start checked the leaving form
	if err == nil {
		m.metaBuf = buf
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}

	// First the Leaving flag (a metadata update), then memberlist's leave: a
	// peer that has the flag when it hears of the leave records "left". The
	// update waits until it has been gossiped to enough peers, or half the
	// timeout; the leave gets the rest.
	deadline := time.Now().Add(timeout)
	var errs []error
	if err := m.ml.UpdateNode(timeout / 2); err != nil {
		errs = append(errs, fmt.Errorf("announce leaving: %w", err))
	}
	if err := m.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		errs = append(errs, fmt.Errorf("announce leave: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	m.log.Info("left the cluster")
	return nil
}

// Shutdown stops gossip and closes every subscription. Without a Leave first,
// the others detect the silence and declare this node dead. Shutdown is
// idempotent.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	if m.shutdown {
		m.mu.Unlock()
		return nil
	}
	m.shutdown = true
	subs := m.subs
	m.subs = map[*subscription]struct{}{}
	m.mu.Unlock()

	err := m.ml.Shutdown()
	for s := range subs {
		s.close()
	}
	if err != nil {
		return fmt.Errorf("cluster: shutdown: %w", err)
	}
	m.log.Info("gossip stopped")
	return nil
}

// record updates the view with a member's new state and tells subscribers.
// It runs on memberlist's goroutines (never two at once: memberlist
// serialises its event delegate), with memberlist's node lock held, so it must
// not call back into memberlist.
func (m *Membership) record(t EventType, mem Member) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members[mem.ID] = mem
	for s := range m.subs {
		s.push(Event{Type: t, Member: mem})
	}
}
