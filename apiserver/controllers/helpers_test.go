package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// testTimeout bounds every wait in these tests; conditions are met in
// milliseconds, the bound only matters when something is broken.
const testTimeout = 20 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SVCLAB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// storePath returns a fresh store file path in a test temp dir.
func storePath(t testing.TB) string { return filepath.Join(t.TempDir(), "svclab.db") }

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// lab is a store plus a running Manager.
type lab struct {
	t      testing.TB
	st     *store.Store
	m      *Manager
	rt     PodRuntime
	cancel context.CancelFunc
	done   chan error
}

// startLab runs a Manager over st until the test ends (or stop is called).
func startLab(t testing.TB, st *store.Store, cfg Config, rt PodRuntime) *lab {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{t: t, st: st, rt: rt, cancel: cancel, done: make(chan error, 1)}
	l.m = NewManager(st, cfg, rt, testLogger(t))
	go func() { l.done <- l.m.Run(ctx) }()
	t.Cleanup(l.stop)
	l.sync()
	return l
}

// stop stops the Manager and waits for Run to return (idempotent).
func (l *lab) stop() {
	l.t.Helper()
	if l.cancel == nil {
		return
	}
	l.cancel()
	l.cancel = nil
	select {
	case err := <-l.done:
		if err != nil {
			l.t.Errorf("Run: %v", err)
		}
	case <-time.After(testTimeout):
		l.t.Errorf("Run did not return after cancel")
	}
}

// sync waits until the controllers have settled.
func (l *lab) sync() {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := l.m.WaitSynced(ctx); err != nil {
		l.t.Fatalf("WaitSynced: %v", err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t testing.TB, st *store.Store, res *store.Resource, obj store.Object) store.Object {
	t.Helper()
	out, err := st.Create(ctxT(t), res, obj)
	if err != nil {
		t.Fatalf("create %s %s/%s: %v", res.Name, obj.GetNamespace(), obj.GetName(), err)
	}
	return out
}

func mustDelete(t testing.TB, st *store.Store, res *store.Resource, ns, name string) {
	t.Helper()
	if _, err := st.Delete(ctxT(t), res, ns, name, ""); err != nil {
		t.Fatalf("delete %s %s/%s: %v", res.Name, ns, name, err)
	}
}

// mustUpdate applies fn to the stored object (main resource or "status").
func mustUpdate[T store.Object](t testing.TB, st *store.Store, res *store.Resource, ns, name, sub string, fn func(T)) {
	t.Helper()
	_, err := st.GuaranteedUpdate(ctxT(t), res, ns, name, store.UpdateOptions{Subresource: sub}, func(cur store.Object) (store.Object, error) {
		fn(cur.(T))
		return cur, nil
	})
	if err != nil {
		t.Fatalf("update %s %s/%s: %v", res.Name, ns, name, err)
	}
}

func getPod(t testing.TB, st *store.Store, ns, name string) *corev1.Pod {
	t.Helper()
	o, err := st.Get(ctxT(t), store.Pods, ns, name)
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return o.(*corev1.Pod)
}

func listPods(t testing.TB, st *store.Store, ns string) []*corev1.Pod {
	t.Helper()
	objs, _, err := st.List(ctxT(t), store.Pods, ns, store.ListOptions{})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	out := make([]*corev1.Pod, len(objs))
	for i, o := range objs {
		out[i] = o.(*corev1.Pod)
	}
	return out
}

func listSlices(t testing.TB, st *store.Store, ns, svc string) []*discoveryv1.EndpointSlice {
	t.Helper()
	objs, _, err := st.List(ctxT(t), store.EndpointSlices, ns, store.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc}),
	})
	if err != nil {
		t.Fatalf("list slices: %v", err)
	}
	out := make([]*discoveryv1.EndpointSlice, len(objs))
	for i, o := range objs {
		out[i] = o.(*discoveryv1.EndpointSlice)
	}
	return out
}

func getEndpoints(t testing.TB, st *store.Store, ns, name string) *corev1.Endpoints {
	t.Helper()
	o, err := st.Get(ctxT(t), store.Endpoints, ns, name)
	if err != nil {
		t.Fatalf("get endpoints %s/%s: %v", ns, name, err)
	}
	return o.(*corev1.Endpoints)
}

func createNamespaces(t testing.TB, st *store.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		mustCreate(t, st, store.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
}

// testNode returns a Ready node with a pod CIDR and an InternalIP.
func testNode(name, podCIDR, ip string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelOSStable: "linux"}},
		Spec:       corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}},
	}
}

// createNode creates node and sets its status (Ready as given, InternalIP ip).
func createNode(t testing.TB, st *store.Store, name, podCIDR, ip string, ready bool) {
	t.Helper()
	mustCreate(t, st, store.Nodes, testNode(name, podCIDR, ip))
	setNodeReady(t, st, name, ip, ready)
}

