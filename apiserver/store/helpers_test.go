package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// openTest opens a store in a fresh temporary directory and closes it at the
// end of the test. It returns the store and its file path.
func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "svclab.db")
	if opts.Logger == nil {
		opts.Logger = discardLogger
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func service(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

func pod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "echo", Image: "svclab/echo"}},
		},
	}
}

func slice(ns, name string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.2"}}},
	}
}

func mustCreate[T Object](t testing.TB, s *Store, res *Resource, obj T) T {
	t.Helper()
	out, err := s.Create(context.Background(), res, obj)
	if err != nil {
		t.Fatalf("Create %s %s/%s: %v", res.Name, obj.GetNamespace(), obj.GetName(), err)
	}
	return out.(T)
}

// fakeAdmitter records what it was asked, can refuse or mutate, and records undo calls.
type fakeAdmitter struct {
	mu      sync.Mutex
	refuse  func(op Operation, old, obj Object) error
	mutate  func(op Operation, old, obj Object)
	calls   []string // "CREATE ns/name"
	undone  []string
	rebuilt []Object
}

var _ Admitter = (*fakeAdmitter)(nil)

func objName(o Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

func (a *fakeAdmitter) Admit(ctx context.Context, op Operation, old, obj Object) (func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	target := obj
	if target == nil {
		target = old
	}
	call := fmt.Sprintf("%s %s", op, objName(target))
	a.calls = append(a.calls, call)
	if a.refuse != nil {
		if err := a.refuse(op, old, obj); err != nil {
			return nil, err
		}
	}
	if a.mutate != nil {
		a.mutate(op, old, obj)
	}
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.undone = append(a.undone, call)
	}, nil
}

func (a *fakeAdmitter) Rebuild(objs []Object) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rebuilt = objs
	return nil
}

func (a *fakeAdmitter) snapshot() (calls, undone []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls), slices.Clone(a.undone)
}

// gateAdmitter blocks the writer inside Admit of the object named gate until
// release is closed, so that tests can queue several writes into one batch.
type gateAdmitter struct {
	gate    string
	entered chan struct{}
	release chan struct{}
}

func newGate(name string) *gateAdmitter {
	return &gateAdmitter{gate: name, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateAdmitter) Admit(ctx context.Context, op Operation, old, obj Object) (func(), error) {
	if obj != nil && obj.GetName() == g.gate && op == Create {
		close(g.entered)
		<-g.release
	}
	return nil, nil
}

func (g *gateAdmitter) Rebuild([]Object) error { return nil }

// waitQueued polls until n write requests are queued behind the writer.
func waitQueued(t testing.TB, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests queued", len(s.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv reads one event with a deadline.
func recv(t testing.TB, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return Event{}
}

// evString summarizes an event for golden comparisons.
func evString(ev Event) string {
	return fmt.Sprintf("%d %s %s %s", ev.ResourceVersion, ev.Type, ev.Resource.Name, objName(ev.Object))
}

func isErr(err, target error) bool { return errors.Is(err, target) }
