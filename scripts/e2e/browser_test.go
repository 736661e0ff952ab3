package e2e

// The web UI in headless Chromium against a real `svclab up --demo` lab: the page is driven like
// a user (select, type, click) and every check waits for a condition in the DOM with a deadline.
// The lab's UI listens on 127.0.0.1:8080 inside the lab's host namespace; a forwarder on a
// loopback port of the root namespace (forwardUI) lets the browser reach it. Screenshots go to
// web/testdata/artifacts/e2e-*.png.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// redisAddr is the demo's redis Service (examples/01-redis-clusterip.yaml).
const redisAddr = "10.96.0.100:6379"

// TestBrowserDemoLab runs the UI's five user-facing checks in one browser, one tab each.
func TestBrowserDemoLab(t *testing.T) {
	browser := newBrowser(t)
	l := demoLab(t)
	url := l.forwardUI(t)

	t.Run("Graph", func(t *testing.T) { browserGraph(t, l, newTab(t, browser), url) })
	t.Run("Counters", func(t *testing.T) { browserCounters(t, l, newTab(t, browser), url) })
	t.Run("Trace", func(t *testing.T) { browserTrace(t, l, newTab(t, browser), url) })
	t.Run("ApplyInvalid", func(t *testing.T) { browserApplyInvalid(t, l, newTab(t, browser), url) })
	t.Run("HTMLAsText", func(t *testing.T) { browserHTMLAsText(t, l, newTab(t, browser), url) })
}

// openUI loads the page, waits until it has started and drawn what it draws on its own (the
// whole node, or the hint to pick a Service), then selects node.
func openUI(tb testing.TB, ctx context.Context, url, node string) {
	tb.Helper()
	browserDo(tb, ctx, "open the UI", chromedp.Navigate(url+"/"))
	browserWait(tb, ctx, "the UI to start", `document.body.dataset.ready === 'true' && document.querySelectorAll('#svc-list button.svc').length > 0`)
	browserWait(tb, ctx, "the first drawing", uiSettled)
	if node == "" || browserEval[string](tb, ctx, `document.getElementById('node').value`) == node {
		return
	}
	// Mark what is drawn now, pick the node as a user does (which fires "change"), and wait for
	// the new node's drawing, so no answer for the old node arrives after the next step.
	browserEval[bool](tb, ctx, `(() => { for (const e of document.querySelectorAll('#graph, #graph-hint')) e.dataset.stale = '1'; return true })()`)
	ok := browserEval[bool](tb, ctx, `(() => {
		const s = document.getElementById('node');
		if (!Array.from(s.options).some(o => o.value === `+jsString(node)+`)) return false;
		s.value = `+jsString(node)+`;
		s.dispatchEvent(new Event('change', {bubbles: true}));
		return true;
	})()`)
	if !ok {
		tb.Fatalf("the node list has no %s", node)
	}
	browserWait(tb, ctx, node+"'s drawing", `document.getElementById('svc-count').textContent.includes(`+jsString(node+"'s rules")+`) && `+uiSettled)
}

// uiSettled holds when the chains view shows a (fresh) graph or the hint to pick a Service.
const uiSettled = `(() => {
	const g = document.getElementById('graph');
	const h = document.getElementById('graph-hint');
	return (g !== null && !g.dataset.stale && g.querySelector('g.node') !== null) ||
		(h !== null && !h.dataset.stale && h.textContent !== '');
})()`

// pickService types part of a Service's name into the search box and clicks it in the list.
func pickService(tb testing.TB, ctx context.Context, search, svc string) {
	tb.Helper()
	browserDo(tb, ctx, "search "+search, chromedp.SendKeys(chromedp.CSS(`#svc-search`), search))
	btn := `#svc-list button.svc[data-service=` + jsString(svc) + `]`
	// Wait for the filtered list: a click while the list is redrawn could hit another entry.
	browserWait(tb, ctx, svc+" in the filtered list", `(() => {
		const bs = Array.from(document.querySelectorAll('#svc-list button.svc'));
		return bs.some(b => b.dataset.service === `+jsString(svc)+`) && bs.every(b => b.dataset.service.includes(`+jsString(search)+`));
	})()`)
	browserDo(tb, ctx, "select "+svc, chromedp.Click(chromedp.CSS(btn)))
}

