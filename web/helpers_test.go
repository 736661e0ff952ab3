package web

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/svclab/svclab/dataplane"
)

var (
	update     = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")
	updateDump = flag.Bool("update-dump", false, "regenerate testdata/node-*.save through the kernel (root; a throwaway netns via unshare)")
)

// labClusterCIDR is the pod network of testdata/lab.yaml.
var labClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")

// labNodes are the test lab's nodes and their addresses.
var labNodes = []TopoNode{
	{Name: "node-1", IP: "172.29.0.2", PodCIDR: "10.244.1.0/24", Ready: true, Netns: "svclab-node-1", Bridge: "cni0", BridgeIP: "10.244.1.1"},
	{Name: "node-2", IP: "172.29.0.3", PodCIDR: "10.244.2.0/24", Ready: true, Netns: "svclab-node-2", Bridge: "cni0", BridgeIP: "10.244.2.1"},
}

// assertGolden compares got with testdata/name, rewriting it with -update.
func assertGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("write golden %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s (run with -update to create): %v", path, err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// labInput renders testdata/lab.yaml for a node, as kube-proxy would.
func labInput(t testing.TB, node TopoNode) dataplane.Input {
	t.Helper()
	f, err := os.Open("testdata/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, err := dataplane.ManifestInput(f, dataplane.Node{Name: node.Name, IPs: []netip.Addr{netip.MustParseAddr(node.IP)}},
		dataplane.Config{ClusterCIDR: labClusterCIDR})
	if err != nil {
		t.Fatalf("render testdata/lab.yaml: %v", err)
	}
	return in
}

// labTopology is the Topology of testdata/lab.yaml: its Services, and its
// pods as their EndpointSlices list them.
func labTopology(t testing.TB) *Topology {
	t.Helper()
	in := labInput(t, labNodes[0])
	topo := &Topology{
		Host:        TopoHost{Name: "host", IP: "172.29.0.1", Link: "svclab0"},
		ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12", UnderlayCIDR: "172.29.0.0/16",
		Nodes: slices.Clone(labNodes),
	}
	seen := map[string]bool{}
	for _, s := range in.Services {
		ts := TopoService{Namespace: s.Namespace, Name: s.Name, Type: string(s.Spec.Type), ClusterIP: s.Spec.ClusterIP,
			ExternalName: s.Spec.ExternalName, ExternalIPs: s.Spec.ExternalIPs, Labels: s.Labels, Annotations: s.Annotations,
			ExternalTrafficPolicy: string(s.Spec.ExternalTrafficPolicy), SessionAffinity: string(s.Spec.SessionAffinity)}
		for _, p := range s.Spec.Ports {
			ts.Ports = append(ts.Ports, TopoServicePort{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol), TargetPort: p.TargetPort.String(), NodePort: p.NodePort})
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ts.LBIPs = append(ts.LBIPs, ing.IP)
		}
		for _, es := range in.EndpointSlices {
			if es.Namespace != s.Namespace || es.Labels["kubernetes.io/service-name"] != s.Name {
				continue
			}
			for _, ep := range es.Endpoints {
				te := TopoEndpoint{IP: ep.Addresses[0], Ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready}
				if len(es.Ports) > 0 && es.Ports[0].Port != nil {
					te.Port = *es.Ports[0].Port
				}
				if ep.NodeName != nil {
					te.Node = *ep.NodeName
				}
				if ep.TargetRef != nil {
					te.Pod = ep.TargetRef.Namespace + "/" + ep.TargetRef.Name
					if !seen[te.Pod] {
						seen[te.Pod] = true
						p := TopoPod{Namespace: ep.TargetRef.Namespace, Name: ep.TargetRef.Name, IP: te.IP, Node: te.Node, Ready: te.Ready}
						for _, ep := range es.Ports {
							p.Ports = append(p.Ports, TopoPort{Port: *ep.Port, Protocol: string(*ep.Protocol)})
						}
						topo.Pods = append(topo.Pods, p)
					}
				}
				ts.Endpoints = append(ts.Endpoints, te)
			}
		}
		topo.Services = append(topo.Services, ts)
	}
	slices.SortFunc(topo.Pods, func(a, b TopoPod) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	for _, n := range labNodes {
		topo.Links = append(topo.Links, TopoLink{Kind: "underlay", A: "host", IfA: "svclab0", B: n.Name, IfB: "eth0"})
	}
	for _, p := range topo.Pods {
		topo.Links = append(topo.Links, TopoLink{Kind: "veth", A: p.Node, IfA: "cni0", B: p.Namespace + "/" + p.Name, IfB: "eth0"})
	}
	return topo
}

// loadDump parses testdata/NODE.save (an `iptables-save -c` of the lab).
func loadDump(t testing.TB, node string) *dataplane.Ruleset {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", node+".save"))
	if err != nil {
		t.Fatalf("read dump (regenerate with -update-dump as root): %v", err)
	}
	rs, err := dataplane.ParseSave(data)
	if err != nil {
		t.Fatalf("parse dump: %v", err)
	}
	return rs
}

// TestGenerateDumps regenerates testdata/node-*.save with -update-dump: the
// rendered payload of testdata/lab.yaml goes through the real kernel
// (iptables-restore and kube-proxy's jump rules in a throwaway network
// namespace made by `unshare --net`, gone when the shell exits), comes back
// with `iptables-save -c`, and gets deterministic made-up counters.
func TestGenerateDumps(t *testing.T) {
	if !*updateDump {
		t.Skip("run with -update-dump to regenerate the dumps")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{"unshare", "iptables", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	for _, node := range labNodes {
		payload := dataplane.Render(labInput(t, node)).Payload
		dir := t.TempDir()
		pf := filepath.Join(dir, "payload")
		if err := os.WriteFile(pf, payload, 0o644); err != nil {
			t.Fatal(err)
		}
		var script strings.Builder
		script.WriteString("set -e\n")
		for _, tb := range dataplane.CanaryTables {
			fmt.Fprintf(&script, "iptables -t %s -N %s\n", tb, dataplane.CanaryChain)
		}
		declared := map[string]bool{}
		for _, j := range dataplane.JumpRules {
			key := string(j.Table) + " " + j.DstChain
			if !declared[key] {
				declared[key] = true
				fmt.Fprintf(&script, "iptables -t %s -N %s\n", j.Table, j.DstChain)
			}
		}
		for _, j := range dataplane.JumpRules {
			fmt.Fprintf(&script, "iptables -t %s -I %s 1 %s\n", j.Table, j.SrcChain, shellWords(j.Args()))
		}
		fmt.Fprintf(&script, "iptables-restore --noflush < %s\n", pf)
		script.WriteString("iptables-save -c -t filter\niptables-save -c -t nat\n")
		cmd := exec.Command("unshare", "--net", "sh", "-c", script.String())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kernel round trip for %s: %v\n%s", node.Name, err, stderr.String())
		}
		dump := withCounters(string(out))
		if err := os.WriteFile(filepath.Join("testdata", node.Name+".save"), []byte(dump), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func shellWords(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

var (
	counterRE = regexp.MustCompile(`^\[0:0\] `)
	policyRE  = regexp.MustCompile(`^(:\S+ (?:ACCEPT|DROP)) \[0:0\]$`)
	dateRE    = regexp.MustCompile(`(?m)^# (Generated|Completed) .*$`)
)

// withCounters replaces the dump's zero counters by small deterministic
// ones (a hash of the line) and drops the timestamps.
func withCounters(dump string) string {
	dump = dateRE.ReplaceAllString(dump, "# $1 by iptables-save (svclab web testdata)")
	lines := strings.Split(dump, "\n")
	for i, l := range lines {
		h := fnv.New32a()
		h.Write([]byte(l))
		n := h.Sum32()
		pk := uint64(n % 23)
		by := pk*60 + uint64(n%7)*pk*12
		switch {
		case counterRE.MatchString(l):
			lines[i] = "[" + strconv.FormatUint(pk, 10) + ":" + strconv.FormatUint(by, 10) + "] " + l[len("[0:0] "):]
		case policyRE.MatchString(l):
			m := policyRE.FindStringSubmatch(l)
			lines[i] = m[1] + " [" + strconv.FormatUint(pk*7, 10) + ":" + strconv.FormatUint(by*7, 10) + "]"
		}
	}
	return strings.Join(lines, "\n")
}

// fakeBackend serves fixed rules and topology. Each Rules call parses the
// node's dump again and, if bump names a rule ("TABLE/CHAIN/NUM"), adds
// calls×bumpBy packets to it, as a live kernel's counters move.
type fakeBackend struct {
	mu       sync.Mutex
	dumps    map[string][]byte
	topo     *Topology
	netns    map[string]string
	calls    map[string]int
	bump     string
	bumpBy   uint64
	probe    func(ProbeRequest) (*ProbeResult, error)
	probes   []ProbeRequest
	fixedRS  map[string]*dataplane.Ruleset // returned as is when set
	topoErr  error
	rulesErr error
	held     map[string]*heldGraph // graph requests held back, by their service parameter
}

// heldGraph holds back the graph requests of one selection: arrived is
// closed when the first one comes in, and they all wait until release is
// closed (or the client goes away).
type heldGraph struct {
	arrived, release chan struct{}
	arrivedOnce      sync.Once
}

// holdGraph makes GET /lab/v1/graph requests whose service parameter is
// exactly service wait until release is called, as a slow node's answer
// would. It only acts on a server made by serveUI; t.Cleanup releases them.
func (f *fakeBackend) holdGraph(t testing.TB, service string) (arrived <-chan struct{}, release func()) {
	t.Helper()
	h := &heldGraph{arrived: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	if f.held == nil {
		f.held = map[string]*heldGraph{}
	}
	f.held[service] = h
	f.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(h.release) }) }
	t.Cleanup(release)
	return h.arrived, release
}

// delayGraphs wraps the UI's handler with the holds of holdGraph.
func (f *fakeBackend) delayGraphs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/lab/v1/graph" {
			f.mu.Lock()
			h := f.held[r.URL.Query().Get("service")]
			f.mu.Unlock()
			if h != nil {
				h.arrivedOnce.Do(func() { close(h.arrived) })
				select {
				case <-h.release:
				case <-r.Context().Done():
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

var _ Backend = (*fakeBackend)(nil)

func newFakeBackend(t testing.TB) *fakeBackend {
	t.Helper()
	f := &fakeBackend{dumps: map[string][]byte{}, topo: labTopology(t), calls: map[string]int{}, netns: map[string]string{}}
	for _, n := range labNodes {
		data, err := os.ReadFile(filepath.Join("testdata", n.Name+".save"))
		if err != nil {
			t.Fatalf("read dump: %v", err)
		}
		f.dumps[n.Name] = data
	}
	return f
}

func (f *fakeBackend) Nodes(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.dumps {
		out = append(out, n)
	}
	for n := range f.fixedRS {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeBackend) Rules(_ context.Context, node string) (*dataplane.Ruleset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rulesErr != nil {
		return nil, f.rulesErr
	}
	if rs := f.fixedRS[node]; rs != nil {
		return rs, nil
	}
	data, ok := f.dumps[node]
	if !ok {
		return nil, fmt.Errorf("node %q: %w", node, ErrUnknownNode)
	}
	f.calls[node]++
	rs, err := dataplane.ParseSave(data)
	if err != nil {
		return nil, err
	}
	if f.bump != "" {
		parts := strings.SplitN(f.bump, "/", 3)
		num, _ := strconv.Atoi(parts[2])
		if c := rs.Chain(dataplane.Table(parts[0]), parts[1]); c != nil && num >= 1 && num <= len(c.Rules) {
			r := c.Rules[num-1]
			if r.Counters == nil {
				r.Counters = &dataplane.Counters{}
			}
			r.Counters.Packets += uint64(f.calls[node]) * f.bumpBy
			r.Counters.Bytes += uint64(f.calls[node]) * f.bumpBy * 60
		}
	}
	return rs, nil
}

func (f *fakeBackend) Topology(context.Context) (*Topology, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.topo, f.topoErr
}

func (f *fakeBackend) Probe(_ context.Context, req ProbeRequest) (*ProbeResult, error) {
	f.mu.Lock()
	f.probes = append(f.probes, req)
	probe := f.probe
	f.mu.Unlock()
	if probe == nil {
		return nil, errors.New("no probe configured")
	}
	return probe(req)
}

func (f *fakeBackend) NodeNetns(node string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.netns[node]
}

// podIP returns the IP of a pod in the lab topology.
func podIP(t testing.TB, topo *Topology, nsName string) string {
	t.Helper()
	for _, p := range topo.Pods {
		if p.Namespace+"/"+p.Name == nsName {
			return p.IP
		}
	}
	t.Fatalf("no pod %s", nsName)
	return ""
}
