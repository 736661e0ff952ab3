package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/svclab/svclab/dataplane"
)

// ErrUnknownNode is wrapped by Backend errors about a node that does not
// exist; the handler answers 404.
var ErrUnknownNode = errors.New("unknown node")

//go:embed static
var staticFiles embed.FS

// contentSecurityPolicy keeps the UI to its own scripts and styles: no
// inline script, nothing from elsewhere.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// explainLimit is the number of displayed rules up to which graph JSON
// carries every explanation (one Service's graph does; a whole node's
// fetches them from /lab/v1/explain on click).
const explainLimit = 400

// topologyTTL is how long the handler reuses a Topology for naming pods in
// graphs (the trace and topology endpoints always fetch a fresh one).
const topologyTTL = 2 * time.Second

// handler serves the UI and /lab/v1 endpoints.
type handler struct {
	b          Backend
	opts       Options
	log        *slog.Logger
	cache      *ruleCache
	startTrace KernelTraceFunc
	traceMu    sync.Mutex // one trace at a time: probes are real packets

	topoMu  sync.Mutex
	topo    *Topology
	topoIdx *topoIndex
	topoAt  time.Time
}

// NewHandler returns the web UI and its endpoints as one http.Handler; see
// Register for the routes. Unknown paths get a 404 Status.
func NewHandler(b Backend, opts Options) http.Handler {
	r := mux.NewRouter()
	Register(r, b, opts)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{}, req.URL.Path))
	})
	return r
}

// Register mounts the UI and its endpoints on r (e.g. the API server's
// router, through its Extra hook):
//
//	GET  /                      the UI (index.html); /static/… its assets
//	GET  /examples.yaml         the seed's example manifests, concatenated
//	GET  /lab/v1/nodes          the node names
//	GET  /lab/v1/graph          ?node=&table=nat|filter&service=ns/name[,…]&namespace=&format=json|dot|svg|mermaid
//	GET  /lab/v1/counters       ?node=&table=&service=&namespace= (the same selection as graph)
//	GET  /lab/v1/services       ?node=&q=&limit= (the Services in the node's rules)
//	GET  /lab/v1/explain        ?node=&table=&id= (one rule or chain, for graphs too large to carry all explanations)
//	GET  /lab/v1/topology       the lab's nodes, pods, links and Services
//	POST /lab/v1/trace          {source, destination, port, protocol, simulate, node}
//
// Errors are metav1.Status JSON. /lab/v1/trace answers only loopback
// clients, or clients with "Authorization: Bearer <APIToken>" when
// Options.APIToken is set (403 otherwise).
func Register(r *mux.Router, b Backend, opts Options) {
	h := newHandler(b, opts)
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	files := http.FileServer(http.FS(static))
	r.Handle("/", h.method(http.MethodGet, func(w http.ResponseWriter, req *http.Request) {
		uiHeaders(w)
		http.ServeFileFS(w, req, static, "index.html")
	}))
	r.PathPrefix("/static/").Handler(h.method(http.MethodGet, func(w http.ResponseWriter, req *http.Request) {
		uiHeaders(w)
		http.StripPrefix("/static", files).ServeHTTP(w, req)
	}))
	r.Handle("/examples.yaml", h.method(http.MethodGet, h.examples))
	r.Handle("/lab/v1/nodes", h.method(http.MethodGet, h.nodes))
	r.Handle("/lab/v1/graph", h.method(http.MethodGet, h.graph))
	r.Handle("/lab/v1/counters", h.method(http.MethodGet, h.counters))
	r.Handle("/lab/v1/services", h.method(http.MethodGet, h.services))
	r.Handle("/lab/v1/explain", h.method(http.MethodGet, h.explain))
	r.Handle("/lab/v1/topology", h.method(http.MethodGet, h.topology))
	r.Handle("/lab/v1/trace", h.method(http.MethodPost, h.trace))
}

func newHandler(b Backend, opts Options) *handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.AutoDrawLimit <= 0 {
		opts.AutoDrawLimit = 40
	}
	log = log.With("component", "web")
	h := &handler{b: b, opts: opts, log: log, cache: newRuleCache(b, log), startTrace: opts.KernelTrace}
	if h.startTrace == nil {
		h.startTrace = func(ctx context.Context, netnsPath string, m dataplane.TraceMatch) (KernelTraceStopper, error) {
			return dataplane.StartKernelTrace(ctx, netnsPath, m)
		}
	}
	return h
}

func uiHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// method restricts a route to one method (HEAD too for GET), answering 405
// with a Status otherwise.
func (h *handler) method(m string, fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m && !(m == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", m)
			writeStatus(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: "lab", Resource: strings.TrimPrefix(r.URL.Path, "/lab/v1/")}, r.Method))
			return
		}
		fn(w, r)
	})
}

// writeStatus writes a Kubernetes Status.
func writeStatus(w http.ResponseWriter, se *apierrors.StatusError) {
	st := se.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}

// fail maps an error to a Status and logs it.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *apierrors.StatusError
	switch {
	case errors.As(err, &se):
	case errors.Is(err, ErrUnknownNode):
		se = apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, strings.TrimSpace(r.URL.Query().Get("node")))
		se.ErrStatus.Message = err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		se = apierrors.NewTimeoutError(err.Error(), 1)
	case errors.Is(err, context.Canceled):
		return // the client went away
	default:
		se = apierrors.NewInternalError(err)
	}
	if se.Status().Code >= 500 {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		h.log.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeStatus(w, se)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// examples serves Options.Examples as one YAML stream, in file name order.
func (h *handler) examples(w http.ResponseWriter, r *http.Request) {
	var entries []fs.DirEntry
	if h.opts.Examples != nil {
		var err error
		if entries, err = fs.ReadDir(h.opts.Examples, "."); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	var b strings.Builder
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		data, err := fs.ReadFile(h.opts.Examples, e.Name())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if b.Len() > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "# %s\n", e.Name())
		b.Write(data)
		if !strings.HasSuffix(string(data), "\n") {
			b.WriteString("\n")
		}
	}
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, b.String())
}

func (h *handler) nodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := h.b.Nodes(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if nodes == nil {
		nodes = []string{}
	}
	writeJSON(w, map[string]any{"nodes": nodes, "autoDrawLimit": h.opts.AutoDrawLimit})
}

// node returns the node parameter, or the first node.
func (h *handler) node(r *http.Request) (string, error) {
	if n := strings.TrimSpace(r.URL.Query().Get("node")); n != "" {
		return n, nil
	}
	nodes, err := h.b.Nodes(r.Context())
	if err != nil {
		return "", err
	}
	if len(nodes) == 0 {
		return "", apierrors.NewServiceUnavailable("the lab has no nodes")
	}
	return nodes[0], nil
}

// graphOptions reads the selection parameters shared by graph and counters.
func (h *handler) graphOptions(r *http.Request) (GraphOptions, error) {
	q := r.URL.Query()
	node, err := h.node(r)
	if err != nil {
		return GraphOptions{}, err
	}
	opts := GraphOptions{Node: node, Table: dataplane.Table(q.Get("table")), Namespace: strings.TrimSpace(q.Get("namespace")), ClusterCIDR: h.opts.ClusterCIDR}
	switch opts.Table {
	case "":
		opts.Table = dataplane.TableNAT
	case dataplane.TableNAT, dataplane.TableFilter:
	default:
		return GraphOptions{}, apierrors.NewBadRequest(fmt.Sprintf("table %q: svclab draws the nat and filter tables", opts.Table))
	}
	for _, v := range q["service"] {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if !strings.Contains(s, "/") {
				return GraphOptions{}, apierrors.NewBadRequest(fmt.Sprintf("service %q: want namespace/name or namespace/name:port", s))
			}
			opts.Services = append(opts.Services, s)
		}
	}
	return opts, nil
}

// cachedTopology returns a Topology at most topologyTTL old with its pod
// index (nil on error: graphs then name no pods).
func (h *handler) cachedTopology(ctx context.Context) (*Topology, *topoIndex) {
	h.topoMu.Lock()
	defer h.topoMu.Unlock()
	if h.topo != nil && time.Since(h.topoAt) < topologyTTL {
		return h.topo, h.topoIdx
	}
	t, err := h.b.Topology(ctx)
	if err != nil {
		h.log.Warn("topology for the graph", "err", err)
		return h.topo, h.topoIdx
	}
	ix := newTopoIndex(t)
	h.topo, h.topoIdx, h.topoAt = t, &ix, time.Now()
	return t, &ix
}

