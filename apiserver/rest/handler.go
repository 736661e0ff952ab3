package rest

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/svclab/svclab/apiserver/store"
)

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes is
// zero: 3 MiB, kube-apiserver's limit for a single object.
const DefaultMaxBodyBytes = 3 << 20

// DefaultBookmarkInterval is how often a watch that asked for bookmarks gets
// one when Options.BookmarkInterval is zero (kube-apiserver sends them about
// once a minute).
const DefaultBookmarkInterval = time.Minute

// Options configure NewHandler. The zero value is usable.
type Options struct {
	// Logger receives request errors (5xx at Error, others at Debug); nil
	// discards. The handler adds component=rest.
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies (413 beyond); 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Registerer, if not nil, gets the apiserver_request_total counter and the
	// apiserver_request_duration_seconds histogram. Registering twice on the
	// same registry reuses the collectors already there.
	Registerer prometheus.Registerer
	// Ready answers /readyz: nil error = ready ("ok"); nil func = always ready.
	Ready func() error
	// Extra, if not nil, is called with the router after the API routes are
	// registered, to mount more routes on the same server (/lab/v1/…,
	// /metrics, the web UI). Routes match in registration order, so Extra
	// cannot shadow an API path; paths no route matches get a 404 Status.
	Extra func(r *mux.Router)
	// BookmarkInterval is the period of BOOKMARK events on watches that set
	// allowWatchBookmarks=true; 0 means DefaultBookmarkInterval.
	BookmarkInterval time.Duration
	// Version is served at /version; nil serves DefaultVersion().
	Version *version.Info
}

// handler serves the API for one store.
type handler struct {
	st       *store.Store
	log      *slog.Logger
	maxBody  int64
	bookmark time.Duration
	ready    func() error
	version  version.Info
	metrics  *metrics // nil = no metrics
	// byKind finds the resource of an apiVersion/kind pair (for apply).
	byKind map[schema.GroupVersionKind]*store.Resource
}

// NewHandler returns the API server's http.Handler over st: a gorilla/mux
// router with every path listed in the package doc, then whatever
// opts.Extra mounts. It never closes st.
func NewHandler(st *store.Store, opts Options) http.Handler {
	h := &handler{
		st:       st,
		log:      opts.Logger,
		maxBody:  opts.MaxBodyBytes,
		bookmark: opts.BookmarkInterval,
		ready:    opts.Ready,
		byKind:   map[schema.GroupVersionKind]*store.Resource{},
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "rest")
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.bookmark <= 0 {
		h.bookmark = DefaultBookmarkInterval
	}
	if opts.Version != nil {
		h.version = *opts.Version
	} else {
		h.version = DefaultVersion()
	}
	if opts.Registerer != nil {
		h.metrics = newMetrics(opts.Registerer)
	}
	for _, res := range store.Resources() {
		h.byKind[res.GroupVersionKind()] = res
	}

	r := mux.NewRouter()
	r.NotFoundHandler = h.nonResource(func(w http.ResponseWriter, r *http.Request, rq *request) {
		se := newStatusError(http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
		se.ErrStatus.Details = &metav1.StatusDetails{}
		h.fail(w, r, rq, se, errTarget{})
	})
	for _, res := range store.Resources() {
		prefix := "/api/" + res.Version
		if res.Group != "" {
			prefix = "/apis/" + res.Group + "/" + res.Version
		}
		itemBase := prefix + "/" + res.Name
		if res.Namespaced {
			itemBase = prefix + "/namespaces/{namespace}/" + res.Name
			r.Handle(itemBase, h.collection(res, true))
		}
		r.Handle(prefix+"/"+res.Name, h.collection(res, false))
		r.Handle(itemBase+"/{name}", h.item(res, ""))
		if res.StatusSubresource {
			r.Handle(itemBase+"/{name}/status", h.item(res, "status"))
		}
	}
	h.discoveryRoutes(r)
	h.openAPIRoutes(r)
	r.Handle("/lab/v1/apply", h.nonResource(h.apply))
	for _, p := range []string{"/healthz", "/livez"} {
		r.Handle(p, h.nonResource(func(w http.ResponseWriter, r *http.Request, rq *request) {
			writePlain(w, http.StatusOK, "ok")
		}))
	}
	r.Handle("/readyz", h.nonResource(h.readyz))
	if opts.Extra != nil {
		opts.Extra(r)
	}
	return r
}

// request is what one API request is about, filled in by the route handler
// and read by the metrics and logs afterwards.
type request struct {
	verb        string // kube-apiserver's metric verb: GET LIST WATCH POST PUT PATCH DELETE
	res         *store.Resource
	subresource string
	scope       string // "resource", "namespace", "cluster" ("" for non-resource paths)
	format      format // negotiated response format
}

// statusWriter records the status code of a response. It forwards Flush (for
// watch streams) and Unwrap (for http.ResponseController).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serve runs fn with a recording writer and records the request's metrics.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, rq *request, fn func(http.ResponseWriter, *http.Request, *request)) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	fn(sw, r, rq)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	if h.metrics != nil {
		h.metrics.observe(rq, sw.code, time.Since(start))
	}
}

