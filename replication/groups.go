package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// GroupID names a raft group: a partition.
type GroupID uint16

// NodeID is a node's raft id: non-zero, the same in every group.
type NodeID = uint64

var (
	// ErrNotLeader refuses a proposal to a group this node does not lead.
	ErrNotLeader = errors.New("replication: this node does not lead the group")
	// ErrLeadershipLost fails a proposal whose leader stepped down before it
	// was applied: it may yet be committed by the next leader, or not.
	ErrLeadershipLost = errors.New("replication: leadership lost before the proposal was applied; its outcome is unknown")
	// ErrNoGroup refuses a call for a group this node has no replica of.
	ErrNoGroup = errors.New("replication: no replica of the group on this node")
	// ErrNotCommitted fails a proposal known never to be committed: its
	// leader stepped down before sending it anywhere, or another entry was
	// committed at its index. Proposing it again is safe.
	ErrNotCommitted = errors.New("replication: the proposal was not committed (its leader stepped down); it is safe to propose again")
	// ErrRemoved fails the proposals of a replica removed from its group.
	ErrRemoved = errors.New("replication: this node's replica was removed from the group")
)

// Config configures Groups.
type Config struct {
	NodeID NodeID
	// ElectionTicks is how many ticks a follower waits for its leader before
	// it campaigns (default 10); HeartbeatTicks, how often a leader sends
	// heartbeats (default 1). A leader steps down when it has not heard from a
	// quorum within ElectionTicks (raft's CheckQuorum).
	ElectionTicks, HeartbeatTicks int
	// MaxSizePerMsg bounds the entries one append message carries (default
	// 1 MiB); MaxInflightMsgs, the appends in flight to one follower (256).
	MaxSizePerMsg   uint64
	MaxInflightMsgs int
	// OrphanTicks bounds how long a leader that stepped down waits to learn
	// whether the entries it proposed were committed (default two election
	// timeouts); then they fail with ErrLeadershipLost.
	OrphanTicks int
	Logger      raft.Logger // default: discards everything but errors
}

// Envelope is a raft message of one group. Quiesce marks the heartbeat a
// leader sends as its group goes quiet (see Tick).
type Envelope struct {
	Group   GroupID
	Message *pb.Message
	Quiesce bool
}

// Save is what one group needs persisted before its messages are sent.
type Save struct {
	Group     GroupID
	HardState *pb.HardState // nil: unchanged
	Entries   []*pb.Entry
	Snapshot  *pb.Snapshot  // nil: none
	ConfState *pb.ConfState // nil: unchanged; else the membership after this pass's committed conf changes
	ConfIndex uint64        // with ConfState: the index of the conf change that made it
}

// Applied is a committed entry to apply, its proposal framing removed. Data
// is nil for an entry that carries no step (a conf change, a new leader's
// empty entry): it only advances the applied index, which a snapshot is taken
// at, so that a snapshot's membership and its index agree.
type Applied struct {
	Group GroupID
	Index uint64
	Data  []byte
}

// LeaderChange says this node now serves a group as its leader, or no longer
// does. A new leader serves once it has applied an entry of its own term:
// then every entry a previous leader committed is applied here too, and the
// partition's data on this node is complete.
type LeaderChange struct {
	Group   GroupID
	Leading bool
	Term    uint64
}

// Batch is one Ready pass over every group with something to do.
type Batch struct {
	Saves     []Save
	MustSync  bool
	Messages  map[NodeID][]Envelope // by destination, sent once Saves are durable
	Early     map[NodeID][]Envelope // leaders' appends and heartbeats: may be sent before
	Committed []Applied
	Leaders   []LeaderChange
	// Removed are the groups this node's replica left: a committed conf
	// change removed it, or it was created by a leader's message and never
	// became a member. The driver forgets them after the pass.
	Removed []GroupID
	// Departed are the replicas that committed conf changes of this pass
	// removed (on every replica that applies them).
	Departed []Departure

	readys []groupReady
	err    error
}

// Departure is a replica removed from a group.
type Departure struct {
	Group GroupID
	Node  NodeID
	Index uint64 // the conf change's
}

type groupReady struct {
	g  *group
	rd raft.Ready
}

// Empty reports whether the batch has nothing to do.
func (b *Batch) Empty() bool {
	return len(b.readys) == 0 && len(b.Messages) == 0 && len(b.Early) == 0 && len(b.Removed) == 0 && b.err == nil
}

