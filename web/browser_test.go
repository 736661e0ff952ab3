package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/mux"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/dataplane"
	"github.com/svclab/svclab/web/browsertest"
)

// newBrowser starts headless Chromium (loopback only) with a fresh profile, or skips.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t)
}

// step runs browser actions with a deadline.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is true (or fails the test).
func waitFor(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, predicate, err)
	}
}

// screenshot saves a PNG into testdata/artifacts (gitignored).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("testdata", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeApply is a stand-in for the REST layer's POST /lab/v1/apply: a
// manifest mentioning "port: 0" gets the 207 answer with kube-apiserver's
// 422 Invalid Status for that object, anything else "created".
func fakeApply(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	type result struct {
		Index      int            `json:"index"`
		APIVersion string         `json:"apiVersion,omitempty"`
		Kind       string         `json:"kind,omitempty"`
		Namespace  string         `json:"namespace,omitempty"`
		Name       string         `json:"name,omitempty"`
		Action     string         `json:"action"`
		Status     *metav1.Status `json:"status,omitempty"`
	}
	var resp struct {
		Results []result `json:"results"`
	}
	w.Header().Set("Content-Type", "application/json")
	if strings.Contains(string(body), "port: 0") {
		resp.Results = []result{{Index: 0, APIVersion: "v1", Kind: "Service", Namespace: "default", Name: "bad", Action: "error", Status: &metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: 422, Reason: metav1.StatusReasonInvalid,
			Message: `Service "bad" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`,
			Details: &metav1.StatusDetails{Name: "bad", Kind: "Service", Causes: []metav1.StatusCause{{
				Type: metav1.CauseTypeFieldValueInvalid, Field: "spec.ports[0].port", Message: "Invalid value: 0: must be between 1 and 65535, inclusive"}}},
		}}}
		w.WriteHeader(http.StatusMultiStatus)
	} else {
		resp.Results = []result{{Index: 0, APIVersion: "v1", Kind: "Service", Namespace: "default", Name: "redis", Action: "created"}}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// serveUI starts the handler (and the fake apply endpoint) on loopback.
func serveUI(t *testing.T, b Backend, opts Options) string {
	t.Helper()
	r := mux.NewRouter()
	r.HandleFunc("/lab/v1/apply", fakeApply).Methods(http.MethodPost)
	if !opts.ClusterCIDR.IsValid() {
		opts.ClusterCIDR = labClusterCIDR
	}
	if opts.Examples == nil {
		opts.Examples = os.DirFS("../examples") // the files svclab embeds
	}
	Register(r, b, opts)
	var h http.Handler = r
	if fb, ok := b.(*fakeBackend); ok {
		h = fb.delayGraphs(r)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func openUI(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	step(t, ctx, "open the UI", chromedp.Navigate(url+"/"))
	waitFor(t, ctx, "the UI to start", `document.body.dataset.ready === 'true' && document.querySelectorAll('#svc-list button.svc').length > 0`)
}

func selectService(t *testing.T, ctx context.Context, svc string) {
	t.Helper()
	step(t, ctx, "select "+svc, chromedp.Click(chromedp.CSS(`#svc-list button.svc[data-service="`+svc+`"]`)))
}

func TestBrowserChainGraph(t *testing.T) {
	ctx := newBrowser(t)
	url := serveUI(t, newFakeBackend(t), Options{AutoDrawLimit: 1})
	openUI(t, ctx, url)
	// Six Services > AutoDrawLimit: nothing is drawn until one is picked.
	if n := eval[int](t, ctx, `document.querySelectorAll('#graph').length`); n != 0 {
		t.Errorf("graph drawn before a Service was selected")
	}
	selectService(t, ctx, "default/testsvc")
	waitFor(t, ctx, "the testsvc graph", `document.querySelector('#graph g.node[data-name="KUBE-SVC-QAIWDPZBWUTCVGO3"]') !== null`)
	seps := eval[int](t, ctx, `document.querySelectorAll('#graph g.node.kind-endpoint').length`)
	pods := eval[int](t, ctx, `document.querySelectorAll('#graph g.node.kind-pod').length`)
	if seps != 7 || pods != 7 {
		t.Errorf("drawn %d KUBE-SEP and %d pod nodes, want 7 and 7", seps, pods)
	}
	names := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph g.node')).map(g => g.dataset.name)`)
	for _, want := range []string{"PREROUTING", "OUTPUT", "KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXT-QAIWDPZBWUTCVGO3", "KUBE-MARK-MASQ", "KUBE-SEP-4KGGEYG4DUN22NWB"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("graph lacks %s: %v", want, names)
		}
	}
	if s := eval[string](t, ctx, `document.getElementById('summaries').textContent`); !strings.Contains(s, "KUBE-SERVICES: 9 rules — showing 3 for default/testsvc") {
		t.Errorf("summaries %q", s)
	}
	// Explain: click the last endpoint rule of KUBE-SVC.
	step(t, ctx, "click a rule", chromedp.Click(chromedp.CSS(`#graph g.rule[data-id="nat/KUBE-SVC-QAIWDPZBWUTCVGO3/8"]`)))
	waitFor(t, ctx, "the explanation", `!document.getElementById('explain-body').hidden`)
	text := eval[string](t, ctx, `document.getElementById('explain-text').textContent`)
	para := eval[string](t, ctx, `document.getElementById('explain-para').textContent`)
	if text != `-A KUBE-SVC-QAIWDPZBWUTCVGO3 -m comment --comment "default/testsvc -> 10.244.2.6:80" -j KUBE-SEP-NYL4OHZYJTZ52TFJ` ||
		!strings.Contains(para, "needs no probability") || !strings.Contains(para, "pod default/testsvc-5 on node-2") {
		t.Errorf("explain text %q\nparagraph %q", text, para)
	}
	// A KUBE-EXT chain explains the seed's KUBE-XLB.
	step(t, ctx, "click KUBE-EXT", chromedp.Click(chromedp.CSS(`#graph g.node[data-name="KUBE-EXT-QAIWDPZBWUTCVGO3"] .head .name`)))
	waitFor(t, ctx, "the KUBE-EXT explanation", `document.getElementById('explain-para').textContent.includes('KUBE-XLB')`)
	screenshot(t, ctx, "chains-testsvc.png")

	step(t, ctx, "open Topology", chromedp.Click(chromedp.CSS(`#tabs button[data-view="topology"]`)))
	waitFor(t, ctx, "the topology", `document.querySelectorAll('#topo-drawing svg rect.topo-pod').length === 15`)
	if s := eval[string](t, ctx, `document.getElementById('topo-tables').textContent`); !strings.Contains(s, "172.29.255.6") || !strings.Contains(s, "10.96.5.207") || !strings.Contains(s, "30031") {
		t.Errorf("topology tables lack testsvc's addresses")
	}
	screenshot(t, ctx, "topology.png")
}

func TestBrowserCountersRefresh(t *testing.T) {
	ctx := newBrowser(t)
	b := newFakeBackend(t)
	const moving = "nat/KUBE-SVC-QAIWDPZBWUTCVGO3/3"
	b.bump, b.bumpBy = moving, 3
	url := serveUI(t, b, Options{})
	openUI(t, ctx, url)
	selectService(t, ctx, "default/testsvc")
	row := `document.querySelector('#graph g.rule[data-id="` + moving + `"]')`
	waitFor(t, ctx, "the moving rule", row+` !== null`)
	first := eval[string](t, ctx, row+`.querySelector('.counters').textContent`)
	waitFor(t, ctx, "the counters to move", row+`.querySelector('.counters').textContent !== `+jsString(first)+` && `+row+`.classList.contains('moved')`)
	later := eval[string](t, ctx, row+`.querySelector('.counters').textContent`)
	if !strings.HasSuffix(later, " B") && !strings.Contains(later, "KiB") {
		t.Errorf("counter text %q", later)
	}
	// Rules without traffic are not highlighted; the moved rule's edge is.
	if n := eval[int](t, ctx, `document.querySelectorAll('#graph g.rule.moved').length`); n != 1 {
		t.Errorf("%d rules highlighted as moved, want 1", n)
	}
	if !eval[bool](t, ctx, `document.querySelector('#graph path.edge[data-rule="`+moving+`"]').classList.contains('moved')`) {
		t.Errorf("edge of the moved rule not highlighted")
	}
	screenshot(t, ctx, "counters.png")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestBrowserTrace(t *testing.T) {
	ctx := newBrowser(t)
	b := newFakeBackend(t)
	b.netns["node-1"] = "/run/netns/svclab-node-1"
	b.probe = func(ProbeRequest) (*ProbeResult, error) {
		return &ProbeResult{Reply: "pod: testsvc-3\nnamespace: default\nnode: node-2\nclient: 10.244.1.2:40000\n", Pod: "default/testsvc-3"}, nil
	}
	rs := loadDump(t, "node-1")
	var mu sync.Mutex
	stopped := 0
	opts := Options{KernelTrace: func(ctx context.Context, path string, m dataplane.TraceMatch) (KernelTraceStopper, error) {
		return fakeTracer{res: kernelTraceOf(t, rs, "nat/PREROUTING/1", "nat/KUBE-SERVICES/5", "nat/KUBE-SVC-QAIWDPZBWUTCVGO3/7", "nat/KUBE-SEP-4KGGEYG4DUN22NWB/2"), stopped: &stopped, mu: &mu}, nil
	}}
	url := serveUI(t, b, opts)
	openUI(t, ctx, url)
	step(t, ctx, "open Trace", chromedp.Click(chromedp.CSS(`#tabs button[data-view="trace"]`)))
	waitFor(t, ctx, "the source list", `Array.from(document.querySelectorAll('#trace-source option')).some(o => o.value === 'default/redis-0')`)
	step(t, ctx, "fill the trace form",
		chromedp.SetValue(chromedp.CSS(`#trace-source`), "default/redis-0"),
		chromedp.SendKeys(chromedp.CSS(`#trace-dest`), "default/testsvc"),
		chromedp.Click(chromedp.CSS(`#trace-form button[type="submit"]`)),
	)
	// The UI switches to the chains of the traced node and Service and
	// marks the path: KUBE-SVC → KUBE-SEP of the pod that answered.
	waitFor(t, ctx, "the highlighted path", `document.querySelector('#graph path.edge.hit[data-rule="nat/KUBE-SVC-QAIWDPZBWUTCVGO3/7"]') !== null`)
	hits := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph g.rule.hit')).map(r => r.dataset.id)`)
	want := []string{"nat/PREROUTING/1", "nat/KUBE-SERVICES/5", "nat/KUBE-SVC-QAIWDPZBWUTCVGO3/7", "nat/KUBE-SEP-4KGGEYG4DUN22NWB/2"}
	if strings.Join(hits, ",") != strings.Join(want, ",") {
		t.Errorf("highlighted rules %v, want %v", hits, want)
	}
	if !eval[bool](t, ctx, `document.querySelector('#graph g.node.hit[data-id="pod:10.244.2.5:80"]') !== null`) {
		t.Errorf("the answering pod is not highlighted")
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#graph path.edge.hit').length`); n != 4 {
		t.Errorf("%d edges highlighted, want 4", n)
	}
	banner := eval[string](t, ctx, `document.getElementById('trace-banner').textContent`)
	if !strings.Contains(banner, "kernel trace") || !strings.Contains(banner, "answered by default/testsvc-3") || !strings.Contains(banner, "pod: testsvc-3") {
		t.Errorf("banner %q", banner)
	}
	screenshot(t, ctx, "trace-graph.png")
	step(t, ctx, "back to Trace", chromedp.Click(chromedp.CSS(`#tabs button[data-view="trace"]`)))
	reply := eval[string](t, ctx, `document.querySelector('#trace-result pre.reply').textContent`)
	if !strings.HasPrefix(reply, "pod: testsvc-3") {
		t.Errorf("reply shown %q", reply)
	}
	screenshot(t, ctx, "trace-result.png")

	// The simulated trace is marked as such.
	step(t, ctx, "simulate", chromedp.Click(chromedp.CSS(`#trace-simulate`)), chromedp.Click(chromedp.CSS(`#trace-form button[type="submit"]`)))
	waitFor(t, ctx, "the simulated banner", `document.getElementById('trace-banner').textContent.includes('simulated')`)
	step(t, ctx, "back to Trace", chromedp.Click(chromedp.CSS(`#tabs button[data-view="trace"]`)))
	if s := eval[string](t, ctx, `document.querySelector('#trace-result .badge').textContent`); !strings.Contains(s, "SIMULATED") {
		t.Errorf("badge %q", s)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#trace-result .path').length`); n != 7 {
		t.Errorf("%d simulated paths shown, want 7", n)
	}
}

func TestBrowserApply(t *testing.T) {
	ctx := newBrowser(t)
	url := serveUI(t, newFakeBackend(t), Options{})
	openUI(t, ctx, url)
	step(t, ctx, "open Apply", chromedp.Click(chromedp.CSS(`#tabs button[data-view="apply"]`)), chromedp.Click(chromedp.CSS(`#load-examples`)))
	waitFor(t, ctx, "the examples", `document.getElementById('apply-text').value.includes('name: testsvc')`)
	manifest := "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n  - port: 0\n"
	step(t, ctx, "apply an invalid Service",
		chromedp.SetValue(chromedp.CSS(`#apply-text`), manifest),
		chromedp.Click(chromedp.CSS(`#apply-btn`)))
	waitFor(t, ctx, "the result", `document.querySelector('#apply-result code.field') !== null`)
	field := eval[string](t, ctx, `document.querySelector('#apply-result code.field').textContent`)
	row := eval[string](t, ctx, `document.querySelector('#apply-result tbody tr').textContent`)
	if field != "spec.ports[0].port" || !strings.Contains(row, "must be between 1 and 65535") || !strings.Contains(row, "default/bad") || !strings.Contains(row, "error") {
		t.Errorf("field %q row %q", field, row)
	}
	screenshot(t, ctx, "apply-error.png")
}

// xssPayload sets window.__xss if it ever runs.
const xssPayload = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`

func TestBrowserShowsHostileNamesAsText(t *testing.T) {
	ctx := newBrowser(t)
	hostile := `*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-EVIL - [0:0]
:KUBE-SEP-EVIL - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.6.6/32 -p tcp -m comment --comment "default/<img_src=x_onerror=window.__xss=3>:p cluster IP" -m tcp --dport 80 -j KUBE-SVC-EVIL
-A KUBE-SVC-EVIL -m comment --comment "default/<img_src=x_onerror=window.__xss=3>:p -> 10.244.1.66:80" -j KUBE-SEP-EVIL
-A KUBE-SEP-EVIL -p tcp -m comment --comment "<script>window.__xss=4</script>" -m tcp -j DNAT --to-destination 10.244.1.66:80
COMMIT
`
	rs, err := dataplane.ParseSave([]byte(hostile))
	if err != nil {
		t.Fatal(err)
	}
	b := newFakeBackend(t)
	b.fixedRS = map[string]*dataplane.Ruleset{"node-0": rs}
	b.topo = &Topology{
		Host:  TopoHost{Name: xssPayload, IP: "172.29.0.1"},
		Nodes: []TopoNode{{Name: "node-0", IP: "172.29.0.9", PodCIDR: xssPayload, Ready: true}},
		Pods: []TopoPod{{Namespace: "default", Name: xssPayload, IP: "10.244.1.66", Node: "node-0", Ready: true,
			Labels: map[string]string{"app": xssPayload}, Annotations: map[string]string{"note": xssPayload}}},
		Services: []TopoService{{Namespace: "default", Name: xssPayload, Type: "ClusterIP", ClusterIP: "10.96.6.6",
			Ports:       []TopoServicePort{{Name: xssPayload, Port: 80, Protocol: "TCP"}},
			Labels:      map[string]string{xssPayload: xssPayload},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": xssPayload},
			Endpoints:   []TopoEndpoint{{IP: "10.244.1.66", Port: 80, Ready: true, Pod: "default/" + xssPayload}}}},
	}
	url := serveUI(t, b, Options{})
	// Let scripts run even if CSP would stop them: this test must prove
	// that nothing is parsed as HTML, not that CSP blocks it.
	step(t, ctx, "bypass CSP", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true})
		return err
	}))
	step(t, ctx, "open the UI", chromedp.Navigate(url+"/"))
	waitFor(t, ctx, "the UI", `document.body.dataset.ready === 'true'`)
	step(t, ctx, "select the node", chromedp.SetValue(chromedp.CSS(`#node`), "node-0"))
	eval[bool](t, ctx, `document.getElementById('node').dispatchEvent(new Event('change')), true`)
	waitFor(t, ctx, "the hostile Service in the list", `document.querySelectorAll('#svc-list button.svc').length === 1`)
	eval[bool](t, ctx, `document.querySelector('#svc-list button.svc').click(), true`)
	waitFor(t, ctx, "the graph", `document.querySelector('#graph g.node[data-name="KUBE-SEP-EVIL"]') !== null`)
	eval[bool](t, ctx, `document.querySelector('#graph g.rule[data-id="nat/KUBE-SEP-EVIL/1"]').dispatchEvent(new MouseEvent('click', {bubbles: true})), true`)
	waitFor(t, ctx, "the explanation", `document.getElementById('explain-text').textContent.includes('<script>')`)
	step(t, ctx, "open Topology", chromedp.Click(chromedp.CSS(`#tabs button[data-view="topology"]`)))
	waitFor(t, ctx, "the topology tables", `document.querySelectorAll('#topo-tables td').length > 10`)
	step(t, ctx, "open Trace", chromedp.Click(chromedp.CSS(`#tabs button[data-view="trace"]`)))
	waitFor(t, ctx, "the trace form", `document.querySelectorAll('#trace-source option').length === 3`)

	// Nothing ran, nothing was injected, and the text is there as text.
	if v := eval[string](t, ctx, `String(window.__xss)`); v != "undefined" {
		t.Errorf("injected script ran: window.__xss = %s", v)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('img, b, iframe, object, embed').length`); n != 0 {
		t.Errorf("%d injected elements in the document", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('script').length`); n != 1 {
		t.Errorf("%d script elements, want only app.js", n)
	}
	if n := eval[int](t, ctx, `Array.from(document.querySelectorAll('*')).filter(e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length`); n != 0 {
		t.Errorf("%d elements with event-handler attributes", n)
	}
	body := eval[string](t, ctx, `document.body.textContent`)
	for _, want := range []string{`<img src=x onerror="window.__xss=1">`, "<script>window.__xss=2</script>", "default/<img_src=x_onerror=window.__xss=3>"} {
		if !strings.Contains(body, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	svgText := eval[string](t, ctx, `Array.from(document.querySelectorAll('#graph text, #graph title')).map(e => e.textContent).join('\n')`)
	if !strings.Contains(svgText, "<script>window.__xss=4</script>") {
		t.Errorf("the rule text with <script> is not shown as text in the graph")
	}
	screenshot(t, ctx, "xss-topology.png")
}

// TestBrowserStaleGraphIsDropped: a graph answer that arrives after the
// user moved on (here: redis picked, its answer slow, redis dropped and
// myapp picked) is not drawn over the newer graph.
func TestBrowserStaleGraphIsDropped(t *testing.T) {
	ctx := newBrowser(t)
	b := newFakeBackend(t)
	arrived, release := b.holdGraph(t, "default/redis")
	url := serveUI(t, b, Options{AutoDrawLimit: 1}) // no whole-node graph on its way at the start
	openUI(t, ctx, url)
	const redisSVC, myappSVC = "KUBE-SVC-OKJCEJEOAS2LLIDR", "KUBE-SVC-XJWXQFJLXSXKRMSG"
	answers := func() int {
		return eval[int](t, ctx, `Number(document.body.dataset.graphAnswers || 0)`)
	}
	before := answers()
	selectService(t, ctx, "default/redis")
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the redis graph request never reached the server")
	}
	selectService(t, ctx, "default/redis") // unselect
	selectService(t, ctx, "default/myapp")
	waitFor(t, ctx, "the myapp graph", `document.querySelector('#graph g.node[data-name="`+myappSVC+`"]') !== null`)
	if n := answers(); n != before+1 {
		t.Fatalf("%d graph answers before the redis one was released, want %d", n, before+1)
	}
	release()
	waitFor(t, ctx, "the late redis answer", `Number(document.body.dataset.graphAnswers || 0) === `+strconv.Itoa(before+2))
	names := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph g.node')).map(g => g.dataset.name)`)
	if !slices.Contains(names, myappSVC) || slices.Contains(names, redisSVC) {
		t.Errorf("after the late redis answer the page shows %v, want myapp's chains (%s) and not redis's (%s)", names, myappSVC, redisSVC)
	}
	if s := eval[string](t, ctx, `document.getElementById('fmt-json').getAttribute('href')`); !strings.Contains(s, "myapp") || strings.Contains(s, "redis") {
		t.Errorf("export link %q is not the myapp selection's", s)
	}
	screenshot(t, ctx, "stale-graph-dropped.png")
}

// TestBrowserLandingViewShowsServiceChains: picking a LoadBalancer or
// NodePort Service (whose graph is wider than the window: KUBE-EXT and
// the shared chains come first) lands on a readable view in which its
// KUBE-SVC chain and every KUBE-SEP chain are inside the visible part of
// the graph's scroll box.
func TestBrowserLandingViewShowsServiceChains(t *testing.T) {
	ctx := newBrowser(t)
	url := serveUI(t, newFakeBackend(t), Options{AutoDrawLimit: 1})
	openUI(t, ctx, url)
	for _, tt := range []struct{ service, svcChain string }{
		{"default/testsvc", "KUBE-SVC-QAIWDPZBWUTCVGO3"}, // LoadBalancer, 7 endpoints
		{"default/myapp", "KUBE-SVC-XJWXQFJLXSXKRMSG"},   // NodePort
		{"default/fwsvc", "KUBE-SVC-M36YWU5DIGVFZLKD"},   // LoadBalancer with source ranges (KUBE-FW)
	} {
		t.Run(tt.service, func(t *testing.T) {
			selectService(t, ctx, tt.service)
			defer selectService(t, ctx, tt.service) // unselect for the next one
			svc := `#graph g.node[data-name="` + tt.svcChain + `"]`
			waitFor(t, ctx, "the graph of "+tt.service, `document.querySelector('`+svc+`') !== null`)
			type box struct {
				Name                     string
				Left, Top, Right, Bottom float64
			}
			view := eval[box](t, ctx, `(() => { const a = document.getElementById('graph-scroll'), r = a.getBoundingClientRect();
				return {Name: 'view', Left: r.left + a.clientLeft, Top: r.top + a.clientTop, Right: r.left + a.clientLeft + a.clientWidth, Bottom: r.top + a.clientTop + a.clientHeight}; })()`)
			boxes := eval[[]box](t, ctx, `Array.from(document.querySelectorAll('`+svc+`, #graph g.node.kind-endpoint')).map(g => { const r = g.querySelector('.box').getBoundingClientRect();
				return {Name: g.dataset.name, Left: r.left, Top: r.top, Right: r.right, Bottom: r.bottom}; })`)
			if len(boxes) < 2 {
				t.Fatalf("found %d KUBE-SVC/KUBE-SEP nodes, want the KUBE-SVC chain and its KUBE-SEPs", len(boxes))
			}
			for _, b := range boxes {
				if b.Left < view.Left-1 || b.Top < view.Top-1 || b.Right > view.Right+1 || b.Bottom > view.Bottom+1 {
					t.Errorf("%s at (%.0f,%.0f)-(%.0f,%.0f) is not inside the visible graph area (%.0f,%.0f)-(%.0f,%.0f)",
						b.Name, b.Left, b.Top, b.Right, b.Bottom, view.Left, view.Top, view.Right, view.Bottom)
				}
			}
			// Readable: not shrunk below 60%.
			if z := eval[float64](t, ctx, `document.getElementById('graph').getBoundingClientRect().width / document.getElementById('graph').viewBox.baseVal.width`); z < 0.6 {
				t.Errorf("landing zoom %.2f, want at least 0.6", z)
			}
			screenshot(t, ctx, "landing-"+strings.ReplaceAll(tt.service, "/", "-")+".png")
		})
	}
}

// TestBrowserTopologyTables: the tables leave out the
// last-applied-configuration annotation (kubectl describe does too) but
// keep the others, and every address stays on one line.
func TestBrowserTopologyTables(t *testing.T) {
	ctx := newBrowser(t)
	b := newFakeBackend(t)
	const lastApplied = `{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"testsvc","namespace":"default"},"spec":{"ports":[{"port":80}]}}`
	for i := range b.topo.Services {
		s := &b.topo.Services[i]
		s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied, "example.com/owner": "team-" + s.Name}
	}
	b.topo.Pods[0].Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied, "example.com/pod-note": "kept"}
	url := serveUI(t, b, Options{})
	openUI(t, ctx, url)
	step(t, ctx, "open Topology", chromedp.Click(chromedp.CSS(`#tabs button[data-view="topology"]`)))
	waitFor(t, ctx, "the topology tables", `document.querySelectorAll('#topo-tables td').length > 10`)
	text := eval[string](t, ctx, `document.getElementById('topo-tables').textContent`)
	for _, bad := range []string{"last-applied-configuration", `"apiVersion":"v1"`} {
		if strings.Contains(text, bad) {
			t.Errorf("topology tables show %q", bad)
		}
	}
	for _, want := range []string{"example.com/owner=team-testsvc", "example.com/pod-note=kept"} {
		if !strings.Contains(text, want) {
			t.Errorf("topology tables lack the annotation %q", want)
		}
	}
	type addr struct {
		Text, WhiteSpace string
		Lines            int
	}
	addrs := eval[[]addr](t, ctx, `Array.from(document.querySelectorAll('#topo-tables .addr')).map(e => {
		const r = document.createRange(); r.selectNodeContents(e);
		return {Text: e.textContent, WhiteSpace: getComputedStyle(e).whiteSpace, Lines: r.getClientRects().length}; })`)
	seen := map[string]bool{}
	for _, a := range addrs {
		seen[strings.Fields(a.Text)[0]] = true
		if a.WhiteSpace != "nowrap" || a.Lines != 1 {
			t.Errorf("address %q: white-space %s, on %d lines; want nowrap on 1", a.Text, a.WhiteSpace, a.Lines)
		}
	}
	// Node IPs, pod IPs, a cluster IP, a load-balancer IP and endpoints.
	for _, want := range []string{"172.29.0.2", "10.244.1.0/24", "10.96.5.207", "172.29.255.6", "10.244.2.6:80"} {
		if !seen[want] {
			t.Errorf("%s is not shown as an address (addresses: %v)", want, addrs)
		}
	}
	screenshot(t, ctx, "topology-tables.png")
}