// nonResource wraps a handler of a path that is not a resource (discovery,
// health, apply); its metric verb is the HTTP method.
func (h *handler) nonResource(fn func(http.ResponseWriter, *http.Request, *request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, &request{verb: r.Method}, fn)
	})
}

// collection serves a resource's collection: list, watch and (when
// inNamespace, or for cluster-scoped resources) create. allNamespaces
// collections of namespaced resources (/api/v1/services) only list and watch.
func (h *handler) collection(res *store.Resource, inNamespace bool) http.Handler {
	scope := "cluster"
	if inNamespace {
		scope = "namespace"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := &request{res: res, scope: scope, verb: r.Method}
		h.serve(w, r, rq, func(w http.ResponseWriter, r *http.Request, rq *request) {
			ns := mux.Vars(r)["namespace"]
			switch {
			case r.Method == http.MethodGet && isWatch(r):
				rq.verb = "WATCH"
				h.watch(w, r, rq, ns)
			case r.Method == http.MethodGet:
				rq.verb = "LIST"
				h.list(w, r, rq, ns)
			case r.Method == http.MethodPost && (inNamespace || !res.Namespaced):
				h.create(w, r, rq, ns)
			default:
				allow := "GET"
				if inNamespace || !res.Namespaced {
					allow = "GET, POST"
				}
				h.methodNotAllowed(w, r, rq, allow)
			}
		})
	})
}

// item serves one object (subresource "") or its status subresource.
func (h *handler) item(res *store.Resource, subresource string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := &request{res: res, subresource: subresource, scope: "resource", verb: r.Method}
		h.serve(w, r, rq, func(w http.ResponseWriter, r *http.Request, rq *request) {
			vars := mux.Vars(r)
			ns, name := vars["namespace"], vars["name"]
			switch r.Method {
			case http.MethodGet:
				h.get(w, r, rq, ns, name)
			case http.MethodPut:
				h.update(w, r, rq, ns, name)
			case http.MethodPatch:
				h.patch(w, r, rq, ns, name)
			case http.MethodDelete:
				if subresource != "" {
					h.methodNotAllowed(w, r, rq, "GET, PUT, PATCH")
					return
				}
				h.delete(w, r, rq, ns, name)
			default:
				allow := "GET, PUT, PATCH, DELETE"
				if subresource != "" {
					allow = "GET, PUT, PATCH"
				}
				h.methodNotAllowed(w, r, rq, allow)
			}
		})
	})
}

// isWatch reports whether a GET of a collection asks for a watch (?watch=true
// or any value strconv.ParseBool accepts as true, e.g. 1).
func isWatch(r *http.Request) bool {
	switch strings.ToLower(r.URL.Query().Get("watch")) {
	case "true", "1", "t":
		return true
	}
	return false
}

func (h *handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, rq *request, allow string) {
	w.Header().Set("Allow", allow)
	gr := schema.GroupResource{}
	if rq.res != nil {
		gr = schema.GroupResource{Group: rq.res.Group, Resource: rq.res.Name}
		if rq.subresource != "" {
			gr.Resource += "/" + rq.subresource
		}
	}
	h.fail(w, r, rq, apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method)), errTarget{})
}

// fail writes err as a Status in the request's negotiated format (JSON if
// negotiation itself failed), with the Status's code.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, rq *request, err error, t errTarget) {
	se := statusFor(err, t)
	st := statusObject(se)
	f := rq.format
	if f == formatTable {
		f = formatJSON
	}
	attrs := []any{"method", r.Method, "path", r.URL.Path, "code", st.Code, "reason", st.Reason, "message", st.Message}
	if st.Code >= 500 {
		h.log.Error("request failed", append(attrs, "err", err)...)
	} else {
		h.log.Debug("request refused", attrs...)
	}
	if werr := writeBody(w, int(st.Code), f, isPrettyPrint(r), st); werr != nil {
		h.log.Debug("write error response", "path", r.URL.Path, "err", werr)
	}
}

// writePlain writes a text/plain body.
func writePlain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request, rq *request) {
	if h.ready != nil {
		if err := h.ready(); err != nil {
			writePlain(w, http.StatusServiceUnavailable, "[-]ready failed: "+err.Error()+"\nreadyz check failed\n")
			return
		}
	}
	writePlain(w, http.StatusOK, "ok")
}