// Err is set when the pass could not be prepared (a conf change that does not
// decode): the groups cannot go on.
func (b *Batch) Err() error { return b.err }

// Groups is this node's replicas, one raft group each. It is not safe for
// concurrent use: its driver serialises every call.
type Groups struct {
	cfg          Config
	groups       map[GroupID]*group
	nextProposal uint64
	outbox       []Envelope // quiesce heartbeats, sent with the next Ready
	// dirty are the groups that may have something for Ready: touched (ticked,
	// stepped, proposed to...) since, or ready at, the last pass. Ready looks
	// at them only, not at every group.
	dirty map[GroupID]struct{}
}

type group struct {
	id      GroupID
	rn      *raft.RawNode
	storage raft.Storage
	leading bool // raft's leader
	serving bool // leading, and an entry of its term applied (see LeaderChange)
	lead    NodeID
	applied uint64               // the last committed entry handed out to apply
	pending map[uint64]*Proposal // proposal id → proposal, while not applied
	// orphaned counts the ticks since the leader stepped down with proposals
	// of its own in the log: the next leader commits them, or another entry
	// at their index, soon; failing them when that takes too long bounds the
	// wait of their callers.
	orphaned int
	// member says whether the last membership known includes this node.
	// outside counts the ticks a non-member spent without a leader's message:
	// a replica created for a stray message, never added, is dropped.
	member  bool
	outside int
	removed bool
	// A quiesced group is not ticked: an idle group costs nothing. idle
	// counts a leader's ticks with nothing to do.
	quiesced bool
	idle     int
}

// NewGroups returns an empty set of groups.
func NewGroups(cfg Config) (*Groups, error) {
	if cfg.NodeID == 0 {
		return nil, errors.New("replication: Config.NodeID must not be 0")
	}
	if cfg.ElectionTicks <= 0 {
		cfg.ElectionTicks = 10
	}
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = 1
	}
	if cfg.OrphanTicks <= 0 {
		cfg.OrphanTicks = 2 * cfg.ElectionTicks
	}
	if cfg.MaxSizePerMsg == 0 {
		cfg.MaxSizePerMsg = 1 << 20
	}
	if cfg.MaxInflightMsgs <= 0 {
		cfg.MaxInflightMsgs = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger{}
	}
	// Proposal ids start at this node's id in the high bits, so an entry
	// another node proposed never matches one of ours.
	return &Groups{cfg: cfg, groups: map[GroupID]*group{}, nextProposal: cfg.NodeID << 40, dirty: map[GroupID]struct{}{}}, nil
}

// Create adds this node's replica of group id, reading its raft state from
// storage. A group whose storage is empty is bootstrapped with peers (every
// replica of a new group is given the same peers); one with state ignores them.
// applied is the index up to which the caller's state machine already holds
// the group's entries: they are not handed to it again.
func (gs *Groups) Create(id GroupID, storage raft.Storage, peers []NodeID, applied uint64) error {
	if _, ok := gs.groups[id]; ok {
		return fmt.Errorf("replication: group %d exists", id)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        gs.cfg.NodeID,
		ElectionTick:              gs.cfg.ElectionTicks,
		HeartbeatTick:             gs.cfg.HeartbeatTicks,
		Storage:                   storage,
		Applied:                   applied,
		MaxSizePerMsg:             gs.cfg.MaxSizePerMsg,
		MaxInflightMsgs:           gs.cfg.MaxInflightMsgs,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		Logger:                    gs.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("replication: group %d: %w", id, err)
	}
	last, err := storage.LastIndex()
	if err != nil {
		return fmt.Errorf("replication: group %d: %w", id, err)
	}
	if last == 0 && len(peers) > 0 {
		ps := make([]raft.Peer, len(peers))
		for i, p := range peers {
			ps[i] = raft.Peer{ID: p}
		}
		if err := rn.Bootstrap(ps); err != nil {
			return fmt.Errorf("replication: bootstrap group %d: %w", id, err)
		}
	}
	_, cs, err := storage.InitialState()
	if err != nil {
		return fmt.Errorf("replication: group %d: %w", id, err)
	}
	g := &group{id: id, rn: rn, storage: storage, member: gs.isMember(cs)}
	if len(peers) > 0 && last == 0 {
		g.member = slices.Contains(peers, gs.cfg.NodeID)
	}
	gs.groups[id] = g
	gs.dirty[id] = struct{}{}
	return nil
}

