package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/svclab/svclab/apiserver/store"
)

// watchEvent is one line of a watch stream: metav1.WatchEvent's JSON shape,
// with the object encoded in place.
type watchEvent struct {
	Type   watch.EventType `json:"type"`
	Object any             `json:"object"`
}

// watch streams the changes of rq.res in ns ("" = all namespaces) as JSON
// lines, one metav1.WatchEvent each, flushed one by one, as kube-apiserver
// does:
//
//   - resourceVersion unset or "0": synthetic ADDED events for every matching
//     object first, then the changes after that list;
//   - resourceVersion N: the changes after N; if N is older than the store's
//     history the stream is a single ERROR event carrying a 410 Expired Status;
//   - label and field selectors filter the stream, and an object that starts
//     matching arrives as ADDED, one that stops matching as DELETED (its last
//     matching state, with the resourceVersion of the change);
//   - allowWatchBookmarks=true adds a BOOKMARK (an empty object carrying only
//     the resourceVersion reached) every bookmark interval;
//   - the stream ends after timeoutSeconds, when the client goes away, or when
//     the store drops a watcher that fell too far behind (the client re-lists).
func (h *handler) watch(w http.ResponseWriter, r *http.Request, rq *request, ns string) {
	res := rq.res
	f, se := negotiate(r, true)
	if f == formatYAML {
		f = formatJSON // watch streams are JSON lines
	}
	rq.format = f
	if se != nil {
		h.fail(w, r, rq, se, errTarget{})
		return
	}
	opts, err := listOptions(r, res)
	if err != nil {
		h.fail(w, r, rq, err, targetOf(res, ""))
		return
	}
	q := r.URL.Query()
	ctx := r.Context()
	if s := q.Get("timeoutSeconds"); s != "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil || secs < 0 {
			h.fail(w, r, rq, apierrors.NewBadRequest(fmt.Sprintf("invalid timeoutSeconds %q", s)), errTarget{})
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(secs)*time.Second)
		defer cancel()
	}
	bookmarks := q.Get("allowWatchBookmarks") == "true"

	var initial []store.Object
	var from uint64
	switch rv := q.Get("resourceVersion"); rv {
	case "", "0":
		objs, listRV, err := h.st.List(ctx, res, ns, opts)
		if err != nil {
			h.fail(w, r, rq, err, targetOf(res, ""))
			return
		}
		initial, from = objs, listRV
	default:
		from, err = strconv.ParseUint(rv, 10, 64)
		if err != nil {
			h.fail(w, r, rq, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q: must be a decimal number", rv)), errTarget{})
			return
		}
	}
	ch, err := h.st.Watch(ctx, res, ns, from)
	if err != nil && !errors.Is(err, store.ErrGone) {
		h.fail(w, r, rq, err, targetOf(res, ""))
		return
	}

	w.Header().Set("Content-Type", mediaJSON)
	w.WriteHeader(http.StatusOK)
	ew := &eventWriter{w: w, rc: http.NewResponseController(w), res: res, table: f == formatTable, include: includeObject(r)}
	if err != nil { // ErrGone: one ERROR event, as kube-apiserver answers a too old resourceVersion
		st := statusObject(apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", from, h.st.ResourceVersion())))
		_ = ew.send(watch.Error, st)
		return
	}
	if err := ew.flush(); err != nil {
		return
	}
	for _, obj := range initial {
		if err := ew.sendObject(watch.Added, obj); err != nil {
			return
		}
	}

	var tick <-chan time.Time
	if bookmarks {
		t := time.NewTicker(h.bookmark)
		defer t.Stop()
		tick = t.C
	}
	last := from // the resourceVersion this stream has reached
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if ev.ResourceVersion > last {
				last = ev.ResourceVersion
			}
			typ, obj := filterEvent(res, opts, ev)
			if typ == "" {
				continue
			}
			if err := ew.sendObject(typ, obj); err != nil {
				return
			}
		case <-tick:
			bm := res.New()
			setTypeMeta(res, bm)
			bm.SetResourceVersion(strconv.FormatUint(last, 10))
			if err := ew.send(watch.Bookmark, bm); err != nil {
				return
			}
		}
	}
}

// filterEvent applies the watch's selectors to a store event, returning the
// event type to send (or "" to skip it) and the object to send. The store's
// objects may be shared with other watchers: they are copied before any change.
func filterEvent(res *store.Resource, opts store.ListOptions, ev store.Event) (watch.EventType, store.Object) {
	switch ev.Type {
	case watch.Added, watch.Deleted:
		if opts.Matches(res, ev.Object) {
			return ev.Type, ev.Object
		}
		return "", nil
	case watch.Modified:
		cur := opts.Matches(res, ev.Object)
		old := cur
		if ev.Old != nil {
			old = opts.Matches(res, ev.Old)
		}
		switch {
		case cur && old:
			return watch.Modified, ev.Object
		case cur:
			return watch.Added, ev.Object
		case old:
			gone := ev.Old.DeepCopyObject().(store.Object)
			gone.SetResourceVersion(ev.Object.GetResourceVersion())
			return watch.Deleted, gone
		}
	}
	return "", nil
}

// eventWriter writes watch events, one JSON line each, flushing every one.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	res     *store.Resource
	table   bool   // send each object as a one-row meta.k8s.io/v1 Table
	include string // includeObject for tables
}

// sendObject sends obj (an object of res, possibly shared: it is not
// modified) as an event of type typ.
func (e *eventWriter) sendObject(typ watch.EventType, obj store.Object) error {
	if e.table {
		return e.send(typ, newTable(e.res, []store.Object{obj}, 0, e.include, time.Now()))
	}
	if obj.GetObjectKind().GroupVersionKind() != e.res.GroupVersionKind() {
		obj = obj.DeepCopyObject().(store.Object)
		setTypeMeta(e.res, obj)
	}
	return e.send(typ, obj)
}

func (e *eventWriter) send(typ watch.EventType, obj any) error {
	data, err := json.Marshal(watchEvent{Type: typ, Object: obj})
	if err != nil {
		return fmt.Errorf("encode watch event: %w", err)
	}
	data = append(data, '\n')
	if _, err := e.w.Write(data); err != nil {
		return fmt.Errorf("write watch event: %w", err)
	}
	return e.flush()
}

func (e *eventWriter) flush() error {
	if err := e.rc.Flush(); err != nil {
		return fmt.Errorf("flush watch stream: %w", err)
	}
	return nil
}
