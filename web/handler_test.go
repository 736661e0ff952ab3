package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/mux"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/dataplane"
)

func newTestHandler(t *testing.T, b Backend, opts Options) http.Handler {
	t.Helper()
	if !opts.ClusterCIDR.IsValid() {
		opts.ClusterCIDR = labClusterCIDR
	}
	if opts.Examples == nil {
		opts.Examples = os.DirFS("../examples") // the files svclab embeds
	}
	return NewHandler(b, opts)
}

// do runs one request against h; remote is the client address.
func do(h http.Handler, method, target, remote, body string, hdr map[string]string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if remote != "" {
		req.RemoteAddr = remote
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if req.Host == "example.com" {
		req.Host = "127.0.0.1:8080"
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decodeStatus(t *testing.T, w *httptest.ResponseRecorder) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatalf("decode Status %q: %v", w.Body.String(), err)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" {
		t.Errorf("Status kind/apiVersion = %s/%s", st.Kind, st.APIVersion)
	}
	return st
}

func TestGraphEndpointFormats(t *testing.T) {
	h := newTestHandler(t, newFakeBackend(t), Options{})
	const q = "/lab/v1/graph?node=node-1&service=default/testsvc"
	w := do(h, "GET", q, "", "", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("json: %d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var g Graph
	if err := json.Unmarshal(w.Body.Bytes(), &g); err != nil {
		t.Fatal(err)
	}
	// The JSON is the graph the model builds (the same pods from the topology).
	want := testsvcGraph(t)
	if diff := cmp.Diff(describeGraph(want, true), describeGraph(&g, true)); diff != "" {
		t.Errorf("graph JSON differs from the model (-want +got):\n%s", diff)
	}
	for format, body := range map[string]string{"dot": want.DOT(), "mermaid": want.Mermaid(), "svg": want.SVG()} {
		w := do(h, "GET", q+"&format="+format, "", "", nil)
		if w.Code != 200 || w.Body.String() != body {
			t.Errorf("format=%s: %d, body differs from the model's output", format, w.Code)
		}
	}
	if ct := do(h, "GET", q+"&format=svg", "", "", nil).Header().Get("Content-Type"); ct != "image/svg+xml" {
		t.Errorf("svg content type %q", ct)
	}
}

func TestGraphEndpointErrors(t *testing.T) {
	h := newTestHandler(t, newFakeBackend(t), Options{})
	tests := []struct {
		name, method, target string
		code                 int32
		reason               metav1.StatusReason
	}{
		{"unknown node", "GET", "/lab/v1/graph?node=node-9", 404, metav1.StatusReasonNotFound},
		{"bad table", "GET", "/lab/v1/graph?table=mangle", 400, metav1.StatusReasonBadRequest},
		{"bad format", "GET", "/lab/v1/graph?format=png", 400, metav1.StatusReasonBadRequest},
		{"bad service", "GET", "/lab/v1/graph?service=testsvc", 400, metav1.StatusReasonBadRequest},
		{"bad limit", "GET", "/lab/v1/services?limit=-1", 400, metav1.StatusReasonBadRequest},
		{"post graph", "POST", "/lab/v1/graph", 405, metav1.StatusReasonMethodNotAllowed},
		{"get trace", "GET", "/lab/v1/trace", 405, metav1.StatusReasonMethodNotAllowed},
		{"unknown path", "GET", "/lab/v1/nothing", 404, metav1.StatusReasonNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(h, tt.method, tt.target, "", "", nil)
			st := decodeStatus(t, w)
			if int32(w.Code) != tt.code || st.Code != tt.code || st.Reason != tt.reason || st.Status != metav1.StatusFailure {
				t.Errorf("got HTTP %d, Status %d %s %s: %s", w.Code, st.Code, st.Reason, st.Status, st.Message)
			}
		})
	}
}

func TestBackendErrorIsInternalStatus(t *testing.T) {
	b := newFakeBackend(t)
	b.rulesErr = errors.New("iptables-save: exit status 1")
	w := do(newTestHandler(t, b, Options{}), "GET", "/lab/v1/graph?node=node-1", "", "", nil)
	st := decodeStatus(t, w)
	if w.Code != 500 || st.Reason != metav1.StatusReasonInternalError || !strings.Contains(st.Message, "iptables-save") {
		t.Errorf("got %d %s %q", w.Code, st.Reason, st.Message)
	}
}

func TestCountersEndpoint(t *testing.T) {
	b := newFakeBackend(t)
	b.bump, b.bumpBy = "nat/KUBE-SVC-QAIWDPZBWUTCVGO3/3", 5
	h := newTestHandler(t, b, Options{})
	var g Graph
	if err := json.Unmarshal(do(h, "GET", "/lab/v1/graph?node=node-1&service=default/testsvc", "", "", nil).Body.Bytes(), &g); err != nil {
		t.Fatal(err)
	}
	read := func() CountersResponse {
		var c CountersResponse
		w := do(h, "GET", "/lab/v1/counters?node=node-1&service=default/testsvc", "", "", nil)
		if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
			t.Fatalf("decode counters %s: %v", w.Body, err)
		}
		return c
	}
	c1, c2 := read(), read()
	if c1.Hash != g.Hash || c2.Hash != g.Hash {
		t.Errorf("counters hash %s/%s, graph hash %s", c1.Hash, c2.Hash, g.Hash)
	}
	displayed := 0
	for _, n := range g.Nodes {
		displayed += len(n.Rules)
	}
	if len(c1.Rules) != displayed {
		t.Errorf("counters for %d rules, graph shows %d", len(c1.Rules), displayed)
	}
	id := "nat/KUBE-SVC-QAIWDPZBWUTCVGO3/3"
	if d := c2.Rules[id][0] - c1.Rules[id][0]; d != 5 {
		t.Errorf("%s moved by %d packets between reads, want 5", id, d)
	}
	for k, v := range c1.Rules {
		if k != id && c2.Rules[k] != v {
			t.Errorf("%s moved without traffic: %v → %v", k, v, c2.Rules[k])
		}
	}
	if c1.Chains["chain:PREROUTING"] != [2]uint64{112, 14784} {
		t.Errorf("PREROUTING policy counters = %v", c1.Chains["chain:PREROUTING"])
	}
	// Another selection gives another hash: the UI then reloads the graph.
	var other CountersResponse
	_ = json.Unmarshal(do(h, "GET", "/lab/v1/counters?node=node-1&service=default/redis", "", "", nil).Body.Bytes(), &other)
	if other.Hash == g.Hash {
		t.Errorf("counters of another selection have the graph's hash")
	}
}

func TestServicesEndpoint(t *testing.T) {
	h := newTestHandler(t, newFakeBackend(t), Options{})
	var l ServiceList
	if err := json.Unmarshal(do(h, "GET", "/lab/v1/services?node=node-1", "", "", nil).Body.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range l.Items {
		names = append(names, it.Service)
	}
	want := []string{"default/fwsvc", "default/myapp", "default/noep", "default/redis", "default/testsvc", "kube-system/kube-dns"}
	if diff := cmp.Diff(want, names); diff != "" || l.Total != 6 || l.Matched != 6 {
		t.Errorf("services (-want +got):\n%s total %d matched %d", diff, l.Total, l.Matched)
	}
	_ = json.Unmarshal(do(h, "GET", "/lab/v1/services?node=node-1&q=DNS&limit=1", "", "", nil).Body.Bytes(), &l)
	if l.Matched != 1 || len(l.Items) != 1 || l.Items[0].Service != "kube-system/kube-dns" ||
		!cmp.Equal(l.Items[0].Ports, []string{"kube-system/kube-dns:dns", "kube-system/kube-dns:dns-tcp"}) {
		t.Errorf("search dns: %+v", l)
	}
	_ = json.Unmarshal(do(h, "GET", "/lab/v1/services?node=node-1&q=default+s&limit=2", "", "", nil).Body.Bytes(), &l)
	if l.Matched != 3 || len(l.Items) != 2 {
		t.Errorf("search 'default s' limit 2: matched %d, %d items", l.Matched, len(l.Items))
	}
}

func TestTopologyAndNodesEndpoints(t *testing.T) {
	b := newFakeBackend(t)
	h := newTestHandler(t, b, Options{AutoDrawLimit: 7})
	var topo Topology
	if err := json.Unmarshal(do(h, "GET", "/lab/v1/topology", "", "", nil).Body.Bytes(), &topo); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*b.topo, topo); diff != "" {
		t.Errorf("topology (-want +got):\n%s", diff)
	}
	var nodes struct {
		Nodes         []string `json:"nodes"`
		AutoDrawLimit int      `json:"autoDrawLimit"`
	}
	_ = json.Unmarshal(do(h, "GET", "/lab/v1/nodes", "", "", nil).Body.Bytes(), &nodes)
	if !cmp.Equal(nodes.Nodes, []string{"node-1", "node-2"}) || nodes.AutoDrawLimit != 7 {
		t.Errorf("nodes = %+v", nodes)
	}
}

func TestUIAndExamples(t *testing.T) {
	h := newTestHandler(t, newFakeBackend(t), Options{})
	w := do(h, "GET", "/", "", "", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `<script src="/static/app.js" defer></script>`) {
		t.Fatalf("index: %d %s", w.Code, w.Body)
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q", csp)
	}
	for _, p := range []string{"/static/app.js", "/static/style.css"} {
		if w := do(h, "GET", p, "", "", nil); w.Code != 200 || w.Body.Len() == 0 {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	// Nothing in the UI is fetched from elsewhere.
	for _, p := range []string{"/", "/static/app.js", "/static/style.css"} {
		body := do(h, "GET", p, "", "", nil).Body.String()
		for _, bad := range []string{"http://", "https://", "//cdn", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
			if strings.Contains(body, bad) && !(bad == "http://" && strings.Contains(body, "http://www.w3.org/2000/svg")) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
	ex := do(h, "GET", "/examples.yaml", "", "", nil).Body.String()
	for _, want := range []string{"name: redis", "name: myapp-nohead", "type: NodePort", "type: ExternalName", "name: testsvc", "kind: Pod", "\n---\n# 02-myapp-nohead.yaml\n"} {
		if !strings.Contains(ex, want) {
			t.Errorf("examples.yaml lacks %q", want)
		}
	}
}

// fakeTracer is a kernel trace that returns a fixed result.
type fakeTracer struct {
	res     *dataplane.KernelTraceResult
	stopped *int
	mu      *sync.Mutex
}

func (f fakeTracer) Stop(context.Context) (*dataplane.KernelTraceResult, error) {
	f.mu.Lock()
	*f.stopped++
	f.mu.Unlock()
	return f.res, nil
}

// kernelTraceOf builds the KernelTraceResult of a packet through the given
// rules (table/chain/num) of the dump, as KernelTracer would report it.
func kernelTraceOf(t testing.TB, rs *dataplane.Ruleset, ids ...string) *dataplane.KernelTraceResult {
	t.Helper()
	p := dataplane.KernelPacket{ID: "0badcafe", Src: netip.MustParseAddr("10.244.1.2"), Dst: netip.MustParseAddr("10.96.5.207"), DstPort: 443}
	for _, id := range ids {
		parts := strings.SplitN(id, "/", 3)
		var num int
		for _, c := range parts[2] {
			num = num*10 + int(c-'0')
		}
		r := rs.Chain(dataplane.Table(parts[0]), parts[1]).Rules[num-1]
		verdict, jump := "JUMP", r.Target
		if r.Target == "DNAT" {
			verdict, jump = "ACCEPT", ""
		}
		p.Hits = append(p.Hits, dataplane.KernelHit{Table: r.Table, Chain: r.Chain, Kind: "rule", Verdict: verdict, JumpTarget: jump, Text: r.Text, Num: r.Num, Rule: r})
	}
	return &dataplane.KernelTraceResult{Packets: []dataplane.KernelPacket{p}, Lines: []string{"PACKET: 2 0badcafe …"}}
}

func TestTraceKernel(t *testing.T) {
	b := newFakeBackend(t)
	b.netns["node-1"] = "/run/netns/svclab-node-1"
	b.netns["node-2"] = "/run/netns/svclab-node-2"
	b.probe = func(req ProbeRequest) (*ProbeResult, error) {
		return &ProbeResult{Reply: "pod: testsvc-3\nnamespace: default\nclient: 10.244.1.2:40000\n", SourceIP: "10.244.1.2", Pod: "default/testsvc-3"}, nil
	}
	rs := loadDump(t, "node-1")
	hits := []string{"nat/PREROUTING/1", "nat/KUBE-SERVICES/5", "nat/KUBE-SVC-QAIWDPZBWUTCVGO3/7", "nat/KUBE-SEP-4KGGEYG4DUN22NWB/2"}
	var mu sync.Mutex
	stopped := 0
	var started []string
	var match dataplane.TraceMatch
	opts := Options{KernelTrace: func(ctx context.Context, path string, m dataplane.TraceMatch) (KernelTraceStopper, error) {
		mu.Lock()
		defer mu.Unlock()
		started = append(started, path)
		match = m
		return fakeTracer{res: kernelTraceOf(t, rs, hits...), stopped: &stopped, mu: &mu}, nil
	}}
	h := newTestHandler(t, b, opts)
	body := `{"source":"default/redis-0","destination":"default/testsvc"}`
	w := do(h, "POST", "/lab/v1/trace", "127.0.0.1:5555", body, map[string]string{"Content-Type": "application/json"})
	if w.Code != 200 {
		t.Fatalf("trace: %d %s", w.Code, w.Body)
	}
	var resp TraceResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(started, []string{"/run/netns/svclab-node-1"}) || stopped != 1 {
		t.Errorf("tracers started in %v, stopped %d", started, stopped)
	}
	wantMatch := dataplane.TraceMatch{Proto: "tcp", Dst: netip.MustParseAddr("10.96.5.207"), DstPort: 443, Src: netip.MustParseAddr(podIP(t, b.topo, "default/redis-0"))}
	if match != wantMatch {
		t.Errorf("trace match %+v, want %+v", match, wantMatch)
	}
	if !cmp.Equal(b.probes, []ProbeRequest{{Source: "default/redis-0", DestIP: "10.96.5.207", Port: 443, Protocol: "tcp"}}) {
		t.Errorf("probes %+v", b.probes)
	}
	var gotIDs []string
	for _, hit := range resp.Paths[0].Hits {
		gotIDs = append(gotIDs, hit.ID)
	}
	if resp.Mode != "kernel" || resp.Simulated || resp.Node != "node-1" || resp.Hook != "PREROUTING" || resp.DNAT != "10.244.2.5:80" ||
		resp.Pod != "default/testsvc-3" || resp.PodNode != "node-2" || !strings.HasPrefix(resp.Reply, "pod: testsvc-3") ||
		resp.Service != "default/testsvc" || !cmp.Equal(gotIDs, hits) || resp.Verdict != "ACCEPT" {
		t.Errorf("response %+v\nhit ids %v", resp, gotIDs)
	}
}

func TestTraceHostToClusterIPTracesEveryNode(t *testing.T) {
	b := newFakeBackend(t)
	b.netns["node-1"] = "/run/netns/n1"
	b.netns["node-2"] = "/run/netns/n2"
	b.probe = func(ProbeRequest) (*ProbeResult, error) { return &ProbeResult{Reply: "pod: redis-0"}, nil }
	rs2 := loadDump(t, "node-2")
	var mu sync.Mutex
	stopped := 0
	opts := Options{KernelTrace: func(ctx context.Context, path string, m dataplane.TraceMatch) (KernelTraceStopper, error) {
		res := &dataplane.KernelTraceResult{}
		if path == "/run/netns/n2" { // the host's packet entered node-2
			res = kernelTraceOf(t, rs2, "nat/PREROUTING/1", "nat/KUBE-SERVICES/4", "nat/KUBE-SVC-OKJCEJEOAS2LLIDR/2", "nat/KUBE-SEP-7PFXXPBHE4AJG7XF/2")
		}
		return fakeTracer{res: res, stopped: &stopped, mu: &mu}, nil
	}}
	w := do(newTestHandler(t, b, opts), "POST", "/lab/v1/trace", "[::1]:5555", `{"destination":"10.96.0.100:6379"}`, map[string]string{"Content-Type": "application/json"})
	var resp TraceResponse
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	if w.Code != 200 || resp.Node != "node-2" || stopped != 2 || resp.DestinationKind != "cluster IP of default/redis" || resp.DNAT != "10.244.1.2:6379" {
		t.Errorf("%d node %q stopped %d kind %q dnat %q: %s", w.Code, resp.Node, stopped, resp.DestinationKind, resp.DNAT, w.Body)
	}
}

func TestTraceSimulated(t *testing.T) {
	b := newFakeBackend(t)
	h := newTestHandler(t, b, Options{KernelTrace: func(context.Context, string, dataplane.TraceMatch) (KernelTraceStopper, error) {
		t.Error("a simulated trace started a kernel trace")
		return nil, errors.New("no")
	}})
	w := do(h, "POST", "/lab/v1/trace", "127.0.0.1:1", `{"source":"node:node-1","destination":"default/testsvc","simulate":true}`, map[string]string{"Content-Type": "application/json"})
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var resp TraceResponse
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	if len(b.probes) != 0 {
		t.Errorf("a simulated trace probed: %v", b.probes)
	}
	if resp.Mode != "simulated" || !resp.Simulated || resp.Hook != "OUTPUT" || len(resp.Paths) != 7 {
		t.Fatalf("response %+v", resp)
	}
	sum := 0.0
	pods := map[string]bool{}
	for _, p := range resp.Paths {
		sum += p.Probability
		pods[p.Pod] = true
		if p.Share != "1 in 7" || !p.Masqueraded || p.Hits[0].ID != "nat/OUTPUT/1" {
			t.Errorf("path %+v", p)
		}
	}
	if sum < 0.999 || sum > 1.001 || len(pods) != 7 {
		t.Errorf("paths sum to %v over %d pods", sum, len(pods))
	}
	if !strings.Contains(strings.Join(resp.Notes, " "), "Simulated") {
		t.Errorf("notes %v do not say simulated", resp.Notes)
	}
}

func TestTraceRequestErrors(t *testing.T) {
	h := newTestHandler(t, newFakeBackend(t), Options{})
	tests := []struct {
		body, field string
	}{
		{`{"destination":"default/search"}`, "destination"},       // ExternalName
		{`{"destination":"default/myapp-nohead"}`, "destination"}, // headless
		{`{"destination":"default/nope"}`, "destination"},
		{`{"destination":"10.96.0.100"}`, "port"},
		{`{"destination":"8.8.8.8:53"}`, "destination"}, // outside the lab: no real probe
		{`{"destination":"default/redis","source":"default/ghost"}`, "source"},
		{`{"destination":"default/redis","source":"node:node-7"}`, "source"},
		{`{"destination":"default/redis","protocol":"icmp"}`, "protocol"},
		{`{"destination":"default/testsvc:nope"}`, "destination"},
	}
	for _, tt := range tests {
		w := do(h, "POST", "/lab/v1/trace", "127.0.0.1:1", tt.body, map[string]string{"Content-Type": "application/json"})
		st := decodeStatus(t, w)
		if w.Code != 422 || st.Reason != metav1.StatusReasonInvalid || st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != tt.field {
			t.Errorf("%s: %d %+v", tt.body, w.Code, st)
		}
	}
	w := do(h, "POST", "/lab/v1/trace", "127.0.0.1:1", `{}`, map[string]string{"Content-Type": "text/plain"})
	if w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain trace: %d", w.Code)
	}
}

func TestTraceOnlyFromLoopbackOrWithToken(t *testing.T) {
	b := newFakeBackend(t)
	b.probe = func(ProbeRequest) (*ProbeResult, error) { return &ProbeResult{Reply: "ok"}, nil }
	noTrace := func(context.Context, string, dataplane.TraceMatch) (KernelTraceStopper, error) {
		return nil, dataplane.ErrKernelTraceUnsupported
	}
	body := `{"destination":"default/redis"}`
	json := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name   string
		token  string
		remote string
		hdr    map[string]string
		host   string
		want   int
	}{
		{"loopback v4", "", "127.0.0.1:4000", json, "", 200},
		{"loopback v6", "", "[::1]:4000", json, "localhost:8080", 200},
		{"remote", "", "192.168.1.20:4000", json, "", 403},
		{"remote with a token when none is configured", "", "192.168.1.20:4000", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer x"}, "", 403},
		{"remote with the token", "s3cret", "192.168.1.20:4000", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer s3cret"}, "svclab.example:8080", 200},
		{"remote with a wrong token", "s3cret", "192.168.1.20:4000", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer s3cre"}, "", 403},
		{"loopback, token configured, none sent", "s3cret", "127.0.0.1:4000", json, "", 200},
		{"loopback via a foreign host name (DNS rebinding)", "", "127.0.0.1:4000", json, "evil.example:8080", 403},
		{"loopback with a foreign Origin", "", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, "", 403},
		{"loopback with its own Origin", "", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:8080"}, "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, b, Options{APIToken: tt.token, KernelTrace: noTrace})
			req := httptest.NewRequest("POST", "/lab/v1/trace", strings.NewReader(body))
			req.RemoteAddr = tt.remote
			req.Host = "127.0.0.1:8080"
			if tt.host != "" {
				req.Host = tt.host
			}
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.want {
				t.Fatalf("HTTP %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want == 403 {
				st := decodeStatus(t, w)
				if st.Reason != metav1.StatusReasonForbidden || st.Code != 403 {
					t.Errorf("Status %+v", st)
				}
			}
		})
	}
}

func TestRegisterOnExistingRouter(t *testing.T) {
	r := mux.NewRouter()
	r.Handle("/api/v1/pods", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "api") }))
	Register(r, newFakeBackend(t), Options{})
	if w := do(r, "GET", "/api/v1/pods", "", "", nil); w.Body.String() != "api" {
		t.Errorf("Register shadowed an API route: %s", w.Body)
	}
	if w := do(r, "GET", "/lab/v1/nodes", "", "", nil); w.Code != 200 {
		t.Errorf("/lab/v1/nodes: %d", w.Code)
	}
}

// chainReaderBackend adds ChainReader to the fake: rules are parsed once per
// generation; counters come per chain.
type chainReaderBackend struct {
	*fakeBackend
	gen        uint64
	callsMu    sync.Mutex // ChainRules also runs in the background
	chainCalls [][]string
}

// calls returns a copy of the ChainRules calls so far.
func (c *chainReaderBackend) calls() [][]string {
	c.callsMu.Lock()
	defer c.callsMu.Unlock()
	return slices.Clone(c.chainCalls)
}

func (c *chainReaderBackend) RulesGeneration(context.Context, string) (uint64, error) {
	return c.gen, nil
}

func (c *chainReaderBackend) ChainRules(ctx context.Context, node string, table dataplane.Table, chains []string) (*dataplane.Ruleset, error) {
	c.callsMu.Lock()
	c.chainCalls = append(c.chainCalls, chains)
	c.callsMu.Unlock()
	return c.fakeBackend.Rules(ctx, node) // a superset is fine
}

func TestChainReaderCaching(t *testing.T) {
	fb := newFakeBackend(t)
	fb.bump, fb.bumpBy = "nat/KUBE-SVC-OKJCEJEOAS2LLIDR/2", 1
	b := &chainReaderBackend{fakeBackend: fb, gen: 1}
	h := newTestHandler(t, b, Options{})
	get := func() CountersResponse {
		var c CountersResponse
		_ = json.Unmarshal(do(h, "GET", "/lab/v1/counters?node=node-1&service=default/redis", "", "", nil).Body.Bytes(), &c)
		return c
	}
	c1 := get()
	c2 := get()
	// One full parse for the generation (Rules), then per-chain reads.
	if fb.calls["node-1"] != 1+len(b.chainCalls) {
		t.Errorf("Rules called %d times with %d chain reads", fb.calls["node-1"], len(b.chainCalls))
	}
	if len(b.chainCalls) != 2 || !contains(b.chainCalls[0], "KUBE-SVC-OKJCEJEOAS2LLIDR") || contains(b.chainCalls[0], "KUBE-SVC-QAIWDPZBWUTCVGO3") {
		t.Errorf("chain reads %v", b.chainCalls)
	}
	id := "nat/KUBE-SVC-OKJCEJEOAS2LLIDR/2"
	if c2.Rules[id][0] <= c1.Rules[id][0] {
		t.Errorf("counters did not move through the chain reads: %v then %v", c1.Rules[id], c2.Rules[id])
	}
	b.gen = 2
	get()
	if len(b.chainCalls) != 3 {
		t.Errorf("after a new generation: %d chain reads", len(b.chainCalls))
	}
}

// TestChainReaderBigChains: chains over the big-chain limit (KUBE-SERVICES
// at scale) are not read per request; their counters come from the cached
// dump, then from background reads, and the answers say how old they are,
// while the Service's own chains stay live on every request.
func TestChainReaderBigChains(t *testing.T) {
	fb := newFakeBackend(t)
	fb.bump, fb.bumpBy = "nat/KUBE-SVC-OKJCEJEOAS2LLIDR/2", 1
	b := &chainReaderBackend{fakeBackend: fb, gen: 1}
	h := newHandler(b, Options{ClusterCIDR: labClusterCIDR})
	rs, err := h.cache.rules(context.Background(), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	h.cache.bigRules = len(rs.Chain(dataplane.TableNAT, "KUBE-SERVICES").Rules) - 1
	h.cache.bigRefresh = time.Hour // no background read yet
	get := func() CountersResponse {
		t.Helper()
		w := httptest.NewRecorder()
		h.counters(w, httptest.NewRequest("GET", "/lab/v1/counters?node=node-1&service=default/redis", nil))
		var c CountersResponse
		if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil || w.Code != 200 {
			t.Fatalf("counters: %d %s", w.Code, w.Body)
		}
		return c
	}
	c1, c2 := get(), get()
	calls := b.calls()
	if len(calls) != 2 || contains(calls[0], "KUBE-SERVICES") || !contains(calls[0], "KUBE-SVC-OKJCEJEOAS2LLIDR") {
		t.Fatalf("chain reads %v: want two, of the Service's chains without KUBE-SERVICES", calls)
	}
	id := "nat/KUBE-SVC-OKJCEJEOAS2LLIDR/2"
	if c2.Rules[id][0] <= c1.Rules[id][0] {
		t.Errorf("the Service's own counters are not live: %v then %v", c1.Rules[id], c2.Rules[id])
	}
	at1 := c1.CountersAt["chain:KUBE-SERVICES"]
	if at1 == "" || len(c1.CountersAt) != 1 || c2.CountersAt["chain:KUBE-SERVICES"] != at1 {
		t.Fatalf("countersAt %v then %v: want KUBE-SERVICES alone, from the dump", c1.CountersAt, c2.CountersAt)
	}
	t1, err := time.Parse(time.RFC3339Nano, at1)
	if err != nil {
		t.Fatal(err)
	}
	// The graph says it too.
	w := httptest.NewRecorder()
	h.graph(w, httptest.NewRequest("GET", "/lab/v1/graph?node=node-1&service=default/redis", nil))
	var g Graph
	if err := json.Unmarshal(w.Body.Bytes(), &g); err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		if want := n.Name == "KUBE-SERVICES"; want != (n.CountersAt != "") || want != strings.Contains(n.Summary, "counters refreshed every 1h0m0s") {
			t.Errorf("graph node %s: countersAt %q, summary %q", n.Name, n.CountersAt, n.Summary)
		}
	}
	if !slices.ContainsFunc(g.Summaries, func(s string) bool { return strings.Contains(s, "counters refreshed every") }) {
		t.Errorf("summaries %q do not say that KUBE-SERVICES counters are delayed", g.Summaries)
	}
	// Once they are older than the refresh period, one request starts a
	// background read of KUBE-SERVICES alone and does not wait for it.
	h.cache.mu.Lock()
	h.cache.bigRefresh = 0
	h.cache.mu.Unlock()
	get()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := get()
		if at, err := time.Parse(time.RFC3339Nano, c.CountersAt["chain:KUBE-SERVICES"]); err == nil && at.After(t1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("KUBE-SERVICES counters never refreshed: %v; %d reads", c.CountersAt, len(b.calls()))
		}
		runtime.Gosched()
	}
	if !slices.ContainsFunc(b.calls(), func(c []string) bool { return slices.Equal(c, []string{"KUBE-SERVICES"}) }) {
		t.Errorf("no background read of KUBE-SERVICES alone in %d reads", len(b.calls()))
	}
}

// TestBigChainsAreShared: however long, a Service's own chains are read
// live; only shared chains over the limit are big.
func TestBigChainsAreShared(t *testing.T) {
	b := &chainReaderBackend{fakeBackend: newFakeBackend(t), gen: 1}
	c := newRuleCache(b, slog.New(slog.DiscardHandler))
	c.bigRules = 0 // every chain with a rule is long enough
	rs, err := c.rules(context.Background(), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		chain string
		want  bool
	}{
		{"KUBE-SERVICES", true},
		{"KUBE-POSTROUTING", true},
		{"KUBE-SVC-OKJCEJEOAS2LLIDR", false},
		{"KUBE-SEP-7PFXXPBHE4AJG7XF", false},
		{"KUBE-EXT-M36YWU5DIGVFZLKD", false},
		{"KUBE-FW-M36YWU5DIGVFZLKD", false},
		{"NO-SUCH-CHAIN", false},
	}
	for _, tt := range tests {
		if got := c.isBig(rs, dataplane.TableNAT, tt.chain); got != tt.want {
			t.Errorf("isBig(%s) = %v, want %v", tt.chain, got, tt.want)
		}
	}
	if newRuleCache(newFakeBackend(t), slog.New(slog.DiscardHandler)).isBig(rs, dataplane.TableNAT, "KUBE-SERVICES") {
		t.Error("without a ChainReader no chain is big (every read is a whole dump)")
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestExplainEndpoint(t *testing.T) {
	h := newTestHandler(t, newFakeBackend(t), Options{})
	var e Explanation
	w := do(h, "GET", "/lab/v1/explain?node=node-1&table=nat&id=nat/KUBE-SVC-QAIWDPZBWUTCVGO3/8", "", "", nil)
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if e.Pod != "default/testsvc-5" || e.Service != "default/testsvc" || !strings.Contains(e.Explain, "needs no probability") {
		t.Errorf("explanation %+v", e)
	}
	w = do(h, "GET", "/lab/v1/explain?node=node-1&id=nat/KUBE-SVC-QAIWDPZBWUTCVGO3/80", "", "", nil)
	if st := decodeStatus(t, w); w.Code != 404 || st.Reason != metav1.StatusReasonNotFound {
		t.Errorf("unknown rule: %d %+v", w.Code, st)
	}
}

// TestChainRulesOverlay checks that `iptables -S CHAIN -v` output, parsed with
// dataplane.ParseSave, overlays its counters on the dump's rules.
func TestChainRulesOverlay(t *testing.T) {
	// `iptables -S CHAIN -v` output parses with ParseSave and overlays.
	rs, err := dataplane.ParseSave([]byte("*nat\n-N KUBE-MARK-MASQ\n-A KUBE-MARK-MASQ -c 99 5940 -j MARK --set-xmark 0x4000/0x4000\nCOMMIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := BuildGraph(loadDump(t, "node-1"), GraphOptions{Services: []string{"default/redis"}})
	for _, n := range g.Nodes {
		if n.Name != "KUBE-MARK-MASQ" {
			n.Rules = nil // only the chain read above
		}
	}
	if !applyCounters(g, rs) {
		t.Fatal("applyCounters rejected iptables -S -v output")
	}
	for _, n := range g.Nodes {
		if n.Name == "KUBE-MARK-MASQ" && (n.Rules[0].Packets != 99 || n.Rules[0].Bytes != 5940) {
			t.Errorf("counters %d/%d", n.Rules[0].Packets, n.Rules[0].Bytes)
		}
	}
}