// isMember reports whether a membership includes this node, as a voter or a
// learner, in either half of a joint configuration.
func (gs *Groups) isMember(cs *pb.ConfState) bool {
	self := gs.cfg.NodeID
	return slices.Contains(cs.GetVoters(), self) || slices.Contains(cs.GetLearners(), self) ||
		slices.Contains(cs.GetVotersOutgoing(), self) || slices.Contains(cs.GetLearnersNext(), self)
}

// markRemoved makes the next Ready report group id removed.
func (gs *Groups) markRemoved(id GroupID) {
	if g, ok := gs.groups[id]; ok {
		g.removed = true
		gs.dirty[id] = struct{}{}
	}
}

// Remove forgets group id on this node: its proposals fail with ErrRemoved.
// The caller destroys its state.
func (gs *Groups) Remove(id GroupID) {
	if g, ok := gs.groups[id]; ok {
		g.failPending(ErrRemoved)
		delete(gs.groups, id)
		delete(gs.dirty, id)
	}
}

// quiesceAfter is how many idle ticks a leader waits before its group goes
// quiet.
const quiesceAfter = 3

// Tick advances the logical clock of every group that is not quiesced by one
// tick.
//
// A group quiesces, as CockroachDB's ranges do, when its leader has had
// nothing to do for a few ticks: nothing proposed and not applied, every
// replica's log matching its own, all of it committed and applied, no
// transfer under way. The leader then sends each replica a last heartbeat
// marked Quiesce and stops ticking; a replica whose log matches it stops
// ticking too. No heartbeats, no elections: 256 idle groups cost nothing. Any
// proposal or message (but a heartbeat's answer) wakes a group; so does Wake,
// which the caller calls when a node may have failed or come back, since a
// quiesced replica does not notice its leader is gone and a quiesced leader
// does not notice it lost its quorum.
func (gs *Groups) Tick() {
	for _, g := range gs.groups {
		if g.quiesced {
			continue
		}
		g.rn.Tick()
		gs.dirty[g.id] = struct{}{}
		if g.serving {
			gs.maybeQuiesce(g)
		}
		if !g.leading && len(g.pending) > 0 {
			if g.orphaned++; g.orphaned > gs.cfg.OrphanTicks {
				g.failPending(ErrLeadershipLost)
			}
		}
		if !g.member && !g.removed {
			if g.outside++; g.outside > strayTicks {
				g.removed = true
			}
		}
	}
}

// strayTicks is how long a replica that is not a member of its group waits
// for its leader's first message (ticks): a leader that added it sends one
// every heartbeat; a replica created for a message sent before its removal
// hears nothing more.
const strayTicks = 300

// maybeQuiesce quiesces a serving leader's group that has been idle.
func (gs *Groups) maybeQuiesce(g *group) {
	bs := g.rn.BasicStatus()
	idle := len(g.pending) == 0 && bs.Applied == bs.GetCommit() && bs.LeadTransferee == 0
	var followers []NodeID
	if idle {
		var last uint64
		g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			if id == gs.cfg.NodeID {
				last = pr.Match
			}
		})
		g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			if pr.Match != last || id != gs.cfg.NodeID && (pr.State != tracker.StateReplicate || !pr.RecentActive) {
				idle = false // behind, or not heard from lately
			}
			if id != gs.cfg.NodeID {
				followers = append(followers, id)
			}
		})
		idle = idle && last == bs.GetCommit()
	}
	if !idle {
		g.idle = min(g.idle, 0)
		return
	}
	if g.idle++; g.idle < quiesceAfter {
		return
	}
	g.quiesced = true
	for _, to := range followers {
		gs.outbox = append(gs.outbox, Envelope{Group: g.id, Quiesce: true, Message: &pb.Message{
			Type: pb.MessageType_MsgHeartbeat.Enum(), To: new(to), From: new(gs.cfg.NodeID),
			Term: new(bs.GetTerm()), Commit: new(bs.GetCommit())}})
	}
}

// Wake makes every quiesced group tick again, and keeps each awake for two
// election timeouts: long enough for a leader's CheckQuorum to run, so one
// cut off from its replicas steps down instead of quiescing again.
func (gs *Groups) Wake() {
	for _, g := range gs.groups {
		g.wake()
		g.idle = -2 * gs.cfg.ElectionTicks
	}
}

func (g *group) wake() { g.quiesced, g.idle = false, 0 }