// ruleSel is the selector of a drawn rule row.
func ruleSel(id string) string { return `#graph g.rule[data-id="` + id + `"]` }

// jsPackets evaluates to the packet counter a rule row shows (-1: not drawn).
func jsPackets(id string) string {
	return `((r) => r ? parseInt(r.querySelector('.counters').textContent.replace(/,/g, ''), 10) : -1)(document.querySelector(` + jsString(ruleSel(id)) + `))`
}

// ruleID is the UI's id of rule i (0-based) of a nat chain.
func ruleID(chain string, i int) string { return "nat/" + chain + "/" + strconv.Itoa(i+1) }

// ruleIndex is the position (0-based) of the first rule of chain containing all of subs, or -1.
func ruleIndex(nat, chain string, subs ...string) int {
	for i, r := range chainRules(nat, chain) {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(r, s)
		}
		if ok {
			return i
		}
	}
	return -1
}

// redisPath is the live path of the redis Service on a node: the rule ids of KUBE-SERVICES →
// KUBE-SVC → KUBE-SEP → DNAT and the chains.
type redisPath struct {
	svcChain, sepChain         string
	services, masq, jump, dnat string
}

func liveRedisPath(tb testing.TB, l *lab, node string) redisPath {
	tb.Helper()
	nat := tableOf(l.iptablesSave(tb, node), "nat")
	p := redisPath{svcChain: svcChainOf(tb, nat, "default/redis")}
	p.services = ruleID("KUBE-SERVICES", ruleIndex(nat, "KUBE-SERVICES", `"default/redis cluster IP"`))
	p.masq = ruleID(p.svcChain, ruleIndex(nat, p.svcChain, "-j KUBE-MARK-MASQ"))
	j := ruleIndex(nat, p.svcChain, "-j KUBE-SEP-")
	if j < 0 {
		tb.Fatalf("%s on %s jumps to no KUBE-SEP:\n%s", p.svcChain, node, strings.Join(chainRules(nat, p.svcChain), "\n"))
	}
	p.jump = ruleID(p.svcChain, j)
	p.sepChain = jumpTarget(chainRules(nat, p.svcChain)[j])
	p.dnat = ruleID(p.sepChain, ruleIndex(nat, p.sepChain, "-j DNAT"))
	if strings.HasSuffix(p.services, "/0") || strings.HasSuffix(p.masq, "/0") || strings.HasSuffix(p.dnat, "/0") {
		tb.Fatalf("redis rules on %s are incomplete: %+v", node, p)
	}
	return p
}

