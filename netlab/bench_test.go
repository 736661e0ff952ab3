package netlab

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Benchmarks (root): each lab runs in its own throwaway host namespace.
//
//	go test ./netlab -run '^$' -bench . -benchtime 20x

// benchLab creates a throwaway host netns and a lab config; teardown runs
// Down and deletes the host netns (also registered as a cleanup).
func benchLab(b *testing.B) (Config, func()) {
	b.Helper()
	requireRoot(b)
	n := labSeq.Add(1)
	hostName := fmt.Sprintf("svclabtest-%s%d-host", runID, n)
	k := newLinuxKernel(Config{})
	if err := k.AddNetns(hostName); err != nil {
		b.Fatal(err)
	}
	etc, err := os.MkdirTemp("", "netlab-bench-etc")
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Name: fmt.Sprintf("slt%s%d", runID, n), HostNetns: k.path(hostName), EtcNetnsDir: etc}
	done := false
	teardown := func() {
		if done {
			return
		}
		done = true
		if err := Down(cfg); err != nil {
			b.Errorf("Down: %v", err)
		}
		k.DelNetns(hostName)
		os.RemoveAll(etc)
	}
	b.Cleanup(teardown)
	return cfg, teardown
}

func benchNodes(n int) []NodeSpec {
	var nodes []NodeSpec
	for i := 1; i <= n; i++ {
		nodes = append(nodes, NodeSpec{
			Name:    fmt.Sprintf("node-%d", i),
			IP:      netip.AddrFrom4([4]byte{172, 29, 0, byte(i + 1)}),
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24),
		})
	}
	return nodes
}

// benchPod is the i-th pod spread over nodes (250 per node).
func benchPod(i, nodes int) PodSpec {
	node := i%nodes + 1
	host := i/nodes + 2
	return PodSpec{
		Namespace: "bench", Name: fmt.Sprintf("pod-%d", i), Node: fmt.Sprintf("node-%d", node),
		IP:    netip.AddrFrom4([4]byte{10, 244, byte(node), byte(host)}),
		Ports: []PortSpec{{Port: 80}, {Port: 53, Protocol: "UDP"}},
	}
}

func BenchmarkUp3Nodes(b *testing.B) {
	var downTime time.Duration
	for b.Loop() {
		b.StopTimer()
		cfg, teardown := benchLab(b)
		lab, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := lab.Up(context.Background(), benchNodes(3)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		start := time.Now()
		if err := lab.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		downTime += time.Since(start)
		teardown()
		b.StartTimer()
	}
	b.ReportMetric(float64(downTime.Milliseconds())/float64(b.N), "ms-down/op")
}

func BenchmarkEnsurePod(b *testing.B) {
	const nodes = 16 // 16 × 250 pods of capacity
	cfg, teardown := benchLab(b)
	defer teardown()
	lab, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer lab.Close(context.Background())
	if err := lab.Up(context.Background(), benchNodes(nodes)); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if i >= nodes*250 {
			b.Fatalf("more than %d pods: use -benchtime Nx", nodes*250)
		}
		if err := lab.EnsurePod(context.Background(), benchPod(i, nodes)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkEnsure1000Pods creates 1,000 echo pods on 4 nodes and reports
// the total time and the process's resident memory with all of them
// serving.
func BenchmarkEnsure1000Pods(b *testing.B) {
	const nodes, pods = 4, 1000
	var total, closeTime time.Duration
	var rss float64
	leaked := 0
	for b.Loop() {
		b.StopTimer()
		fdsBefore := openFDs(b)
		cfg, teardown := benchLab(b)
		lab, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := lab.Up(context.Background(), benchNodes(nodes)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for i := range pods {
			if err := lab.EnsurePod(context.Background(), benchPod(i, nodes)); err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(start)
		b.StopTimer()
		rss = max(rss, vmRSSMB(b))
		start = time.Now()
		if err := lab.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		closeTime += time.Since(start)
		teardown()
		leaked = max(leaked, openFDs(b)-fdsBefore)
		b.StartTimer()
	}
	b.ReportMetric(float64(leaked), "fds-leaked")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/1000pods")
	b.ReportMetric(rss, "MB-RSS")
	b.ReportMetric(closeTime.Seconds()/float64(b.N), "s-close")
}

// openFDs counts the process's open file descriptors.
func openFDs(b *testing.B) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	return len(ents)
}

// vmRSSMB reads VmRSS from /proc/self/status.
func vmRSSMB(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