func setNodeReady(t testing.TB, st *store.Store, name, ip string, ready bool) {
	t.Helper()
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionFalse
	}
	mustUpdate(t, st, store.Nodes, "", name, "status", func(n *corev1.Node) {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, Reason: "Test"}}
	})
}

// twoNodes creates namespace default and Ready nodes node-1 (10.244.1.0/24,
// 172.29.0.2) and node-2 (10.244.2.0/24, 172.29.0.3).
func twoNodes(t testing.TB, st *store.Store) {
	t.Helper()
	createNamespaces(t, st, "default")
	createNode(t, st, "node-1", "10.244.1.0/24", "172.29.0.2", true)
	createNode(t, st, "node-2", "10.244.2.0/24", "172.29.0.3", true)
}

type podOpt func(*corev1.Pod)

func withNode(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func withLabels(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}
func withPorts(ports ...corev1.ContainerPort) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports = ports }
}
func withHostname(host, subdomain string) podOpt {
	return func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = host, subdomain }
}
func withAnnotation(k, v string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

func testPod(ns, name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: "myapp",
			Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
		}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func createPod(t testing.TB, st *store.Store, ns, name string, opts ...podOpt) *corev1.Pod {
	t.Helper()
	return mustCreate(t, st, store.Pods, testPod(ns, name, opts...)).(*corev1.Pod)
}

func tcpPort(name string, port int32) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP}
}

// testService returns a ClusterIP Service with the given selector and ports.
func testService(ns, name, clusterIP string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, Selector: selector, Ports: ports,
			ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
		},
	}
	if clusterIP == corev1.ClusterIPNone {
		svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	}
	return svc
}

func svcPort(name string, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: target, Protocol: corev1.ProtocolTCP}
}

// fakeRuntime is a PodRuntime that records calls, behaves like a kernel would
// (an address held by one sandbox cannot be given to another; StartPod of a
// running pod with the same IP is a no-op) and fails on demand.
type fakeRuntime struct {
	mu        sync.Mutex
	sandboxes map[string]netip.Addr // "ns/name" → IP
	starts    map[string]int        // successful StartPod calls per pod
	stops     map[string]int
	syncs     [][]string     // SyncPods calls: "ns/name=ip"
	failStart map[string]int // pod → remaining failures
	dupErrors []string       // StartPod calls refused for a doubled IP
}

var _ PodRuntime = (*fakeRuntime)(nil)

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{sandboxes: map[string]netip.Addr{}, starts: map[string]int{}, stops: map[string]int{}, failStart: map[string]int{}}
}

var errInjected = errors.New("injected sandbox failure")

func (f *fakeRuntime) StartPod(_ context.Context, pod *corev1.Pod, ip netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := pod.Namespace + "/" + pod.Name
	if pod.Spec.NodeName == "" {
		return fmt.Errorf("pod %s has no node", key)
	}
	if n := f.failStart[key]; n > 0 {
		f.failStart[key] = n - 1
		return errInjected
	}
	for other, oip := range f.sandboxes {
		if other != key && oip == ip {
			f.dupErrors = append(f.dupErrors, fmt.Sprintf("%s wants %s held by %s", key, ip, other))
			return fmt.Errorf("address %s already in use by %s", ip, other)
		}
	}
	f.sandboxes[key] = ip
	f.starts[key]++
	return nil
}

func (f *fakeRuntime) StopPod(_ context.Context, ns, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sandboxes, ns+"/"+name)
	f.stops[ns+"/"+name]++
	return nil
}

func (f *fakeRuntime) SyncPods(_ context.Context, pods []*corev1.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var call []string
	keep := map[string]netip.Addr{}
	for _, p := range pods {
		ip := netip.MustParseAddr(p.Status.PodIP)
		keep[p.Namespace+"/"+p.Name] = ip
		call = append(call, p.Namespace+"/"+p.Name+"="+ip.String())
	}
	f.sandboxes = keep
	f.syncs = append(f.syncs, call)
	return nil
}

// stopCount returns the number of StopPod calls for "ns/name".
func (f *fakeRuntime) stopCount(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stops[key]
}

// snapshot returns the sandboxes as "ns/name" → IP string.
func (f *fakeRuntime) snapshot() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.sandboxes))
	for k, v := range f.sandboxes {
		out[k] = v.String()
	}
	return out
}

// podIPs returns "ns/name" → status.podIP of every stored pod that has one.
func podIPs(t testing.TB, st *store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range listPods(t, st, "") {
		if p.Status.PodIP != "" {
			out[p.Namespace+"/"+p.Name] = p.Status.PodIP
		}
	}
	return out
}