// browserGraph: node-1's graph of default/testsvc shows its KUBE-SVC chain, the seven KUBE-SEP
// chains of the live rules, their pods and the probability of each pick.
func browserGraph(t *testing.T, l *lab, ctx context.Context, url string) {
	const node, svc = "node-1", "default/testsvc"
	nat := tableOf(l.iptablesSave(t, node), "nat")
	svcChain := svcChainOf(t, nat, svc)
	var seps, probs []string
	for _, r := range chainRules(nat, svcChain) {
		if t := jumpTarget(r); strings.HasPrefix(t, "KUBE-SEP-") {
			seps = append(seps, t)
			p := ""
			if m := probabilityRE.FindStringSubmatch(r); m != nil {
				p = m[1]
			}
			probs = append(probs, p)
		}
	}
	if len(seps) != 7 {
		t.Fatalf("%s on %s jumps to %d KUBE-SEP chains, want the seed's 7", svcChain, node, len(seps))
	}
	// The labels the UI must show for each pick, in rule order: on the rule's row the
	// conditional and the overall share, on its edge the overall share and the probability
	// (the last pick has none: it takes the rest).
	var wantRows, wantEdges []string
	for _, p := range probs {
		if p == "" {
			wantRows = append(wantRows, "the rest → 1 in 7 overall")
			wantEdges = append(wantEdges, "the rest: 1 in 7 overall")
			continue
		}
		f, err := strconv.ParseFloat(p, 64)
		if err != nil {
			t.Fatal(err)
		}
		wantRows = append(wantRows, fmt.Sprintf("p=%.4f of what reaches this rule → 1 in 7 overall", f))
		wantEdges = append(wantEdges, fmt.Sprintf("1 in 7 overall (p=%.4f)", f))
	}
	var wantPods []string
	for _, p := range l.listPods(t, "default", "app=testsvc") {
		wantPods = append(wantPods, "pod:"+hostPort(p.Status.PodIP, 80))
	}
	slices.Sort(wantPods)

	openUI(t, ctx, url, node)
	pickService(t, ctx, "testsvc", svc)
	browserWait(t, ctx, "the testsvc graph", `document.querySelector('#graph g.node[data-name=`+jsString(svcChain)+`]') !== null &&
		document.querySelectorAll('#graph g.node.kind-endpoint').length === 7 &&
		document.getElementById('summaries').textContent.includes('for default/testsvc')`)

	gotSeps := browserEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph g.node.kind-endpoint')).map(g => g.dataset.name).sort()`)
	if diff := cmp.Diff(slices.Sorted(slices.Values(seps)), gotSeps); diff != "" {
		t.Errorf("KUBE-SEP chains drawn vs %s's live rules (-live +drawn):\n%s", node, diff)
	}
	gotPods := browserEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph g.node.kind-pod')).map(g => g.dataset.id).sort()`)
	if diff := cmp.Diff(wantPods, gotPods); diff != "" {
		t.Errorf("pods drawn (-testsvc's pods +drawn):\n%s", diff)
	}
	gotLabels := browserEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph text.edge-label'))
		.filter(e => e.dataset.rule.startsWith(`+jsString("nat/"+svcChain+"/")+`))
		.filter(e => document.querySelector('#graph path.edge[data-rule="' + e.dataset.rule + '"]').dataset.to.includes('KUBE-SEP-'))
		.sort((a, b) => parseInt(a.dataset.rule.split('/')[2], 10) - parseInt(b.dataset.rule.split('/')[2], 10))
		.map(e => e.textContent)`)
	if diff := cmp.Diff(wantEdges, gotLabels); diff != "" {
		t.Errorf("KUBE-SVC → KUBE-SEP edge labels (-want +drawn):\n%s", diff)
	}
	var rowIDs []string
	for _, sep := range seps {
		rowIDs = append(rowIDs, ruleID(svcChain, ruleIndex(nat, svcChain, "-j "+sep)))
	}
	gotRows := browserEval[[]string](t, ctx, `[`+strings.Join(jsStrings(rowIDs), ",")+`].map(id => {
		const r = document.querySelector('#graph g.rule[data-id="' + id + '"] .label');
		return r ? r.textContent : 'no row ' + id;
	})`)
	if diff := cmp.Diff(wantRows, gotRows); diff != "" {
		t.Errorf("KUBE-SVC → KUBE-SEP row labels (-want +drawn):\n%s", diff)
	}
	names := browserEval[string](t, ctx, `Array.from(document.querySelectorAll('#graph g.node')).map(g => g.dataset.name).join(' ')`)
	for _, want := range []string{"PREROUTING", "OUTPUT", "KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXT-" + strings.TrimPrefix(svcChain, "KUBE-SVC-")} {
		if !strings.Contains(names, want) {
			t.Errorf("graph lacks %s: %s", want, names)
		}
	}
	browserShot(t, ctx, "e2e-graph.png")
	// The whole drawing at once, for whoever looks at the artifacts.
	browserDo(t, ctx, "fit", chromedp.Click(chromedp.CSS(`#zoom-fit`)))
	browserShot(t, ctx, "e2e-graph-fit.png")
}

