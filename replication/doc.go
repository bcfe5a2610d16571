// Package replication keeps each partition's steps on a quorum of the nodes
// that replicate it: one raft group (go.etcd.io/raft/v3) per partition, many
// groups on one node.
//
// Groups is the state machine, driven as etcd's raft is driven and doing no
// I/O itself: messages from other nodes go in (Step), ticks go in (Tick),
// proposals go in (Propose); out of one pass over every group (Ready) come the
// entries and hard states to persist, the messages to send, batched by the
// node they go to, and the committed entries to apply. The caller persists
// every group's entries in one synced write (a group commit across groups, as
// a node's steps share one fsync today), then sends, then applies, then hands
// the batch back (Advance), which resolves the proposals whose entries were
// applied.
//
// Driver is that caller: one goroutine that ticks, drains Ready and does the
// I/O through three interfaces, a LogStore (durable raft logs), a Transport
// (messages to other nodes) and a StateMachine (what a committed entry does).
// memory.go has in-memory twins of the first two, on which the tests run
// whole clusters in one process.
//
// A proposal is the leader's alone (no forwarding): a node that does not lead
// a group refuses proposals to it with ErrNotLeader. A leader that steps down
// keeps waiting for the proposals it wrote to its log until it learns, as a
// follower, whether the next leader committed them (a leadership transfer
// always does); one known not to be committed fails with ErrNotCommitted, and
// its caller may propose it again wherever the group is led now. Only when
// the outcome stays unknown (no word within OrphanTicks) does it fail with
// ErrLeadershipLost: its caller drops what it holds and reads the state
// again from what is applied.
//
// Replicas move by conf changes (the caller decides which, see
// cluster/replicas.go): a learner is added and caught up (by snapshot when
// the log was truncated behind it), promoted, and the replica it replaces is
// removed. A removed replica destroys its log, state and data (LogStore.Destroy)
// when it applies its removal, or when told (Driver.RemoveReplica): its leader
// stops talking to it once the removal is committed, so it may never see it.
// A replica created for a leader's message that never became a member is
// dropped after a while.
package replication