// allQuiesced reports whether every group is quiesced (and there is one).
func (gs *Groups) allQuiesced() bool {
	for _, g := range gs.groups {
		if !g.quiesced {
			return false
		}
	}
	return len(gs.groups) > 0
}

// Quiesced reports how many groups are quiesced.
func (gs *Groups) Quiesced() int {
	n := 0
	for _, g := range gs.groups {
		if g.quiesced {
			n++
		}
	}
	return n
}

// Step hands a message from another node to its group. Messages for a group
// this node has no replica of are dropped: ErrNoGroup.
func (gs *Groups) Step(e Envelope) error {
	g, ok := gs.groups[e.Group]
	if !ok {
		return ErrNoGroup
	}
	gs.dirty[e.Group] = struct{}{}
	m := e.Message
	if m.GetType() == pb.MessageType_MsgHeartbeat {
		// A heartbeat's commit is the leader's idea of this replica's log. A
		// replica made anew (its old state destroyed when it was removed,
		// the leader still counting the old one's progress) has less, and
		// raft panics on a commit beyond its log; it learns the commit again
		// with the entries it is sent.
		if last, err := g.storage.LastIndex(); err == nil && m.GetCommit() > last {
			clamped := proto.Clone(m).(*pb.Message) // the sender's message is left as it is
			clamped.Commit = &last
			m = clamped
		}
	}
	switch {
	case e.Quiesce:
		// The leader went quiet: so does this replica, if its log is whole.
		err := g.rn.Step(m)
		bs := g.rn.BasicStatus()
		g.quiesced = err == nil && bs.Lead == m.GetFrom() && bs.GetTerm() == m.GetTerm() && bs.GetCommit() >= m.GetCommit() && !g.leading
		return err
	case m.GetType() == pb.MessageType_MsgHeartbeatResp:
		// An answer to a heartbeat is no activity: a quiet group stays quiet,
		// an idle one keeps counting.
	default:
		g.wake()
	}
	switch m.GetType() {
	case pb.MessageType_MsgApp, pb.MessageType_MsgHeartbeat, pb.MessageType_MsgSnap:
		g.outside = 0
	}
	err := g.rn.Step(m)
	if errors.Is(err, raft.ErrStepPeerNotFound) || errors.Is(err, raft.ErrStepLocalMsg) {
		return nil // from a replica that left, or a stray local message: nothing to do
	}
	return err
}

// Campaign makes this node's replica of a group stand for election now
// instead of waiting for its election timeout.
func (gs *Groups) Campaign(id GroupID) error {
	g, ok := gs.groups[id]
	if !ok {
		return ErrNoGroup
	}
	g.wake()
	gs.dirty[id] = struct{}{}
	return g.rn.Campaign()
}

// Leader is the node this replica last saw leading the group (0: none known).
func (gs *Groups) Leader(id GroupID) NodeID {
	if g, ok := gs.groups[id]; ok {
		return g.lead
	}
	return 0
}

// Propose proposes data to a group this node leads. The proposal resolves
// once its entry is committed and applied (nil), or fails.
func (gs *Groups) Propose(id GroupID, data []byte) (*Proposal, error) {
	g, ok := gs.groups[id]
	if !ok {
		return nil, ErrNoGroup
	}
	if !g.serving {
		return nil, fmt.Errorf("group %d (leader %d): %w", id, g.lead, ErrNotLeader)
	}
	g.wake()
	gs.nextProposal++
	pid := gs.nextProposal
	framed := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(data)), pid)
	framed = append(framed, data...)
	gs.dirty[id] = struct{}{}
	if err := g.rn.Propose(framed); err != nil {
		return nil, fmt.Errorf("group %d: %w", id, err)
	}
	p := newProposal()
	if g.pending == nil {
		g.pending = map[uint64]*Proposal{}
	}
	g.pending[pid] = p
	return p, nil
}

// ProposeConfChange proposes a change of a group's replicas.
func (gs *Groups) ProposeConfChange(id GroupID, cc *pb.ConfChange) error {
	g, err := gs.leaderOf(id)
	if err != nil {
		return err
	}
	return g.rn.ProposeConfChange(cc)
}

// leaderOf returns group id, woken and marked touched, if this node leads it.
func (gs *Groups) leaderOf(id GroupID) (*group, error) {
	g, ok := gs.groups[id]
	if !ok {
		return nil, ErrNoGroup
	}
	if !g.leading {
		return nil, fmt.Errorf("group %d (leader %d): %w", id, g.lead, ErrNotLeader)
	}
	g.wake()
	gs.dirty[id] = struct{}{}
	return g, nil
}