// browserCounters: traffic from the client pod to redis moves the counters the page shows for
// redis's KUBE-SVC → KUBE-SEP rule on the client's node, and the page highlights that rule.
func browserCounters(t *testing.T, l *lab, ctx context.Context, url string) {
	client, ok := l.getPod(t, "default", "client")
	if !ok {
		t.Fatal("the demo has no client pod")
	}
	node := client.Spec.NodeName
	rp := liveRedisPath(t, l, node)

	openUI(t, ctx, url, node)
	pickService(t, ctx, "redis", "default/redis")
	browserWait(t, ctx, "redis's rules", jsPackets(rp.jump)+` >= 0 && `+jsPackets(rp.dnat)+` >= 0 && `+jsPackets(rp.masq)+` >= 0`)
	before := map[string]int{}
	for _, id := range []string{rp.jump, rp.dnat, rp.masq} {
		before[id] = browserEval[int](t, ctx, jsPackets(id))
	}

	const n = 5
	for i := range n {
		r := l.exec(t, "default", "client", "curl", "-s", "--max-time", "5", "http://"+redisAddr+"/")
		if r.code != 0 || !strings.Contains(r.stdout, "pod: redis-0") {
			t.Fatalf("curl %d to redis from the client: %s", i, r)
		}
	}
	// The row is highlighted from the refresh that saw it move until the next one (~1 s).
	browserWait(t, ctx, "the moved counters", fmt.Sprintf(`%s >= %d && %s >= %d &&
		document.querySelector(%s).classList.contains('moved') &&
		document.querySelector(%s).classList.contains('moved') &&
		document.querySelector('#graph path.edge[data-rule="%s"]').classList.contains('moved')`,
		jsPackets(rp.jump), before[rp.jump]+n, jsPackets(rp.dnat), before[rp.dnat]+n,
		jsString(ruleSel(rp.jump)), jsString(ruleSel(rp.dnat)), rp.jump))
	browserShot(t, ctx, "e2e-counters.png")
	// Pod-to-Service traffic is not masqueraded: the "not from the pod network" rule stays put.
	if got := browserEval[int](t, ctx, jsPackets(rp.masq)); got != before[rp.masq] {
		t.Errorf("%s (mark for masquerade) moved from %d to %d packets on traffic from a pod", rp.masq, before[rp.masq], got)
	}
	if refresh := browserEval[string](t, ctx, `document.getElementById('refresh').textContent`); !strings.HasPrefix(refresh, "counters ") {
		t.Errorf("refresh line %q", refresh)
	}
}

