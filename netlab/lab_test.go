package netlab

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Tests against the fake kernel: they run as any user.

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// fakeLab is a Lab named "svclab" on a fake kernel with a temp /etc/netns.
func fakeLab(t *testing.T, k *fakeKernel) *Lab {
	t.Helper()
	cfg := Config{EtcNetnsDir: t.TempDir()}.withDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	l := newLab(cfg, k)
	l.modprobe = func(context.Context, string) error { return errFake }
	t.Cleanup(func() { l.abandon() })
	return l
}

// abandon stops the workloads without touching the network: what kill -9
// does to a Lab.
func (l *Lab) abandon() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range l.pods {
		if st.run != nil {
			st.run.stop(context.Background())
		}
	}
	l.pods = map[podKey]*podState{}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestFakeTopologyGolden(t *testing.T) {
	k := newFakeKernel()
	lab := fakeLab(t, k)
	ctx := t.Context()
	if err := lab.Up(ctx, twoNodes()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []PodSpec{
		testPod("default", "myapp-0", "node-1", "10.244.1.2"),
		testPod("kube-system", "coredns-0", "node-2", "10.244.2.2"),
	} {
		if err := lab.EnsurePod(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	checkGolden(t, "topology.golden", k.dump())

	files := map[string]string{}
	for _, name := range []string{"resolv.conf", "hosts", "hostname"} {
		b, err := os.ReadFile(filepath.Join(lab.cfg.EtcNetnsDir, PodNetnsName("svclab", "kube-system", "coredns-0"), name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	want := map[string]string{
		"resolv.conf": "nameserver 10.96.0.10\nsearch kube-system.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
		"hosts":       "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.244.2.2\tcoredns-0\n",
		"hostname":    "coredns-0\n",
	}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("pod files (-want +got):\n%s", diff)
	}
}

func TestFakeIdempotent(t *testing.T) {
	k := newFakeKernel()
	lab := fakeLab(t, k)
	ctx := t.Context()
	p := testPod("default", "a", "node-1", "10.244.1.2")
	must(t, lab.Up(ctx, twoNodes()))
	must(t, lab.EnsurePod(ctx, p))
	first := k.dump()
	run := lab.pods[podKey{"default", "a"}].run
	for range 3 {
		must(t, lab.Up(ctx, twoNodes()))
		must(t, lab.EnsurePod(ctx, p))
		must(t, lab.SyncPods(ctx, []PodSpec{p}))
	}
	if diff := cmp.Diff(first, k.dump()); diff != "" {
		t.Errorf("repeating Up/EnsurePod/SyncPods changed the kernel (-first +now):\n%s", diff)
	}
	if lab.pods[podKey{"default", "a"}].run != run {
		t.Error("repeating EnsurePod restarted an unchanged pod's workload")
	}
	for range 2 {
		must(t, lab.DeletePod(ctx, "default", "a"))
	}
	if strings.Contains(k.dump(), "pod-default-a") {
		t.Errorf("pod left after DeletePod:\n%s", k.dump())
	}
}

// TestFakeConvergesFromAnyHistory replays random histories — pods
// ensured, moved and deleted, crashes, external damage — and checks that
// Up + SyncPods always ends in exactly the state a fresh lab builds.
func TestFakeConvergesFromAnyHistory(t *testing.T) {
	nodes := twoNodes()
	pool := []PodSpec{
		testPod("default", "a", "node-1", "10.244.1.2"),
		testPod("default", "a", "node-2", "10.244.2.2"), // a moved
		testPod("default", "b", "node-1", "10.244.1.3"),
		testPod("kube-system", "dns-0", "node-2", "10.244.2.3", PortSpec{Port: 53, Protocol: "UDP"}, PortSpec{Port: 53}),
		testPod("other", "c", "node-2", "10.244.2.4", PortSpec{Port: 8080}),
	}
	desired := []PodSpec{pool[1], pool[2], pool[3]}

	ref := newFakeKernel()
	refLab := fakeLab(t, ref)
	must(t, refLab.Up(t.Context(), nodes))
	must(t, refLab.SyncPods(t.Context(), desired))
	want := ref.dump()

	for seed := range uint64(40) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			k := newFakeKernel()
			lab := fakeLab(t, k)
			ctx := t.Context()
			var history []string
			for range 12 {
				var err error
				switch op := rng.IntN(6); op {
				case 0:
					err = lab.Up(ctx, nodes)
					history = append(history, "Up")
				case 1, 2:
					p := pool[rng.IntN(len(pool))]
					err = lab.EnsurePod(ctx, p)
					history = append(history, fmt.Sprintf("EnsurePod %s/%s on %s", p.Namespace, p.Name, p.Node))
				case 3:
					p := pool[rng.IntN(len(pool))]
					err = lab.DeletePod(ctx, p.Namespace, p.Name)
					history = append(history, "DeletePod "+p.Name)
				case 4:
					lab.abandon()
					lab = fakeLab(t, k)
					history = append(history, "crash")
				case 5:
					history = append(history, k.damage(rng.IntN))
				}
				// Errors are expected (a pod before Up, a broken node);
				// only convergence at the end counts.
				_ = err
			}
			if err := lab.Up(ctx, nodes); err != nil {
				t.Fatalf("final Up after %v: %v", history, err)
			}
			if err := lab.SyncPods(ctx, desired); err != nil {
				t.Fatalf("final SyncPods after %v: %v", history, err)
			}
			if diff := cmp.Diff(want, k.dump()); diff != "" {
				t.Errorf("after %v (-fresh +converged):\n%s", history, diff)
			}
			for _, p := range desired {
				if st := lab.pods[podKey{p.Namespace, p.Name}]; st == nil || !st.run.alive() {
					t.Errorf("after %v: workload of %s/%s not running", history, p.Namespace, p.Name)
				}
			}
		})
	}
}

func TestFakeDownRemovesEverything(t *testing.T) {
	k := newFakeKernel()
	before := k.dump()
	lab := fakeLab(t, k)
	ctx := t.Context()
	must(t, lab.Up(ctx, twoNodes()))
	must(t, lab.EnsurePod(ctx, testPod("default", "a", "node-1", "10.244.1.2")))
	// Another lab's namespace and a foreign one must survive.
	must(t, k.AddNetns("svclab2-node-1"))
	must(t, k.AddNetns("svclabtest-x-host"))
	k.stale["svclab-pod-default-crashed"] = true
	must(t, os.MkdirAll(filepath.Join(lab.cfg.EtcNetnsDir, "svclab-pod-default-crashed"), 0o755))
	must(t, os.MkdirAll(filepath.Join(lab.cfg.EtcNetnsDir, "svclab2-pod-x-y"), 0o755))

	lab.abandon()
	for range 2 {
		if err := down(lab.cfg, k, lab.log); err != nil {
			t.Fatalf("down: %v", err)
		}
	}
	must(t, k.DelNetns("svclab2-node-1"))
	must(t, k.DelNetns("svclabtest-x-host"))
	if diff := cmp.Diff(before, k.dump()); diff != "" {
		t.Errorf("down left (-before +after):\n%s", diff)
	}
	ents, _ := os.ReadDir(lab.cfg.EtcNetnsDir)
	if len(ents) != 1 || ents[0].Name() != "svclab2-pod-x-y" {
		t.Errorf("/etc/netns after down: %v, want only the other lab's", ents)
	}
}

func TestFakeCloseIsDown(t *testing.T) {
	k := newFakeKernel()
	before := k.dump()
	lab := fakeLab(t, k)
	ctx := t.Context()
	must(t, lab.Up(ctx, twoNodes()))
	must(t, lab.EnsurePod(ctx, testPod("default", "a", "node-1", "10.244.1.2")))
	run := lab.pods[podKey{"default", "a"}].run
	must(t, lab.Close(ctx))
	if run.alive() {
		t.Error("workload still running after Close")
	}
	if diff := cmp.Diff(before, k.dump()); diff != "" {
		t.Errorf("Close left (-before +after):\n%s", diff)
	}
	if err := lab.EnsurePod(ctx, testPod("default", "a", "node-1", "10.244.1.2")); !errors.Is(err, ErrClosed) {
		t.Errorf("EnsurePod after Close: %v, want ErrClosed", err)
	}
	must(t, lab.Close(ctx))
}

func TestFakeErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, lab *Lab, k *fakeKernel) error
		want error // nil: any error
	}{
		{"pod before Up", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			return lab.EnsurePod(ctx, testPod("default", "a", "node-1", "10.244.1.2"))
		}, ErrUnknownNode},
		{"pod IP outside its node", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			must(t, lab.Up(ctx, twoNodes()))
			return lab.EnsurePod(ctx, testPod("default", "a", "node-1", "10.244.2.2"))
		}, ErrInvalidSpec},
		{"pod IP is the gateway", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			must(t, lab.Up(ctx, twoNodes()))
			return lab.EnsurePod(ctx, testPod("default", "a", "node-1", "10.244.1.1"))
		}, ErrInvalidSpec},
		{"IP held by another pod", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			must(t, lab.Up(ctx, twoNodes()))
			must(t, lab.EnsurePod(ctx, testPod("default", "a", "node-1", "10.244.1.2")))
			return lab.EnsurePod(ctx, testPod("default", "b", "node-1", "10.244.1.2"))
		}, ErrInvalidSpec},
		{"unknown workload", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			must(t, lab.Up(ctx, twoNodes()))
			p := testPod("default", "a", "node-1", "10.244.1.2")
			p.Workload = "nginx"
			return lab.EnsurePod(ctx, p)
		}, ErrInvalidSpec},
		{"bad protocol", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			must(t, lab.Up(ctx, twoNodes()))
			return lab.EnsurePod(ctx, testPod("default", "a", "node-1", "10.244.1.2", PortSpec{Port: 80, Protocol: "ICMP"}))
		}, ErrInvalidSpec},
		{"duplicate node", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			n := twoNodes()
			return lab.Up(ctx, append(n, n[0]))
		}, ErrInvalidSpec},
		{"node IP is the host's", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			return lab.Up(ctx, []NodeSpec{{Name: "node-1", IP: mustAddr("172.29.0.1"), PodCIDR: mustPrefix("10.244.1.0/24")}})
		}, ErrInvalidSpec},
		{"node IP in the LoadBalancer pool", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			return lab.Up(ctx, []NodeSpec{{Name: "node-1", IP: mustAddr("172.29.255.7"), PodCIDR: mustPrefix("10.244.1.0/24")}})
		}, ErrInvalidSpec},
		{"overlapping node pod CIDRs", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			return lab.Up(ctx, []NodeSpec{
				{Name: "node-1", IP: mustAddr("172.29.0.2"), PodCIDR: mustPrefix("10.244.0.0/23")},
				{Name: "node-2", IP: mustAddr("172.29.0.3"), PodCIDR: mustPrefix("10.244.1.0/24")},
			})
		}, ErrInvalidSpec},
		{"no br_netfilter and modprobe fails", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			k.bridgeNF = false
			return lab.Up(ctx, twoNodes())
		}, ErrBridgeNetfilter},
		{"a foreign link with the host link's name", func(t *testing.T, lab *Lab, k *fakeKernel) error {
			k.ns[""].links["svclab0"] = &fakeLink{name: "svclab0", kind: "bridge", ns: k.ns[""]}
			return lab.Up(ctx, twoNodes())
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			lab := fakeLab(t, k)
			err := tt.run(t, lab, k)
			if tt.want == nil {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFakeModprobeLoadsBridgeNetfilter(t *testing.T) {
	k := newFakeKernel()
	k.bridgeNF = false
	lab := fakeLab(t, k)
	var loaded []string
	lab.modprobe = func(_ context.Context, m string) error {
		loaded = append(loaded, m)
		k.mu.Lock()
		k.bridgeNF = true
		for _, n := range k.ns { // like loading the module: every netns gets the sysctl
			n.sysctls[bridgeNFKey] = "1"
		}
		k.mu.Unlock()
		return nil
	}
	must(t, lab.Up(t.Context(), twoNodes()))
	if diff := cmp.Diff([]string{"br_netfilter"}, loaded); diff != "" {
		t.Errorf("modprobe calls (-want +got):\n%s", diff)
	}
}

func TestFakeWaitsForLinks(t *testing.T) {
	k := newFakeKernel()
	lab := fakeLab(t, k)
	must(t, lab.Up(t.Context(), twoNodes()))
	k.mu.Lock()
	k.notReady = 3 // the kernel's link watcher lags behind
	k.mu.Unlock()
	must(t, lab.EnsurePod(t.Context(), testPod("default", "a", "node-1", "10.244.1.2")))
	if k.notReady != 0 {
		t.Errorf("EnsurePod returned before the links were ready (%d answers left)", k.notReady)
	}
}

// TestFakeWorkloads checks that pods run the workload they name, with their
// spec, sockets in their namespace, and that the echo answers.
func TestFakeWorkloads(t *testing.T) {
	k := newFakeKernel()
	got := make(chan WorkloadEnv, 1)
	lab := fakeLab(t, k)
	lab.workloads["dns"] = WorkloadFunc(func(ctx context.Context, env WorkloadEnv) error {
		pc, err := env.ListenPacket("udp", ":53")
		if err != nil {
			return err
		}
		defer pc.Close()
		got <- env
		env.Ready()
		<-ctx.Done()
		return nil
	})
	ctx := t.Context()
	must(t, lab.Up(ctx, twoNodes()))
	dns := testPod("kube-system", "coredns", "node-2", "10.244.2.9", PortSpec{Port: 53, Protocol: "udp"})
	dns.Workload = "dns"
	must(t, lab.EnsurePod(ctx, dns))
	env := <-got
	want := dns
	want.Ports = []PortSpec{{Port: 53, Protocol: "UDP"}}
	want.Hostname = "coredns"
	if diff := cmp.Diff(want, env.Pod, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("workload env pod (-want +got):\n%s", diff)
	}
	dnsNS := PodNetnsName("svclab", "kube-system", "coredns")
	if k.listenAddr(dnsNS, "udp", ":53") == "" {
		t.Errorf("dns workload did not listen inside %s: %v", dnsNS, k.listens)
	}

	web := testPod("default", "web", "node-1", "10.244.1.5", PortSpec{Port: 80})
	must(t, lab.EnsurePod(ctx, web))
	addr := k.listenAddr(PodNetnsName("svclab", "default", "web"), "tcp", ":80")
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r EchoReply
	must(t, json.NewDecoder(resp.Body).Decode(&r))
	if r.Pod != "web" || r.Node != "node-1" || r.IP != "10.244.1.5" {
		t.Errorf("echo in the fake lab answered %+v", r)
	}

	// Changing the ports restarts the workload on the new port.
	web.Ports = []PortSpec{{Port: 8080}}
	must(t, lab.EnsurePod(ctx, web))
	if k.listenAddr(PodNetnsName("svclab", "default", "web"), "tcp", ":8080") == "" {
		t.Error("changed ports were not served")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("old port still served after the ports changed")
	}
}

// TestFakeWorkloadFailure: a workload that cannot start fails EnsurePod
// (and is retried by the next EnsurePod).
func TestFakeWorkloadFailure(t *testing.T) {
	k := newFakeKernel()
	lab := fakeLab(t, k)
	fail := true
	lab.workloads["flaky"] = WorkloadFunc(func(ctx context.Context, env WorkloadEnv) error {
		if fail {
			return errFake
		}
		env.Ready()
		<-ctx.Done()
		return nil
	})
	ctx := t.Context()
	must(t, lab.Up(ctx, twoNodes()))
	p := testPod("default", "a", "node-1", "10.244.1.2")
	p.Workload = "flaky"
	if err := lab.EnsurePod(ctx, p); !errors.Is(err, errFake) {
		t.Fatalf("EnsurePod with a failing workload: %v", err)
	}
	fail = false
	must(t, lab.EnsurePod(ctx, p))
	if st := lab.pods[podKey{"default", "a"}]; st == nil || !st.run.alive() {
		t.Error("workload not running after the retry")
	}
}

// TestFakeUpWithNewRangesDropsOldRoutes: after a crash, `up` with another
// pod CIDR replaces the host routes the previous run recorded.
func TestFakeUpWithNewRangesDropsOldRoutes(t *testing.T) {
	k := newFakeKernel()
	old := fakeLab(t, k)
	old.cfg.PodCIDR = mustPrefix("10.50.0.0/16")
	nodes := []NodeSpec{{Name: "node-1", IP: mustAddr("172.29.0.2"), PodCIDR: mustPrefix("10.50.1.0/24")}}
	must(t, old.Up(t.Context(), nodes))
	old.abandon()

	lab := fakeLab(t, k)
	must(t, lab.Up(t.Context(), twoNodes()))
	c, _ := k.Open("")
	rs, _ := c.Routes()
	var got []string
	for _, r := range rs {
		if r.Proto == routeProto {
			got = append(got, r.String())
		}
	}
	want := []string{"unreachable 10.244.0.0/16", "unreachable 10.96.0.0/12", "172.29.255.0/24 nexthop via 172.29.0.2 dev svclab0 nexthop via 172.29.0.3 dev svclab0"}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("host routes (-want +got):\n%s", diff)
	}
}
