package rest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/apiserver/store"
)

// event is a decoded watch line.
type event struct {
	Type   string `json:"type"`
	Object obj    `json:"object"`
}

func (e event) String() string {
	return fmt.Sprintf("%s %s/%s rv=%s", e.Type, str(e.Object, "metadata", "namespace"), str(e.Object, "metadata", "name"),
		str(e.Object, "metadata", "resourceVersion"))
}

// watchStream reads a watch response line by line in the background.
type watchStream struct {
	t      testing.TB
	lines  chan []byte
	errc   chan error // the read error that ended the stream (io.EOF at a clean end)
	cancel context.CancelFunc
	header http.Header
}

func (a *testAPI) watch(path string, hdr ...string) *watchStream {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", a.srv.URL+path, nil)
	if err != nil {
		cancel()
		a.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		a.t.Fatalf("watch %s: %v", path, err)
	}
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		a.t.Fatalf("watch %s: status %d: %s", path, res.StatusCode, data)
	}
	w := &watchStream{t: a.t, lines: make(chan []byte, 1000), errc: make(chan error, 1), cancel: cancel, header: res.Header}
	go func() {
		defer res.Body.Close()
		rd := bufio.NewReader(res.Body)
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				w.errc <- err
				close(w.lines)
				return
			}
			w.lines <- line
		}
	}()
	a.t.Cleanup(cancel)
	return w
}

// next returns the next event, failing the test after 10 s.
func (w *watchStream) next() event {
	w.t.Helper()
	select {
	case line, ok := <-w.lines:
		if !ok {
			w.t.Fatalf("watch ended early: %v", <-w.errc)
		}
		var ev event
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			w.t.Fatalf("watch line is not one event: %v: %s", err, line)
		}
		if dec.More() {
			w.t.Fatalf("more than one JSON value on a line: %s", line)
		}
		return ev
	case <-time.After(10 * time.Second):
		w.t.Fatalf("no watch event within 10s")
	}
	return event{}
}

// nextN returns the next n events as strings "TYPE ns/name".
func (w *watchStream) nextN(n int) []string {
	w.t.Helper()
	out := make([]string, n)
	for i := range out {
		ev := w.next()
		out[i] = ev.Type + " " + str(ev.Object, "metadata", "namespace") + "/" + str(ev.Object, "metadata", "name")
	}
	return out
}

