// Package cluster is weft's gossip membership: which nodes make up the cluster,
// what each advertises (its addresses, partition count and start epoch), and
// whether each is alive, left gracefully or dead. It is built on
// hashicorp/memberlist and does only membership: who owns a partition is
// placement's rule, and messages between nodes travel elsewhere.
//
// A cluster is isolated by its name (memberlist's Label, checked on every packet
// and stream) and, optionally, by a shared gossip key (AES-GCM over every
// message). Nodes whose partition counts differ cannot form one cluster, since
// they would map the same key to different partitions: each refuses the other
// when one tries to join, and refuses to hear of it through gossip.
//
// memberlist does not report that a node is merely suspected, nor whether a
// node that went away left or died; Membership tells the two apart through the
// Leaving flag that Leave gossips in the node's metadata before memberlist's own
// leave message, so a Member is alive, left or dead.
package cluster