// browserTrace: a real trace from the client pod to the redis Service marks KUBE-SERVICES →
// KUBE-SVC → KUBE-SEP → DNAT and the pod that answered, and shows the echo reply.
func browserTrace(t *testing.T, l *lab, ctx context.Context, url string) {
	client, ok := l.getPod(t, "default", "client")
	if !ok {
		t.Fatal("the demo has no client pod")
	}
	redis, ok := l.getPod(t, "default", "redis-0")
	if !ok {
		t.Fatal("the demo has no redis-0 pod")
	}
	rp := liveRedisPath(t, l, client.Spec.NodeName)

	openUI(t, ctx, url, "")
	browserDo(t, ctx, "open Trace", chromedp.Click(chromedp.CSS(`#tabs button[data-view="trace"]`)))
	browserWait(t, ctx, "the source list", `Array.from(document.querySelectorAll('#trace-source option')).some(o => o.value === 'default/client') &&
		document.querySelector('#trace-dests option[value="default/redis"]') !== null`)
	if browserEval[bool](t, ctx, `document.getElementById('trace-simulate').checked`) {
		t.Fatal("simulate is checked by default")
	}
	browserDo(t, ctx, "fill the trace form",
		chromedp.SetValue(chromedp.CSS(`#trace-source`), "default/client"),
		chromedp.SendKeys(chromedp.CSS(`#trace-dest`), "default/redis"),
		chromedp.Click(chromedp.CSS(`#trace-form button[type="submit"]`)),
	)
	// The UI switches to the chains of the entry node and Service and marks the path.
	browserWait(t, ctx, "the traced path", `document.querySelector('#graph path.edge.hit[data-rule="`+rp.jump+`"]') !== null &&
		!document.getElementById('trace-banner').hidden`)
	if to := browserEval[string](t, ctx, `document.querySelector('#graph path.edge[data-rule="`+rp.jump+`"]').dataset.to`); to != "chain:"+rp.sepChain {
		t.Errorf("the highlighted KUBE-SVC edge goes to %q, want chain:%s", to, rp.sepChain)
	}
	hits := browserEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph g.rule.hit')).map(r => r.dataset.id)`)
	for _, want := range []string{"nat/PREROUTING/1", rp.services, rp.jump, rp.dnat} {
		if !slices.Contains(hits, want) {
			t.Errorf("rule %s not highlighted; highlighted: %v", want, hits)
		}
	}
	if slices.Contains(hits, rp.masq) {
		t.Errorf("the masquerade rule %s is highlighted for a packet from a pod: %v", rp.masq, hits)
	}
	podID := "pod:" + hostPort(redis.Status.PodIP, 6379)
	if !browserEval[bool](t, ctx, `document.querySelector('#graph g.node.hit[data-id="`+podID+`"]') !== null`) {
		t.Errorf("the answering pod %s is not highlighted", podID)
	}
	if n := browserEval[int](t, ctx, `document.querySelectorAll('#graph path.edge.hit[data-to="`+podID+`"]').length`); n != 1 {
		t.Errorf("%d highlighted edges into %s, want the DNAT's", n, podID)
	}
	banner := browserEval[string](t, ctx, `document.getElementById('trace-banner').textContent`)
	for _, want := range []string{"kernel trace", "default/client → 10.96.0.100:6379", "answered by default/redis-0", "pod=redis-0 "} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner %q lacks %q", banner, want)
		}
	}
	// The sidebar follows the trace to its node and marks its Service.
	node := client.Spec.NodeName
	browserWait(t, ctx, "the sidebar of "+node, `document.getElementById('svc-count').textContent.includes(`+jsString(node+"'s rules")+`) &&
		document.querySelector('#svc-list button.svc.on[data-service="default/redis"]') !== null`)
	browserShot(t, ctx, "e2e-trace-graph.png")
	browserDo(t, ctx, "fit", chromedp.Click(chromedp.CSS(`#zoom-fit`)))
	browserShot(t, ctx, "e2e-trace-graph-fit.png")

	browserDo(t, ctx, "back to Trace", chromedp.Click(chromedp.CSS(`#tabs button[data-view="trace"]`)))
	badge := browserEval[string](t, ctx, `document.querySelector('#trace-result .badge').textContent`)
	if badge != "kernel's own trace of a real packet" {
		t.Errorf("badge %q, want the kernel trace's", badge)
	}
	reply := browserEval[string](t, ctx, `document.querySelector('#trace-result pre.reply').textContent`)
	rep, err := parseEchoLine(strings.TrimSpace(reply)) // the probe speaks the echo's line protocol
	if err != nil {
		t.Fatalf("echo reply shown: %v", err)
	}
	if rep.Pod != "redis-0" || rep.Port != 6379 || clientIP(rep) != client.Status.PodIP {
		t.Errorf("echo reply shown: pod %s port %d client %s; want redis-0, 6379 and the client pod's own IP %s", rep.Pod, rep.Port, rep.Client, client.Status.PodIP)
	}
	facts := browserEval[string](t, ctx, `document.querySelector('#trace-result dl.facts').textContent`)
	if !strings.Contains(facts, "default/redis-0") || !strings.Contains(facts, hostPort(redis.Status.PodIP, 6379)) {
		t.Errorf("trace facts %q lack the pod and its DNAT address", facts)
	}
	browserShot(t, ctx, "e2e-trace-result.png")
}

