package actors

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the host's Prometheus collectors; the server registers them.
type metrics struct {
	started    *prometheus.CounterVec
	finished   *prometheus.CounterVec
	activities *prometheus.CounterVec
	purged     *prometheus.CounterVec
	stalled    *prometheus.CounterVec
	actLatency *prometheus.HistogramVec
	commit     prometheus.Histogram
	gauges     []prometheus.Collector
}

func newMetrics(h *Host) *metrics {
	m := &metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_workflows_started_total", Help: "Workflow instances started, by workflow name.",
		}, []string{"workflow"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_workflows_finished_total", Help: "Workflow instances finished, by workflow name and status (COMPLETED, FAILED, TERMINATED).",
		}, []string{"workflow", "status"}),
		activities: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_activity_executions_total", Help: "Activity attempts run on this node, by activity name and outcome (ok, failed).",
		}, []string{"activity", "outcome"}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_instances_purged_total", Help: "Finished instances purged, by reason: retention (their retention ran out; children with their parents) or request (a purge asked for).",
		}, []string{"reason"}),
		stalled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_instances_stalled_total", Help: "Workflow instances that stalled on this node, by workflow name and reason (PATCH_MISMATCH, VERSION_NOT_AVAILABLE): their code here cannot continue them.",
		}, []string{"workflow", "reason"}),
		actLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_activity_duration_seconds", Help: "Duration of activity attempts on this node.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}, []string{"activity"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_commit_duration_seconds", Help: "Duration of one workflow step's synced commit.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
	}
	m.gauges = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_messages_pending",
			Help: "Messages between instances (events, child starts and results, terminations, acknowledgements) sent from this node and not yet committed by their receiver."},
			func() float64 { return float64(h.PendingDeliveries()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_messages_oldest_pending_seconds",
			Help: "Age of the oldest message waiting to be retried because its receiver's partition could not take it (0: none waits)."},
			func() float64 { return h.oldestParked().Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "weft_message_retries_total",
			Help: "Delivery attempts of messages between instances that the receiver did not take (partition unavailable, no answer in time) and that were scheduled again."},
			func() float64 { return float64(h.deliveries.retries.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_active_instances", Help: "Workflow instances held in memory (activated actors)."},
			func() float64 { return float64(h.Active()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_reminders_in_memory", Help: "Reminders due soon, held in the in-memory window."},
			func() float64 { return float64(h.rem.Pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_activities_queued", Help: "Activity attempts waiting for a free slot."},
			func() float64 { h.actMu.Lock(); defer h.actMu.Unlock(); return float64(len(h.actQueue)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_activities_running", Help: "Activity attempts running on this node."},
			func() float64 { h.actMu.Lock(); defer h.actMu.Unlock(); return float64(h.actRunning) }),
	}
	if h.remote != nil {
		m.gauges = append(m.gauges,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_remote_workers", Help: "Workers connected over the durabletask protocol."},
				func() float64 { n, _ := h.remote.Workers(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_remote_work_queued", Help: "Work items waiting for a remote worker."},
				func() float64 { _, n := h.remote.Workers(); return float64(n) }))
	}
	return m
}

// Collectors returns the host's Prometheus collectors.
func (h *Host) Collectors() []prometheus.Collector {
	m := h.metrics
	return append([]prometheus.Collector{m.started, m.finished, m.activities, m.purged, m.stalled, m.actLatency, m.commit}, m.gauges...)
}