// Has reports whether this node has a replica of group id.
func (gs *Groups) Has(id GroupID) bool {
	_, ok := gs.groups[id]
	return ok
}

// IDs lists the groups this node has a replica of.
func (gs *Groups) IDs() []GroupID { return slices.Sorted(maps.Keys(gs.groups)) }

// TransferLeadership asks the group's leader (this node) to hand leadership
// to another voter, which must be caught up for it to happen quickly.
func (gs *Groups) TransferLeadership(id GroupID, to NodeID) error {
	g, err := gs.leaderOf(id)
	if err != nil {
		return err
	}
	g.rn.TransferLeader(to)
	return nil
}

// ReportSnapshot tells a group whether the snapshot it sent to a replica
// arrived (the transport streams snapshots apart from raft's messages).
func (gs *Groups) ReportSnapshot(id GroupID, to NodeID, ok bool) {
	if g, found := gs.groups[id]; found {
		st := raft.SnapshotFinish
		if !ok {
			st = raft.SnapshotFailure
		}
		gs.dirty[id] = struct{}{}
		g.rn.ReportSnapshot(to, st)
	}
}

// GroupStatus is one replica's view of its group.
type GroupStatus struct {
	Group    GroupID
	Term     uint64
	Lead     NodeID
	Leading  bool
	Serving  bool
	Commit   uint64
	Applied  uint64
	Voters   []NodeID
	Learners []NodeID
	// Match is, on the leader, how far each replica's log is known to match
	// its own; nil elsewhere.
	Match map[NodeID]uint64
	// LastIndex is the leader's last log index (0 elsewhere).
	LastIndex uint64
}

// Status returns this node's view of group id.
func (gs *Groups) Status(id GroupID) (GroupStatus, bool) {
	g, ok := gs.groups[id]
	if !ok {
		return GroupStatus{}, false
	}
	st := g.rn.Status()
	out := GroupStatus{Group: id, Term: st.GetTerm(), Lead: st.Lead, Leading: g.leading, Serving: g.serving,
		Commit: st.GetCommit(), Applied: g.applied, Voters: slices.Sorted(maps.Keys(st.Config.Voters.IDs()))}
	for l := range st.Config.Learners {
		out.Learners = append(out.Learners, l)
	}
	slices.Sort(out.Learners)
	if g.leading {
		out.Match = make(map[NodeID]uint64, len(st.Progress))
		for id, pr := range st.Progress {
			out.Match[id] = pr.Match
		}
		out.LastIndex = out.Match[gs.cfg.NodeID]
	}
	return out, true
}

// ReportUnreachable tells a group that a message to a node was not delivered.
func (gs *Groups) ReportUnreachable(id GroupID, to NodeID) {
	if g, ok := gs.groups[id]; ok {
		gs.dirty[id] = struct{}{}
		g.rn.ReportUnreachable(to)
	}
}

