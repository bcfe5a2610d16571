package replication

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a driver's Prometheus collectors.
type metrics struct {
	proposals        prometheus.Counter
	proposalsFailed  prometheus.Counter
	commit           prometheus.Histogram
	leadershipGained prometheus.Counter
	leadershipLost   prometheus.Counter
	snapshots        prometheus.Counter
	removed          prometheus.Counter
	stalls           prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		proposals: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_proposals_total",
			Help: "Entries (workflow steps) proposed to the raft groups this node leads."}),
		proposalsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_proposals_failed_total",
			Help: "Proposals that failed: not the leader, leadership lost before the entry applied, or no quorum in time."}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "weft_raft_commit_duration_seconds",
			Help:    "From proposing a step to its entry applied here: a quorum's fsyncs and a round trip.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		leadershipGained: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_leadership_gained_total",
			Help: "Times this node started serving a partition as its group's leader (elections won, transfers taken)."}),
		leadershipLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_leadership_lost_total",
			Help: "Times this node stopped leading a partition's group (a newer term, a transfer, a lost quorum)."}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_snapshots_installed_total",
			Help: "Snapshots installed on this node: replicas caught up from a copy of the partition instead of the log."}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_replicas_removed_total",
			Help: "Replicas this node destroyed after its groups removed them (a replica moved to another node, or a node leaving)."}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_raft_driver_stalls_total",
			Help: "Times the replication driver was found stuck: a Ready pass running, or its lock held, for 30 s (the log has every goroutine's stack)."}),
	}
}

// Collectors returns the driver's Prometheus collectors, gauges of its groups
// included.
func (d *Driver) Collectors() []prometheus.Collector {
	m := d.metrics
	count := func(pred func(*group) bool) func() float64 {
		return func() float64 {
			d.mu.Lock()
			defer d.mu.Unlock()
			n := 0
			for _, g := range d.gs.groups {
				if pred(g) {
					n++
				}
			}
			return float64(n)
		}
	}
	return []prometheus.Collector{m.proposals, m.proposalsFailed, m.commit, m.leadershipGained, m.leadershipLost, m.snapshots, m.removed, m.stalls,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_raft_groups", Help: "Raft groups (partitions) this node has a replica of."},
			count(func(*group) bool { return true })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_raft_groups_leading", Help: "Raft groups this node leads and serves."},
			count(func(g *group) bool { return g.serving })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_raft_groups_quiesced", Help: "Raft groups of this node that are idle and quiesced (no ticks, no heartbeats)."},
			count(func(g *group) bool { return g.quiesced })),
	}
}