// expectEnd waits (10 s at most) for the server to end the stream, failing
// on any further event.
func (w *watchStream) expectEnd() {
	w.t.Helper()
	select {
	case line, ok := <-w.lines:
		if ok {
			w.t.Fatalf("unexpected event before the end: %s", line)
		}
		if err := <-w.errc; !errors.Is(err, io.EOF) {
			w.t.Errorf("stream ended with %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		w.t.Fatalf("watch did not end within 10s")
	}
}

// create creates a Service in ns through the API.
func (a *testAPI) create(t testing.TB, ns string, s any) {
	t.Helper()
	a.do("POST", "/api/v1/namespaces/"+ns+"/services", mustJSON(t, s)).expect(t, http.StatusCreated)
}

func (a *testAPI) rv() string { return strconv.FormatUint(a.st.ResourceVersion(), 10) }

// TestWatchEvents: a watch from the current resourceVersion streams exactly
// the changes of its resource and namespace, in order, one JSON line each,
// with apiVersion and kind set and increasing resourceVersions; the
// cluster-wide watch sees every namespace.
func TestWatchEvents(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	a.create(t, "default", testService("before", nil))
	rv := a.rv()
	ns := a.watch("/api/v1/namespaces/default/services?watch=true&resourceVersion=" + rv)
	all := a.watch("/api/v1/services?watch=1&resourceVersion=" + rv)
	if ct := ns.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	a.create(t, "default", testService("web", nil))
	a.do("POST", "/api/v1/namespaces/default/pods", []byte(`{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)).
		expect(t, http.StatusCreated)
	a.create(t, "kube-system", testService("dns", nil))
	a.do("PATCH", "/api/v1/namespaces/default/services/web", []byte(`{"metadata":{"labels":{"v":"2"}}}`),
		"Content-Type", mergePatchType).expect(t, http.StatusOK)
	a.do("DELETE", "/api/v1/namespaces/default/services/web", nil).expect(t, http.StatusOK)

	var got []string
	last := mustUint(t, rv)
	for range 3 {
		ev := ns.next()
		got = append(got, ev.Type+" "+str(ev.Object, "metadata", "name"))
		if str(ev.Object, "kind") != "Service" || str(ev.Object, "apiVersion") != "v1" {
			t.Errorf("%v: kind/apiVersion not set", ev)
		}
		erv := mustUint(t, str(ev.Object, "metadata", "resourceVersion"))
		if erv <= last {
			t.Errorf("%v: resourceVersion not increasing (after %d)", ev, last)
		}
		last = erv
	}
	if diff := cmp.Diff([]string{"ADDED web", "MODIFIED web", "DELETED web"}, got); diff != "" {
		t.Errorf("namespaced watch (-want +got):\n%s", diff)
	}
	want := []string{"ADDED default/web", "ADDED kube-system/dns", "MODIFIED default/web", "DELETED default/web"}
	if diff := cmp.Diff(want, all.nextN(4)); diff != "" {
		t.Errorf("cluster-wide watch (-want +got):\n%s", diff)
	}
	// Nothing else is pending: the next event is the next change.
	a.create(t, "default", testService("marker", nil))
	if diff := cmp.Diff([]string{"ADDED default/marker"}, ns.nextN(1)); diff != "" {
		t.Errorf("after the marker (-want +got):\n%s", diff)
	}
}

// TestWatchInitialEvents: without a resourceVersion (or with "0") the watch
// starts with ADDED for every existing object, then streams changes.
func TestWatchInitialEvents(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	a.create(t, "default", testService("b", nil))
	a.create(t, "default", testService("a", nil))
	for _, q := range []string{"watch=true", "watch=true&resourceVersion=0"} {
		w := a.watch("/api/v1/namespaces/default/services?" + q)
		if diff := cmp.Diff([]string{"ADDED default/a", "ADDED default/b"}, w.nextN(2)); diff != "" {
			t.Errorf("%s: initial events (-want +got):\n%s", q, diff)
		}
		w.cancel()
	}
	w := a.watch("/api/v1/namespaces/default/services?watch=true")
	w.nextN(2)
	a.create(t, "default", testService("c", nil))
	if diff := cmp.Diff([]string{"ADDED default/c"}, w.nextN(1)); diff != "" {
		t.Errorf("after initial events (-want +got):\n%s", diff)
	}
}

// TestWatchResume: a watch from an older resourceVersion replays exactly the
// changes after it.
func TestWatchResume(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	a.create(t, "default", testService("a", nil))
	from := a.rv()
	a.create(t, "default", testService("b", nil))
	a.do("DELETE", "/api/v1/namespaces/default/services/a", nil).expect(t, http.StatusOK)
	a.create(t, "default", testService("c", nil))
	w := a.watch("/api/v1/namespaces/default/services?watch=true&resourceVersion=" + from)
	if diff := cmp.Diff([]string{"ADDED default/b", "DELETED default/a", "ADDED default/c"}, w.nextN(3)); diff != "" {
		t.Errorf("resumed watch (-want +got):\n%s", diff)
	}
}

// TestWatchGone: a resourceVersion older than the store's history answers,
// like kube-apiserver, 200 with one ERROR event carrying a 410 Expired Status,
// and ends the stream.
func TestWatchGone(t *testing.T) {
	a := newTestAPI(t, store.Options{HistorySize: 3}, Options{})
	for i := range 6 {
		a.create(t, "default", testService(fmt.Sprintf("s%d", i), nil))
	}
	w := a.watch("/api/v1/namespaces/default/services?watch=true&resourceVersion=1")
	ev := w.next()
	var st metav1.Status
	if err := json.Unmarshal(mustJSON(t, ev.Object), &st); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "ERROR" || st.Kind != "Status" || st.Code != http.StatusGone || st.Reason != metav1.StatusReasonExpired ||
		st.Message != fmt.Sprintf("too old resource version: 1 (%d)", a.st.ResourceVersion()) {
		t.Errorf("event %s %+v, want ERROR with 410 Expired", ev.Type, st)
	}
	w.expectEnd()
	a.do("GET", "/api/v1/namespaces/default/services?watch=true&resourceVersion=abc", nil).expect(t, http.StatusBadRequest)
}

// TestWatchSelectors: label and field selectors filter the stream; an object
// that starts matching arrives as ADDED, one that stops matching as DELETED
// (its last matching state with the change's resourceVersion).
func TestWatchSelectors(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	rv := a.rv()
	lw := a.watch("/api/v1/namespaces/default/services?watch=true&labelSelector=tier%3Dweb&resourceVersion=" + rv)
	fw := a.watch("/api/v1/services?watch=true&fieldSelector=metadata.name%3Done&resourceVersion=" + rv)
	svcPath := "/api/v1/namespaces/default/services/"
	relabel := func(name, tier string) string {
		var out obj
		a.do("PATCH", svcPath+name, []byte(`{"metadata":{"labels":{"tier":"`+tier+`"}}}`), "Content-Type", mergePatchType).
			expect(t, http.StatusOK).into(t, &out)
		return str(out, "metadata", "resourceVersion")
	}
	a.create(t, "default", testService("one", map[string]string{"tier": "web"})) // ADDED (label, field)
	a.create(t, "default", testService("two", map[string]string{"tier": "db"}))  // nothing
	offRV := relabel("one", "db")                                                // DELETED (label), MODIFIED (field)
	relabel("two", "web")                                                        // ADDED (label)
	relabel("one", "web")                                                        // ADDED (label), MODIFIED (field)
	a.do("PATCH", svcPath+"one", []byte(`{"metadata":{"annotations":{"x":"y"}}}`), "Content-Type", mergePatchType).
		expect(t, http.StatusOK) // MODIFIED (both)
	a.do("DELETE", svcPath+"two", nil).expect(t, http.StatusOK) // DELETED (label)
	a.do("DELETE", svcPath+"one", nil).expect(t, http.StatusOK) // DELETED (both)

	var got []string
	for range 7 {
		ev := lw.next()
		got = append(got, ev.Type+" "+str(ev.Object, "metadata", "name")+" tier="+str(ev.Object, "metadata", "labels", "tier"))
		if ev.Type == "DELETED" && str(ev.Object, "metadata", "name") == "one" && len(got) == 2 {
			if rv := str(ev.Object, "metadata", "resourceVersion"); rv != offRV {
				t.Errorf("DELETED on selector exit has rv %s, want the change's %s", rv, offRV)
			}
		}
	}
	want := []string{
		"ADDED one tier=web",
		"DELETED one tier=web", // last matching state
		"ADDED two tier=web",
		"ADDED one tier=web",
		"MODIFIED one tier=web",
		"DELETED two tier=web",
		"DELETED one tier=web",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("label selector watch (-want +got):\n%s", diff)
	}
	want = []string{"ADDED default/one", "MODIFIED default/one", "MODIFIED default/one", "MODIFIED default/one", "DELETED default/one"}
	if diff := cmp.Diff(want, fw.nextN(5)); diff != "" {
		t.Errorf("field selector watch (-want +got):\n%s", diff)
	}
}

// TestWatchTimeoutAndBookmarks: allowWatchBookmarks adds BOOKMARK events with
// the resourceVersion reached; timeoutSeconds ends the stream.
func TestWatchTimeoutAndBookmarks(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{BookmarkInterval: 50 * time.Millisecond})
	a.create(t, "default", testService("a", nil))
	a.do("POST", "/api/v1/namespaces/default/pods", []byte(`{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)).
		expect(t, http.StatusCreated)
	w := a.watch("/api/v1/namespaces/default/services?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=" + a.rv())
	ev := w.next()
	if ev.Type != "BOOKMARK" || str(ev.Object, "kind") != "Service" || str(ev.Object, "metadata", "resourceVersion") != a.rv() ||
		str(ev.Object, "metadata", "name") != "" {
		t.Errorf("bookmark: %s %v", ev.Type, ev.Object)
	}
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				if err := <-w.errc; !errors.Is(err, io.EOF) {
					t.Errorf("stream ended with %v", err)
				}
				return
			}
			var e event
			if err := json.Unmarshal(line, &e); err != nil || e.Type != "BOOKMARK" {
				t.Fatalf("unexpected line %s (%v)", line, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("timeoutSeconds=1 did not end the watch")
		}
	}
}

// TestWatchClientDisconnect: the handler returns when the client goes away
// (observed through the request metric, which is recorded on return).
func TestWatchClientDisconnect(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newTestAPI(t, store.Options{}, Options{Registerer: reg})
	w := a.watch("/api/v1/namespaces/default/services?watch=true&resourceVersion=" + a.rv())
	a.create(t, "default", testService("a", nil))
	w.next()
	watches := func() float64 {
		m, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range m {
			if mf.GetName() != "apiserver_request_total" {
				continue
			}
			n := 0.0
			for _, mm := range mf.GetMetric() {
				for _, l := range mm.GetLabel() {
					if l.GetName() == "verb" && l.GetValue() == "WATCH" {
						n += mm.GetCounter().GetValue()
					}
				}
			}
			return n
		}
		return 0
	}
	if n := watches(); n != 0 {
		t.Fatalf("watch recorded as finished while open (%v)", n)
	}
	w.cancel()
	deadline := time.Now().Add(10 * time.Second)
	for watches() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("watch handler did not return after the client disconnected")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestWatchTable: kubectl get -w asks for Tables; each event carries a
// one-row Table.
func TestWatchTable(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	w := a.watch("/api/v1/namespaces/default/services?watch=true&resourceVersion="+a.rv(),
		"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	a.create(t, "default", testService("web", nil))
	ev := w.next()
	var tbl metav1.Table
	if err := json.Unmarshal(mustJSON(t, ev.Object), &tbl); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "ADDED" || tbl.Kind != "Table" || len(tbl.Rows) != 1 || tbl.Rows[0].Cells[0] != "web" {
		t.Errorf("table event: %s %+v", ev.Type, tbl)
	}
}