// browserApplyInvalid: invalid Services in the Apply view show the REAL API's 422 field errors,
// one row per object, and nothing is stored.
func browserApplyInvalid(t *testing.T, l *lab, ctx context.Context, url string) {
	const badName = "Bad_Name"
	badPort := uniq("e2e-badport")
	manifest := "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + badName + "\nspec:\n  selector:\n    app: nothing\n  ports:\n  - port: 80\n" +
		"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: " + badPort + "\nspec:\n  selector:\n    app: nothing\n  ports:\n  - port: 99999\n    targetPort: 80\n"
	openUI(t, ctx, url, "")
	browserDo(t, ctx, "open Apply", chromedp.Click(chromedp.CSS(`#tabs button[data-view="apply"]`)))
	browserDo(t, ctx, "type the manifest", chromedp.SendKeys(chromedp.CSS(`#apply-text`), manifest))
	if got := browserEval[string](t, ctx, `document.getElementById('apply-text').value`); got != manifest {
		t.Fatalf("the apply box holds %q, want %q", got, manifest)
	}
	browserDo(t, ctx, "apply", chromedp.Click(chromedp.CSS(`#apply-btn`)))
	browserWait(t, ctx, "the results", `document.querySelectorAll('#apply-result tbody tr').length === 2`)

	type row struct{ Object, Action, Class, Fields, Text string }
	got := browserEval[[]row](t, ctx, `Array.from(document.querySelectorAll('#apply-result tbody tr')).map(tr => ({
		Object: tr.children[2].textContent, Action: tr.children[3].textContent, Class: tr.className,
		Fields: Array.from(tr.querySelectorAll('code.field')).map(c => c.textContent).join(','), Text: tr.textContent}))`)
	want := []row{
		{Object: "default/" + badName, Action: "error", Class: "action-error", Fields: "metadata.name"},
		{Object: "default/" + badPort, Action: "error", Class: "action-error", Fields: "spec.ports[0].port"},
	}
	texts := []string{"a DNS-1035 label must consist of lower case alphanumeric characters", "Invalid value: 99999: must be between 1 and 65535, inclusive"}
	for i := range got {
		if i < len(texts) && !strings.Contains(got[i].Text, texts[i]) {
			t.Errorf("result row %d %q lacks %q", i, got[i].Text, texts[i])
		}
		got[i].Text = ""
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("apply results shown (-want +got):\n%s", diff)
	}
	browserShot(t, ctx, "e2e-apply-invalid.png")
	// Nothing was stored.
	for _, name := range []string{badName, badPort} {
		if err := l.callErr(http.MethodGet, servicePath("default", name), "", nil, nil, http.StatusNotFound); err != nil {
			t.Error(err)
		}
	}
}

