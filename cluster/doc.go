// Package cluster makes weft nodes one cluster. Its parts, from the bottom:
//
//   - Membership (membership.go): gossip with hashicorp/memberlist, which nodes
//     make up the cluster, what each advertises (its addresses, partition count
//     and start epoch) and whether each is alive, left gracefully or dead. A
//     cluster is isolated by its name (memberlist's Label, checked on every
//     packet and stream) and, optionally, by a shared gossip key (AES-GCM).
//     Nodes whose partition counts differ cannot form one cluster: each refuses
//     the other. memberlist does not report that a node is merely suspected,
//     nor whether a node that went away left or died; Membership tells the two
//     apart through the Leaving flag that Leave gossips before memberlist's own
//     leave message.
//   - Registry (registry.go): the replicated record of who is registered and
//     which partitions each node serves, in which raft term; a CRDT carried
//     by memberlist's push/pull and broadcasts. Removals of lost nodes
//     (removal.go) travel with it.
//   - Transport (transport.go): node-to-node requests over protoactor-go remote,
//     one protobuf envelope (package wire) carrying msgpack payloads.
//   - Node (node.go, reconcile.go): routes every message, read and activity of
//     a runtime's host to the node that should handle it. The rules it keeps
//     are in node.go.
//   - Replicas (replicas.go, replica_plan.go, replica_gc.go): every partition
//     is a raft group (package replication) over its replicas; its leader
//     serves it, and moves its replicas to where placement puts them on
//     joins, leaves and removals, one configuration change at a time.
//
// Who owns a partition is placement's rule (placement/rendezvous.go); this
// package decides only where the data is and who may serve it.
package cluster
