package admission

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/svclab/svclab/apiserver/store"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func newAdmission(t testing.TB, cfg Config) *Admission {
	t.Helper()
	a, err := New(cfg, discard)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// resourceOf returns the store resource of obj's type.
func resourceOf(t testing.TB, obj store.Object) *store.Resource {
	t.Helper()
	for _, r := range store.Resources() {
		if fmt.Sprintf("%T", r.New()) == fmt.Sprintf("%T", obj) {
			return r
		}
	}
	t.Fatalf("no resource for %T", obj)
	return nil
}

// fakeUID hands out distinct UIDs, as the store does on create.
var fakeUID int

// doCreate admits obj as the store does on create (system metadata set,
// status reset) and returns the admitted copy, the undo and the error.
func doCreate[T store.Object](t testing.TB, a *Admission, obj T) (T, func(), error) {
	t.Helper()
	o := obj.DeepCopyObject().(T)
	fakeUID++
	o.SetUID(types.UID(fmt.Sprintf("uid-%d", fakeUID)))
	o.SetCreationTimestamp(metav1.Unix(1700000000, 0))
	o.SetGeneration(1)
	o.SetResourceVersion("")
	switch x := any(o).(type) {
	case *corev1.Service:
		x.Status = corev1.ServiceStatus{}
	case *corev1.Pod:
		x.Status = corev1.PodStatus{Phase: corev1.PodPending}
	case *corev1.Namespace:
		x.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	}
	undo, err := a.Admitters()[resourceOf(t, o).Name].Admit(context.Background(), store.Create, nil, o)
	return o, undo, err
}

func mustCreate[T store.Object](t testing.TB, a *Admission, obj T) T {
	t.Helper()
	o, _, err := doCreate(t, a, obj)
	if err != nil {
		t.Fatalf("create %s: %v", obj.GetName(), err)
	}
	return o
}

// doUpdate admits a main-resource update as the store does: the stored status
// and system metadata are kept.
func doUpdate[T store.Object](t testing.TB, a *Admission, old, obj T) (T, func(), error) {
	t.Helper()
	o := obj.DeepCopyObject().(T)
	o.SetUID(old.GetUID())
	o.SetCreationTimestamp(old.GetCreationTimestamp())
	o.SetGeneration(old.GetGeneration())
	o.SetResourceVersion("7")
	switch x := any(o).(type) {
	case *corev1.Service:
		x.Status = *any(old).(*corev1.Service).Status.DeepCopy()
	case *corev1.Pod:
		x.Status = *any(old).(*corev1.Pod).Status.DeepCopy()
	}
	prev := old.DeepCopyObject().(T)
	prev.SetResourceVersion("7")
	undo, err := a.Admitters()[resourceOf(t, o).Name].Admit(context.Background(), store.Update, prev, o)
	return o, undo, err
}

func mustUpdate[T store.Object](t testing.TB, a *Admission, old, obj T) T {
	t.Helper()
	o, _, err := doUpdate(t, a, old, obj)
	if err != nil {
		t.Fatalf("update %s: %v", obj.GetName(), err)
	}
	return o
}

// doStatusUpdate admits a write of the status subresource of a Service as the
// store does: everything but the status is the stored object.
func doStatusUpdate(t testing.TB, a *Admission, old *corev1.Service, status corev1.ServiceStatus) (*corev1.Service, func(), error) {
	t.Helper()
	o := old.DeepCopy()
	o.SetResourceVersion("7")
	o.Status = *status.DeepCopy()
	prev := old.DeepCopy()
	prev.SetResourceVersion("7")
	undo, err := a.Admitters()["services"].Admit(context.Background(), store.Update, prev, o)
	return o, undo, err
}

func doDelete[T store.Object](t testing.TB, a *Admission, old T) (func(), error) {
	t.Helper()
	return a.Admitters()[resourceOf(t, old).Name].Admit(context.Background(), store.Delete, old.DeepCopyObject().(T), nil)
}

// state is the full allocator state, holds included, for exact comparisons.
type state struct {
	ClusterIPs map[string]int
	NodePorts  map[int]int
	LBIPs      map[string]int
}

func snapshot(a *Admission) state {
	s := state{ClusterIPs: map[string]int{}, NodePorts: map[int]int{}, LBIPs: map[string]int{}}
	sv := a.services
	var ips, lbs []netip.Addr
	var ports []int
	sv.ips.ForEach(func(ip netip.Addr) { ips = append(ips, ip) })
	sv.ports.ForEach(func(p int) { ports = append(ports, p) })
	sv.lb.ForEach(func(ip netip.Addr) { lbs = append(lbs, ip) })
	for _, ip := range ips {
		s.ClusterIPs[ip.String()] = sv.ips.Holds(ip)
	}
	for _, p := range ports {
		s.NodePorts[p] = sv.ports.Holds(p)
	}
	for _, ip := range lbs {
		s.LBIPs[ip.String()] = sv.lb.Holds(ip)
	}
	return s
}

// loadExamples decodes every object of a file of the project's examples/ (the manifests up --demo applies).
func loadExamples(t testing.TB, file string) []store.Object {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", file))
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Object
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var obj store.Object
		switch tm.Kind {
		case "Service":
			obj = &corev1.Service{}
		case "Pod":
			obj = &corev1.Pod{}
		default:
			t.Fatalf("%s: unexpected kind %q", file, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, obj)
	}
	return out
}

func stripComments(b []byte) []byte {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// mustYAML decodes a golden object.
func mustYAML[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict([]byte(s), &v); err != nil {
		t.Fatalf("golden: %v\n%s", err, s)
	}
	return v
}

// statusOf returns err as a StatusError, failing the test otherwise.
func statusOf(t testing.TB, err error) *apierrors.StatusError {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a StatusError", err, err)
	}
	return se
}

// causeStrings renders a StatusError's causes as "field|type|message".
func causeStrings(se *apierrors.StatusError) []string {
	var out []string
	if se.ErrStatus.Details == nil {
		return nil
	}
	for _, c := range se.ErrStatus.Details.Causes {
		out = append(out, fmt.Sprintf("%s|%s|%s", c.Field, c.Type, c.Message))
	}
	return out
}
