package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftrt/weft/bench/internal/harness"
	"github.com/weftrt/weft/placement"
)

var (
	repairSizes  = flag.String("repair-sizes", "10000,100000", "repair: finished instances in the cluster before the loss, comma-separated (one run each)")
	replaceAfter = flag.Duration("replace-after", 10*time.Second, "repair: the nodes' --replace-after")
	repairRate   = flag.Int("repair-rate", 20, "repair: the live load, chains started per second (each awaited: its start-to-completion time is the latency)")
	repairOne    = flag.Bool("repair-one-partition", false, "repair: put every loaded instance in one partition (its snapshot is then the whole load)")
)

// loadIDs are the ids of the instances a repair run loads: rp-NNNNNNN, or
// with -repair-one-partition only those of them that fall in partition 0.
func loadIDs(n int) []string {
	ids := make([]string, 0, n)
	for i := 0; len(ids) < n; i++ {
		id := fmt.Sprintf("rp-%09d", i)
		if !*repairOne || placement.PartitionOf(id, placement.DefaultPartitions) == 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// ---- part 6: repair after the loss of a node and its disk ----

// partRepair: for each size, a 3-node cluster with --replicas 3 is loaded
// with that many finished chains; a live load then starts repairRate chains
// a second (awaiting each) for the rest of the run. After a 20 s baseline,
// one node is SIGKILLed and its data directory deleted, and a fresh node
// (new id, empty disk) joins. The others remove the lost node after
// --replace-after and replace its replicas on the fresh one (learner,
// snapshot streamed at --snapshot-rate, promotion, removal). The time is from
// the SIGKILL to every partition having three voters on the live nodes and
// no learner; the live load's latency is compared before and during it.
func (b *bench) partRepair(ctx context.Context) error {
	layout := "spread over the 256 partitions"
	if *repairOne {
		layout = "all in partition 0 (its snapshot carries the whole load)"
	}
	b.printf("\n## 6. Repair: a node lost with its disk is replaced (`--replicas 3`, `--replace-after %s`; instances %s)\n\n", *replaceAfter, layout)
	b.printf("3 nodes; the cluster is loaded with N finished `%s` instances; a live load starts %d chains a second through the two nodes that stay and awaits each (latency = start to completion). After a 20 s baseline one node is SIGKILLed, its data directory deleted, and a fresh node joins. *Repaired* = every partition has 3 voters on the live nodes and no learner (polled every 200 ms). Snapshot bytes are what the two survivors streamed (`weft_raft_snapshot_bytes_sent_total`).\n\n", workflowName, *repairRate)
	b.printf("| instances | data per node | lost node removed after | repaired after | snapshots streamed | live p50 / p99 before | p50 / p99 during failover (kill → removal) | p50 / p99 during replacement (removal → repaired) | live failures |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range strings.Split(*repairSizes, ",") {
		size, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || size < 0 {
			return fmt.Errorf("-repair-sizes: %q is not a count", s)
		}
		if err := b.repairOnce(ctx, size); err != nil {
			return fmt.Errorf("%d instances: %w", size, err)
		}
		b.killAll()
	}
	return nil
}

func (b *bench) repairOnce(ctx context.Context, size int) error {
	label := fmt.Sprintf("repair-%d", size)
	b.extraArgs = []string{"--replace-after", replaceAfter.String()}
	defer func() { b.extraArgs = nil }()
	nodes, _, err := b.startCluster(ctx, label, 3, 3)
	if err != nil {
		return err
	}
	defer b.removeData(nodes...)
	n1, n2, victim := nodes[0], nodes[1], nodes[2]
	progress("repair %d: cluster up; loading", size)
	loadStart := time.Now()
	ids := loadIDs(size)
	if _, _, err := harness.Batch(ctx, size, 64,
		func(ctx context.Context, i int) error {
			code, body, err := b.startChain(ctx, nodes[i%3], ids[i])
			if err == nil && code != http.StatusAccepted {
				err = fmt.Errorf("%d %s", code, strings.TrimSpace(string(body)))
			}
			return err
		},
		func(ctx context.Context, i int) error {
			st, err := b.await(ctx, nodes[i%3], ids[i], false, nil)
			if err == nil {
				err = checkDone(st)
			}
			return err
		}); err != nil {
		return err
	}
	progress("repair %d: loaded in %v", size, time.Since(loadStart).Round(time.Second))
	dataSize := dirSize(n1.dir)

	live := &liveLoad{b: b, via: []*node{n1, n2}, rate: *repairRate, prefix: label + "-live"}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); live.run(lctx) }()
	defer func() { stopLoad(); wg.Wait() }()
	if err := sleep(ctx, 20*time.Second); err != nil {
		return err
	}
	before := live.between(time.Time{}, time.Now())
	sentBefore := b.metricSum(ctx, []*node{n1, n2}, "weft_raft_snapshot_bytes_sent_total")

	b.kill(victim)
	killed := time.Now()
	b.removeData(victim)
	fresh, err := b.newNode(label, "n4", true)
	if err != nil {
		return err
	}
	fresh.replicas = 3
	if err := b.start(fresh, []string{n1.gossip, n2.gossip}); err != nil {
		return err
	}
	alive := []*node{n1, n2, fresh}
	var removedAfter time.Duration
	for {
		if removedAfter == 0 && b.removed(ctx, n1, victim.name) {
			removedAfter = time.Since(killed)
		}
		if ok, _ := b.fullyReplicated(ctx, alive); ok && removedAfter > 0 {
			break
		}
		if time.Since(killed) > 30*time.Minute {
			_, why := b.fullyReplicated(ctx, alive)
			return fmt.Errorf("not repaired 30 minutes after the loss: %s", why)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	repaired := time.Since(killed)
	failover := live.between(killed, killed.Add(removedAfter))
	during := live.between(killed.Add(removedAfter), time.Now())
	sent := b.metricSum(ctx, []*node{n1, n2}, "weft_raft_snapshot_bytes_sent_total") - sentBefore
	stopLoad()
	wg.Wait()
	b.printf("| %d | %s | %v | **%v** | %s | %s / %s | %s / %s | %s / %s (%d chains) | %d |\n", size, mib(dataSize), removedAfter.Round(100*time.Millisecond),
		repaired.Round(100*time.Millisecond), mib(int64(sent)), ms(before.p(0.5)), ms(before.p(0.99)), ms(failover.p(0.5)), ms(failover.p(0.99)),
		ms(during.p(0.5)), ms(during.p(0.99)), len(during), live.failures())
	progress("repair %d: repaired %v after the kill (removed after %v); live p99 %s before, %s in the failover, %s in the replacement", size, repaired.Round(time.Millisecond),
		removedAfter.Round(time.Millisecond), ms(before.p(0.99)), ms(failover.p(0.99)), ms(during.p(0.99)))
	return nil
}

// liveLoad starts rate chains a second, each awaited, and keeps each one's
// start and latency.
type liveLoad struct {
	b      *bench
	via    []*node
	rate   int
	prefix string

	mu     sync.Mutex
	starts []time.Time
	lat    []time.Duration
	failed int
}

func (l *liveLoad) run(ctx context.Context) {
	tick := time.NewTicker(time.Second / time.Duration(l.rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := l.via[i%len(l.via)]
			id := fmt.Sprintf("%s-%06d", l.prefix, i)
			start := time.Now()
			code, _, err := l.b.startChain(ctx, n, id)
			if err == nil && code == http.StatusAccepted {
				var st status
				if st, err = l.b.await(ctx, n, id, false, nil); err == nil {
					err = checkDone(st)
				}
			} else if err == nil {
				err = fmt.Errorf("start: %d", code)
			}
			if ctx.Err() != nil {
				return
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if err != nil {
				l.failed++
				return
			}
			l.starts = append(l.starts, start)
			l.lat = append(l.lat, time.Since(start))
		}()
	}
}

type latencies []float64

func (x latencies) p(q float64) float64 {
	if len(x) == 0 {
		return 0
	}
	return harness.Percentile(x, q)
}

// between returns the latencies (ms) of the chains started in [from, to).
func (l *liveLoad) between(from, to time.Time) latencies {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out latencies
	for i, s := range l.starts {
		if !s.Before(from) && s.Before(to) {
			out = append(out, harness.Ms(l.lat[i]))
		}
	}
	slices.Sort(out)
	return out
}

func (l *liveLoad) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// removed reports whether n lists node as removed.
func (b *bench) removed(ctx context.Context, n *node, node string) bool {
	var m struct {
		Members []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"members"`
	}
	if err := b.getJSON(ctx, n.url("/api/v1/cluster/members"), &m); err != nil {
		return false
	}
	for _, x := range m.Members {
		if x.ID == node {
			return x.State == "removed"
		}
	}
	return false
}

// fullyReplicated reports whether every partition has 3 voters, all on the
// given nodes, and no learner, in each node's view of its replicas.
func (b *bench) fullyReplicated(ctx context.Context, nodes []*node) (bool, string) {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.name
	}
	seen := map[int]bool{}
	total := 0
	for _, n := range nodes {
		var doc struct {
			Partitions []struct {
				Partition int      `json:"partition"`
				Replicas  []string `json:"replicas"`
				Learners  []string `json:"learners"`
			} `json:"partitions"`
		}
		if err := b.getJSON(ctx, n.url("/api/v1/cluster/partitions"), &doc); err != nil {
			return false, err.Error()
		}
		total = len(doc.Partitions)
		for _, p := range doc.Partitions {
			if len(p.Replicas) == 0 {
				continue
			}
			seen[p.Partition] = true
			if len(p.Replicas) != 3 || len(p.Learners) > 0 {
				return false, fmt.Sprintf("%s: partition %d: replicas %v learners %v", n.name, p.Partition, p.Replicas, p.Learners)
			}
			for _, r := range p.Replicas {
				if !slices.Contains(names, r) {
					return false, fmt.Sprintf("%s: partition %d: replica on %s", n.name, p.Partition, r)
				}
			}
		}
	}
	if len(seen) != total {
		return false, fmt.Sprintf("%d of %d partitions have a replica on a live node", len(seen), total)
	}
	return true, ""
}

// metricSum adds a counter's values over nodes (0 where unreadable).
func (b *bench) metricSum(ctx context.Context, nodes []*node, name string) float64 {
	total := 0.0
	for _, n := range nodes {
		code, body, err := b.do(ctx, http.MethodGet, n.url("/metrics"), "", 10*time.Second)
		if err != nil || code != http.StatusOK {
			continue
		}
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					total += f
				}
			}
		}
	}
	return total
}

func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func ms(v float64) string { return fmt.Sprintf("%.0f ms", v) }