func (h *handler) graph(w http.ResponseWriter, r *http.Request) {
	opts, err := h.graphOptions(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	format := r.URL.Query().Get("format")
	switch format {
	case "", "json", "dot", "svg", "mermaid":
	default:
		h.fail(w, r, apierrors.NewBadRequest(fmt.Sprintf("format %q: want json, dot, svg or mermaid", format)))
		return
	}
	rs, err := h.cache.rules(r.Context(), opts.Node)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	opts.Topology, opts.index = h.cachedTopology(r.Context())
	opts.ExplainLimit = explainLimit
	g, err := h.buildFresh(r.Context(), rs, opts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	switch format {
	case "dot":
		w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
		_, _ = io.WriteString(w, g.DOT())
	case "svg":
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_, _ = io.WriteString(w, g.SVG())
	case "mermaid":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, g.Mermaid())
	default:
		if g.ExplainOmitted {
			slim(g)
		}
		writeJSON(w, g)
	}
}

// slim drops from a large graph's JSON what /lab/v1/explain gives on
// demand: the rules' text and the edges' long labels.
func slim(g *Graph) {
	for _, n := range g.Nodes {
		for _, r := range n.Rules {
			r.Text = ""
		}
	}
	for _, e := range g.Edges {
		e.Label = ""
	}
}

func (h *handler) explain(w http.ResponseWriter, r *http.Request) {
	opts, err := h.graphOptions(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id := r.URL.Query().Get("id")
	rs, err := h.cache.rules(r.Context(), opts.Node)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	topo, ix := h.cachedTopology(r.Context())
	if ix == nil {
		i := newTopoIndex(topo)
		ix = &i
	}
	e, ok := explainID(rs, opts.Table, id, h.opts.ClusterCIDR, *ix)
	if !ok {
		h.fail(w, r, apierrors.NewNotFound(schema.GroupResource{Group: "lab", Resource: "rules"}, id))
		return
	}
	writeJSON(w, e)
}

// CountersResponse is the answer of /lab/v1/counters: the live counters of
// the rules the same graph request displays.
type CountersResponse struct {
	Node  string `json:"node"`
	Table string `json:"table"`
	// Hash equals the graph's Hash while the displayed rules are
	// unchanged; when it differs, fetch the graph again.
	Hash string `json:"hash"`
	// Rules maps rule IDs to [packets, bytes].
	Rules map[string][2]uint64 `json:"rules"`
	// Chains maps built-in chain node IDs to their policy [packets, bytes].
	Chains map[string][2]uint64 `json:"chains"`
	// CountersAt maps the chain node IDs whose counters are not read on
	// every request (shared chains of more than 1,000 rules, refreshed
	// every 5 s in the background) to when they were read (RFC 3339).
	// Every other chain's counters are live.
	CountersAt map[string]string `json:"countersAt,omitempty"`
}

func (h *handler) counters(w http.ResponseWriter, r *http.Request) {
	opts, err := h.graphOptions(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rs, err := h.cache.rules(r.Context(), opts.Node)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	opts.countersOnly = true
	g, err := h.buildFresh(r.Context(), rs, opts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp := CountersResponse{Node: g.Node, Table: g.Table, Hash: g.Hash, Rules: map[string][2]uint64{}, Chains: map[string][2]uint64{}}
	for _, n := range g.Nodes {
		for _, gr := range n.Rules {
			resp.Rules[gr.ID] = [2]uint64{gr.Packets, gr.Bytes}
		}
		if n.Counters != nil {
			resp.Chains[n.ID] = [2]uint64{n.Counters.Packets, n.Counters.Bytes}
		}
		if n.CountersAt != "" {
			if resp.CountersAt == nil {
				resp.CountersAt = map[string]string{}
			}
			resp.CountersAt[n.ID] = n.CountersAt
		}
	}
	writeJSON(w, resp)
}

func (h *handler) services(w http.ResponseWriter, r *http.Request) {
	node, err := h.node(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit := 200
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			h.fail(w, r, apierrors.NewBadRequest(fmt.Sprintf("limit %q: want a positive number", s)))
			return
		}
		limit = min(n, 5000)
	}
	entries, err := h.cache.services(r.Context(), node)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	items, matched := searchServices(entries, r.URL.Query().Get("q"), limit)
	writeJSON(w, ServiceList{Node: node, Total: len(entries), Matched: matched, Items: items})
}

func (h *handler) topology(w http.ResponseWriter, r *http.Request) {
	t, err := h.b.Topology(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if t == nil {
		t = &Topology{}
	}
	writeJSON(w, t)
}

// mayProbe reports whether the request may trace and probe: a loopback
// client addressing the server by a loopback name (so a web page from
// elsewhere cannot reach it through DNS rebinding), with no foreign Origin;
// or any client with the API token.
func (h *handler) mayProbe(r *http.Request) bool {
	if tok := h.opts.APIToken; tok != "" {
		if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(auth)), []byte(tok)) == 1 {
			return true
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return false
	}
	if !isLoopbackHost(r.Host) {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// isLoopbackHost reports whether a Host header names this machine's
// loopback ("localhost", 127.0.0.0/8, ::1), with or without a port.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// forbidden is the Status for a trace from elsewhere.
func forbidden(what string) *apierrors.StatusError {
	return apierrors.NewForbidden(schema.GroupResource{Group: "lab", Resource: what}, "",
		errors.New("tracing and probing send real packets: only loopback clients may, or clients with the API token (Authorization: Bearer …)"))
}

// statusf builds a 422 Status for a bad trace request, with the field.
func invalid(field, msg string) *apierrors.StatusError {
	se := apierrors.NewBadRequest(field + ": " + msg)
	se.ErrStatus.Code = http.StatusUnprocessableEntity
	se.ErrStatus.Reason = metav1.StatusReasonInvalid
	se.ErrStatus.Details = &metav1.StatusDetails{Kind: "trace", Causes: []metav1.StatusCause{{Type: metav1.CauseTypeFieldValueInvalid, Field: field, Message: msg}}}
	return se
}

// buildFresh builds the graph and, when the rules came from the cache,
// overlays the displayed chains' live counters (ChainReader). Chains of
// more than bigChainRules rules are not read per request: their counters
// come from a read at most bigChainRefresh old (refreshed in the
// background), and their nodes say so (CountersAt, Summary). If the live
// chains no longer match the cached rules, the cache is dropped and the
// graph rebuilt from a fresh dump.
func (h *handler) buildFresh(ctx context.Context, rs *dataplane.Ruleset, opts GraphOptions) (*Graph, error) {
	g := BuildGraph(rs, opts)
	if h.cache.cr == nil {
		return g, nil
	}
	var live, big []string
	for _, name := range graphCounterTargets(g) {
		if h.cache.isBig(rs, opts.Table, name) {
			big = append(big, name)
		} else {
			live = append(live, name)
		}
	}
	var bigChains map[string]*dataplane.Chain
	var bigAt map[string]time.Time
	if len(big) > 0 {
		if bigChains, bigAt = h.cache.bigCounters(opts.Node, rs, opts.Table, big); bigChains == nil {
			// rs is no longer cached: read everything live.
			live = append(live, big...)
			slices.Sort(live)
		}
	}
	fresh, err := h.cache.chainCounters(ctx, opts.Node, opts.Table, live)
	if err != nil {
		return nil, err
	}
	ok := applyChainCounters(g, func(name string) *dataplane.Chain {
		if c, ok := bigChains[name]; ok {
			return c
		}
		if fresh == nil {
			return nil
		}
		return fresh.Chain(opts.Table, name)
	})
	if ok {
		markDelayed(g, bigAt, h.cache.bigRefresh)
		return g, nil
	}
	h.cache.invalidate(opts.Node)
	rs, err = h.cache.rules(ctx, opts.Node)
	if err != nil {
		return nil, err
	}
	return BuildGraph(rs, opts), nil
}

// markDelayed sets CountersAt of the chains whose counters are not live
// and says so in their summaries.
func markDelayed(g *Graph, at map[string]time.Time, every time.Duration) {
	if len(at) == 0 {
		return
	}
	note := fmt.Sprintf("counters refreshed every %v", every)
	for _, n := range g.Nodes {
		t, ok := at[n.Name]
		if !ok || !strings.HasPrefix(n.ID, "chain:") {
			continue
		}
		n.CountersAt = t.UTC().Format(time.RFC3339Nano)
		if n.Summary == "" {
			n.Summary = n.Name + ": " + note
		} else {
			n.Summary += " · " + note
		}
	}
	g.Summaries = g.Summaries[:0]
	for _, n := range g.Nodes {
		if n.Summary != "" {
			g.Summaries = append(g.Summaries, n.Summary)
		}
	}
}

// graphCounterTargets lists the chains of a graph (for fresh counters).
func graphCounterTargets(g *Graph) []string {
	var out []string
	for _, n := range g.Nodes {
		if strings.HasPrefix(n.ID, "chain:") {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}