// Ready collects what every group has to do. Nothing in it may be acted on
// out of order: send Early (or not before the rest), persist Saves (one write,
// synced if MustSync), then send Messages, then apply Committed, then Advance.
func (gs *Groups) Ready() *Batch {
	b := &Batch{}
	defer func() {
		// After the groups' own messages: a quiesce heartbeat must be the last
		// a replica hears from its leader (a heartbeat after it would wake it).
		for _, e := range gs.outbox {
			if b.Messages == nil {
				b.Messages = map[NodeID][]Envelope{}
			}
			b.Messages[e.Message.GetTo()] = append(b.Messages[e.Message.GetTo()], e)
		}
		gs.outbox = gs.outbox[:0]
	}()
	ids := make([]GroupID, 0, len(gs.dirty))
	for id := range gs.dirty {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a stable order: deterministic tests
	for _, id := range ids {
		g := gs.groups[id]
		if g != nil && g.removed {
			b.Removed = append(b.Removed, id)
			if g.serving {
				g.serving = false
				b.Leaders = append(b.Leaders, LeaderChange{Group: id, Leading: false, Term: g.rn.BasicStatus().GetTerm()})
			}
			delete(gs.dirty, id)
			continue
		}
		if g == nil || !g.rn.HasReady() {
			delete(gs.dirty, id) // stays clean until touched again
			continue
		}
		rd := g.rn.Ready()
		b.readys = append(b.readys, groupReady{g, rd})
		if rd.SoftState != nil {
			g.lead = rd.SoftState.Lead
			g.leading = rd.SoftState.RaftState == raft.StateLeader
		}
		if g.serving && !g.leading {
			g.serving = false
			b.Leaders = append(b.Leaders, LeaderChange{Group: id, Leading: false, Term: g.rn.BasicStatus().GetTerm()})
		}
		if g.leading && !g.serving && len(rd.CommittedEntries) > 0 {
			term := g.rn.BasicStatus().GetTerm()
			for _, e := range rd.CommittedEntries {
				if e.GetTerm() == term {
					g.serving = true
					b.Leaders = append(b.Leaders, LeaderChange{Group: id, Leading: true, Term: term})
					break
				}
			}
		}
		if n := len(rd.CommittedEntries); n > 0 {
			g.applied = rd.CommittedEntries[n-1].GetIndex()
		} else if !raft.IsEmptySnap(rd.Snapshot) {
			g.applied = rd.Snapshot.GetMetadata().GetIndex()
		}
		// A committed conf change takes effect now, and the membership it
		// makes is saved in this pass's write, before anything committed after
		// it is applied: a restart that skips what was applied must not find
		// an older membership.
		confState, confIndex, departed, err := g.applyConfChanges(rd.CommittedEntries)
		if err != nil {
			b.err = err
			return b
		}
		b.Departed = append(b.Departed, departed...)
		if confState != nil {
			g.member = gs.isMember(confState)
		} else if !raft.IsEmptySnap(rd.Snapshot) {
			g.member = gs.isMember(rd.Snapshot.GetMetadata().GetConfState())
		}
		if g.member {
			g.outside = 0
		}
		for _, d := range departed {
			if d.Node == gs.cfg.NodeID && !g.member {
				g.removed = true
			}
		}
		if g.leading {
			g.placeProposals(rd.Entries)
		}
		if !raft.IsEmptyHardState(rd.HardState) || len(rd.Entries) > 0 || !raft.IsEmptySnap(rd.Snapshot) || confState != nil {
			s := Save{Group: id, Entries: rd.Entries, ConfState: confState, ConfIndex: confIndex}
			if !raft.IsEmptyHardState(rd.HardState) {
				s.HardState = rd.HardState
			}
			if !raft.IsEmptySnap(rd.Snapshot) {
				s.Snapshot = rd.Snapshot
			}
			b.Saves = append(b.Saves, s)
		}
		b.MustSync = b.MustSync || rd.MustSync || !raft.IsEmptySnap(rd.Snapshot)
		for _, m := range rd.Messages {
			// A leader's appends and heartbeats may go out while its own copy is
			// being written (the Raft thesis, 10.2.1; etcd does it): its term was
			// made durable when it campaigned. Everything else (a follower's
			// answers, votes) waits for the write.
			out := &b.Messages
			if g.leading && (m.GetType() == pb.MessageType_MsgApp || m.GetType() == pb.MessageType_MsgHeartbeat) {
				out = &b.Early
			}
			if *out == nil {
				*out = map[NodeID][]Envelope{}
			}
			(*out)[m.GetTo()] = append((*out)[m.GetTo()], Envelope{Group: id, Message: m})
		}
		for _, e := range rd.CommittedEntries {
			a := Applied{Group: id, Index: e.GetIndex()}
			if e.GetType() == pb.EntryType_EntryNormal && len(e.GetData()) >= 8 {
				a.Data = e.GetData()[8:]
			} // else a conf change (raft's, applied above) or a new leader's empty entry
			b.Committed = append(b.Committed, a)
		}
	}
	return b
}

// Advance tells the groups that a batch was persisted, sent and applied: its
// proposals resolve.
//
// A leader that stepped down keeps waiting for the proposals it had written
// to its log: the next leader commits them (a leadership transfer always
// does: its target has the whole log) or commits other entries at their
// indexes. Either way this replica learns which, as a follower, and the
// proposal resolves (applied, or ErrNotCommitted). One never written can no
// longer be committed: it fails with ErrNotCommitted at once.
func (gs *Groups) Advance(b *Batch) error {
	defer func() {
		for _, lc := range b.Leaders { // after the entries applied in this pass resolved
			if g := gs.groups[lc.Group]; g != nil && !lc.Leading {
				g.orphaned = 0
				for pid, p := range g.pending {
					if p.logIndex == 0 {
						delete(g.pending, pid)
						p.resolve(0, fmt.Errorf("group %d: %w", g.id, ErrNotCommitted))
					}
				}
			}
		}
	}()
	for _, r := range b.readys {
		g := r.g
		for _, e := range r.rd.CommittedEntries {
			if e.GetType() == pb.EntryType_EntryNormal && len(e.GetData()) >= 8 {
				pid := binary.BigEndian.Uint64(e.GetData())
				if p, ok := g.pending[pid]; ok {
					delete(g.pending, pid)
					p.resolve(e.GetIndex(), nil)
				}
			}
		}
		if snap := r.rd.Snapshot; !raft.IsEmptySnap(snap) {
			// The log up to the snapshot is gone unread: whether a proposal
			// in it was committed is unknown here.
			g.resolveUpTo(snap.GetMetadata().GetIndex(), ErrLeadershipLost)
		}
		if n := len(r.rd.CommittedEntries); n > 0 {
			g.resolveUpTo(r.rd.CommittedEntries[n-1].GetIndex(), ErrNotCommitted)
		}
		g.rn.Advance(r.rd)
	}
	return nil
}

// resolveUpTo fails the proposals whose entries were at or below index and
// were not applied: another entry took their place.
func (g *group) resolveUpTo(index uint64, err error) {
	for pid, p := range g.pending {
		if p.logIndex != 0 && p.logIndex <= index {
			delete(g.pending, pid)
			p.resolve(0, fmt.Errorf("group %d: %w", g.id, err))
		}
	}
}

// placeProposals records the log index of this leader's proposals among
// entries it is about to write.
func (g *group) placeProposals(es []*pb.Entry) {
	if len(g.pending) == 0 {
		return
	}
	for _, e := range es {
		if e.GetType() == pb.EntryType_EntryNormal && len(e.GetData()) >= 8 {
			if p, ok := g.pending[binary.BigEndian.Uint64(e.GetData())]; ok {
				p.logIndex = e.GetIndex()
			}
		}
	}
}

// Close fails every proposal not applied yet.
func (gs *Groups) Close(err error) {
	for _, g := range gs.groups {
		g.failPending(err)
	}
}

// applyConfChanges makes the committed conf changes take effect and returns
// the membership after the last (nil: there was none), the last one's index
// and the replicas they removed.
func (g *group) applyConfChanges(es []*pb.Entry) (*pb.ConfState, uint64, []Departure, error) {
	var cs *pb.ConfState
	var at uint64
	var gone []Departure
	for _, e := range es {
		var cc pb.ConfChangeI
		switch e.GetType() {
		case pb.EntryType_EntryConfChange:
			var v1 pb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &v1); err != nil {
				return nil, 0, nil, fmt.Errorf("replication: group %d: conf change at %d: %w", g.id, e.GetIndex(), err)
			}
			cc = &v1
		case pb.EntryType_EntryConfChangeV2:
			var v2 pb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &v2); err != nil {
				return nil, 0, nil, fmt.Errorf("replication: group %d: conf change at %d: %w", g.id, e.GetIndex(), err)
			}
			cc = &v2
		default:
			continue
		}
		cs, at = g.rn.ApplyConfChange(cc), e.GetIndex()
		for _, c := range cc.AsV2().GetChanges() {
			if c.GetType() == pb.ConfChangeType_ConfChangeRemoveNode {
				gone = append(gone, Departure{Group: g.id, Node: c.GetNodeId(), Index: e.GetIndex()})
			}
		}
	}
	return cs, at, gone, nil
}

func (g *group) failPending(err error) {
	for pid, p := range g.pending {
		delete(g.pending, pid)
		p.resolve(0, fmt.Errorf("group %d: %w", g.id, err))
	}
}

// quietLogger drops raft's debug and info output and keeps its warnings and
// errors out of the way too; a panic is still a panic.
type quietLogger struct{}

func (quietLogger) Debug(...any)                   {}
func (quietLogger) Debugf(string, ...any)          {}
func (quietLogger) Error(...any)                   {}
func (quietLogger) Errorf(string, ...any)          {}
func (quietLogger) Info(...any)                    {}
func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Warning(...any)                 {}
func (quietLogger) Warningf(string, ...any)        {}
func (quietLogger) Fatal(v ...any)                 { panic(fmt.Sprint(v...)) }
func (quietLogger) Fatalf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
func (quietLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (quietLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