// browserHTMLAsText: HTML in a Service's and a pod's annotations (and what label values allow)
// is shown as text in the graph, the explanation, the topology and the trace form; nothing runs.
func browserHTMLAsText(t *testing.T, l *lab, ctx context.Context, url string) {
	const (
		imgPayload    = `<img src=x onerror="window.__pwned=1">`
		scriptPayload = `<script>window.__pwned=2</script>`
		labelValue    = "img_src-x.onerror" // label values allow [A-Za-z0-9._-] only
	)
	annotations := map[string]string{"e2e.svclab.dev/img": imgPayload, "e2e.svclab.dev/script": scriptPayload}

	// The API refuses HTML in a label value, so annotations are where HTML can come from.
	rej := clusterIPService(uniq("html-rej"), labelsFor("nothing"), 80, echoPort)
	rej.Labels = map[string]string{"e2e-html": scriptPayload}
	var st metav1.Status
	if err := l.callErr(http.MethodPost, servicePath("default", ""), "application/json", rej, &st, http.StatusUnprocessableEntity); err != nil {
		t.Fatalf("a label value with HTML: %v", err)
	}
	if st.Details == nil || len(st.Details.Causes) == 0 || !strings.HasPrefix(st.Details.Causes[0].Field, "metadata.labels") {
		t.Errorf("refusal of a label value with HTML: %+v", st)
	}

	name := uniq("html")
	pod := echoPod(name+"-0", "node-1", labelsFor(name), tcpPort(echoPort))
	pod.Labels["e2e-note"] = labelValue
	pod.Annotations = annotations
	svc := clusterIPService(name, labelsFor(name), 80, echoPort)
	svc.Labels = map[string]string{"e2e-note": labelValue}
	svc.Annotations = annotations
	pods := l.createPods(t, pod)
	t.Cleanup(func() { l.deletePod(t, "default", pod.Name) })
	l.createService(t, svc)
	t.Cleanup(func() {
		l.call(t, http.MethodDelete, servicePath("default", name), "", nil, nil, http.StatusOK, http.StatusAccepted)
	})
	l.waitProgrammed(t, "default/"+name, endpointsOf(pods, echoPort), "node-1")

	// The page would refuse inline scripts by its Content-Security-Policy; bypass it so the test
	// proves nothing is parsed as HTML at all, not that CSP blocks what was.
	csp := ""
	{
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, _ := http.NewRequestWithContext(c, http.MethodGet, url+"/", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp = resp.Header.Get("Content-Security-Policy")
	}
	if !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	browserDo(t, ctx, "bypass CSP", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true})
		return err
	}))

	openUI(t, ctx, url, "node-1")
	pickService(t, ctx, name, "default/"+name)
	svcChain := svcChainOf(t, tableOf(l.iptablesSave(t, "node-1"), "nat"), "default/"+name)
	browserWait(t, ctx, "the graph", `document.querySelector('#graph g.node[data-name="`+svcChain+`"]') !== null && document.querySelector('#graph g.node.kind-endpoint') !== null`)
	// One atomic in-page click: the graph may be redrawn by the live refresh between a
	// query and a separate click, which would leave chromedp holding a detached node.
	browserWait(t, ctx, "explain the pick", `(() => { const r = document.querySelector('#graph g.node.kind-endpoint g.rule:last-of-type');
		if (!r) return false; r.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true; })()`)
	browserWait(t, ctx, "the explanation", `document.getElementById('explain-para').textContent.includes(`+jsString("pod default/"+pod.Name)+`)`)
	browserDo(t, ctx, "open Topology", chromedp.Click(chromedp.CSS(`#tabs button[data-view="topology"]`)))
	browserWait(t, ctx, "the topology tables", `document.getElementById('topo-tables').textContent.includes(`+jsString("default/"+name)+`)`)
	browserShot(t, ctx, "e2e-html-topology.png")
	browserDo(t, ctx, "open Trace", chromedp.Click(chromedp.CSS(`#tabs button[data-view="trace"]`)))
	browserWait(t, ctx, "the trace form", `Array.from(document.querySelectorAll('#trace-source option')).some(o => o.value === `+jsString("default/"+pod.Name)+`)`)

	if v := browserEval[string](t, ctx, `String(window.__pwned)`); v != "undefined" {
		t.Errorf("injected script ran: window.__pwned = %s", v)
	}
	if n := browserEval[int](t, ctx, `document.querySelectorAll('img, iframe, object, embed').length`); n != 0 {
		t.Errorf("%d injected elements in the document", n)
	}
	if srcs := browserEval[[]string](t, ctx, `Array.from(document.querySelectorAll('script')).map(s => s.getAttribute('src') || 'inline')`); !slices.Equal(srcs, []string{"/static/app.js"}) {
		t.Errorf("script elements %v, want only app.js", srcs)
	}
	if n := browserEval[int](t, ctx, `Array.from(document.querySelectorAll('*')).filter(e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length`); n != 0 {
		t.Errorf("%d elements with event-handler attributes", n)
	}
	tables := browserEval[string](t, ctx, `document.getElementById('topo-tables').textContent`)
	for _, want := range []string{
		"e2e.svclab.dev/img=" + imgPayload, "e2e.svclab.dev/script=" + scriptPayload, // the Service's and the pod's
		"e2e-note=" + labelValue,
	} {
		if n := strings.Count(tables, want); n != 2 {
			t.Errorf("the topology tables show %q %d times, want 2 (the pod's and the Service's)", want, n)
		}
	}
}
