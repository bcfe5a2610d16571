package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/weftrt/weft/bench/internal/harness"
	"github.com/weftrt/weft/placement"
)

// ---- part 4: failover of replicated partitions ----

// partFailover: a 3-node cluster with --replicas 3 and 300 finished chains
// (instances in every partition); then, round after round, the node leading
// some partition is SIGKILLed and an instance of that partition is read
// through another node every 10 ms until it answers 200: the failover time.
// The killed node is started again (same data directory) and the cluster
// settles before the next round. The groups are idle when the leader dies
// (quiesced): the slow case, where the survivors learn of the death from the
// broken connections or the gossip rather than from missing heartbeats.
func (b *bench) partFailover(ctx context.Context) error {
	b.printf("\n## 4. Failover: SIGKILL of a partition's leader (`--replicas 3`)\n\n")
	nodes, setup, err := b.startCluster(ctx, "failover", 3, 3)
	if err != nil {
		return err
	}
	defer b.removeData(nodes...)
	progress("failover: cluster up in %v; starting 300 chains", setup.Round(time.Millisecond))
	const chains = 300
	if _, _, err := harness.Batch(ctx, chains, 32,
		func(ctx context.Context, i int) error {
			code, body, err := b.startChain(ctx, nodes[i%3], fmt.Sprintf("fo-%04d", i))
			if err == nil && code != http.StatusAccepted {
				err = fmt.Errorf("%d %s", code, strings.TrimSpace(string(body)))
			}
			return err
		},
		func(ctx context.Context, i int) error {
			st, err := b.await(ctx, nodes[i%3], fmt.Sprintf("fo-%04d", i), false, nil)
			if err == nil {
				err = checkDone(st)
			}
			return err
		}); err != nil {
		return err
	}
	b.printf("3 nodes, `--replicas 3` (every partition a raft group over the three), %d finished `%s` instances. %d rounds: SIGKILL the node leading the partition of one instance (n1, n2, n3 in turn), then `GET /api/v1/instances/{id}` through another node every 10 ms until 200 (each request waits at most 10 s); the time is from the SIGKILL to that answer. The killed node is then started again on its data directory and the cluster settles (every partition led by its owner) before the next round.\n\n", chains, workflowName, *failoverN)
	b.printf("| round | killed | partition | first 200 after the kill | non-200 answers meanwhile |\n|---|---|---|---|---|\n")
	var times []float64
	for round := range *failoverN {
		victim := nodes[round%3]
		via := nodes[(round+1)%3]
		table, err := b.partitions(ctx, via)
		if err != nil {
			return err
		}
		id, part := "", -1
		for i := range chains {
			cand := fmt.Sprintf("fo-%04d", i)
			p := int(placement.PartitionOf(cand, len(table)))
			if table[p].Holder == victim.name {
				id, part = cand, p
				break
			}
		}
		if id == "" {
			return fmt.Errorf("round %d: no instance in a partition %s leads", round+1, victim.name)
		}
		b.kill(victim)
		killed := time.Now()
		failures := 0
		var took time.Duration
		for {
			code, _, err := b.do(ctx, http.MethodGet, via.url("/api/v1/instances/"+id), "", 10*time.Second)
			if err == nil && code == http.StatusOK {
				took = time.Since(killed)
				break
			}
			failures++
			if time.Since(killed) > time.Minute {
				return fmt.Errorf("round %d: %s not readable a minute after %s died", round+1, id, victim.name)
			}
			if err := sleep(ctx, 10*time.Millisecond); err != nil {
				return err
			}
		}
		times = append(times, took.Seconds())
		b.printf("| %d | %s | %d | %v | %d |\n", round+1, victim.name, part, took.Round(time.Millisecond), failures)
		progress("failover: round %d: %v", round+1, took.Round(time.Millisecond))
		var join []string
		for _, o := range nodes {
			if o != victim {
				join = append(join, o.gossip)
			}
		}
		if err := b.start(victim, join); err != nil {
			return err
		}
		if _, err := b.waitReady(ctx, victim, 60*time.Second); err != nil {
			return err
		}
		if _, _, err := b.waitConverged(ctx, nodes, victim.startedAt, 90*time.Second); err != nil {
			return err
		}
	}
	slices.Sort(times)
	q := func(f float64) float64 { return times[min(len(times)-1, int(f*float64(len(times))))] }
	b.printf("\nFailover, from the SIGKILL to the first 200: p50 **%.2f s**, p99 %.2f s, max %.2f s (%d rounds).\n", median(times), q(0.99), times[len(times)-1], len(times))
	return nil
}

// ---- part 5: idle CPU ----

// partIdle: the CPU a 3-node cluster spends doing nothing, with one copy of
// each partition and with three (256 raft groups per node, quiesced when idle).
func (b *bench) partIdle(ctx context.Context) error {
	b.printf("\n## 5. Idle CPU of a 3-node cluster (256 partitions)\n\n")
	b.printf("A 3-node cluster started and settled, then 10 s left alone, then each process's user+system CPU over the next 30 s, as a share of one core.\n\n| replicas | n1 | n2 | n3 |\n|---|---|---|---|\n")
	for _, replicas := range []int{1, 3} {
		nodes, _, err := b.startCluster(ctx, fmt.Sprintf("idle-r%d", replicas), 3, replicas)
		if err != nil {
			return err
		}
		if err := sleep(ctx, 10*time.Second); err != nil {
			return err
		}
		before := make([]time.Duration, len(nodes))
		for i, n := range nodes {
			before[i] = harness.ProcCPU(n.cmd.Process.Pid)
		}
		const window = 30 * time.Second
		if err := sleep(ctx, window); err != nil {
			return err
		}
		var cells []string
		for i, n := range nodes {
			used := harness.ProcCPU(n.cmd.Process.Pid) - before[i]
			cells = append(cells, fmt.Sprintf("%.1f%%", 100*used.Seconds()/window.Seconds()))
		}
		b.printf("| %d | %s |\n", replicas, strings.Join(cells, " | "))
		progress("idle: replicas %d: %s", replicas, strings.Join(cells, " "))
		for _, n := range nodes {
			b.kill(n)
		}
		b.removeData(nodes...)
	}
	return nil
}
