package e2e

// Helpers over the lab: its API, packets from inside its namespaces, DNS.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svclab/svclab/apiserver/rest"
	"github.com/svclab/svclab/netlab"
)

// ---------------------------------------------------------------------------------------------
// The API.

// do sends one request to the lab's API.
func (l *lab) do(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+apiAddr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := l.api.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// call sends a request with a JSON body (nil: none) and decodes the answer into out (nil:
// discard); an answer other than want fails tb.
func (l *lab) call(tb testing.TB, method, path, contentType string, in, out any, want ...int) {
	tb.Helper()
	if err := l.callErr(method, path, contentType, in, out, want...); err != nil {
		tb.Fatal(err)
	}
}

func (l *lab) callErr(method, path, contentType string, in, out any, want ...int) error {
	var body []byte
	switch v := in.(type) {
	case nil:
	case []byte:
		body = v
	default:
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, b, err := l.do(ctx, method, path, contentType, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if !slices.Contains(want, code) {
		return fmt.Errorf("%s %s: answered %d, want %v: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %T: %w", method, path, out, err)
		}
	}
	return nil
}

func servicePath(ns, name string) string {
	if name == "" {
		return "/api/v1/namespaces/" + ns + "/services"
	}
	return "/api/v1/namespaces/" + ns + "/services/" + name
}

func podPath(ns, name string) string {
	if name == "" {
		return "/api/v1/namespaces/" + ns + "/pods"
	}
	return "/api/v1/namespaces/" + ns + "/pods/" + name
}

func slicePath(ns, name string) string {
	if name == "" {
		return "/apis/discovery.k8s.io/v1/namespaces/" + ns + "/endpointslices"
	}
	return "/apis/discovery.k8s.io/v1/namespaces/" + ns + "/endpointslices/" + name
}

// apply posts a manifest to /lab/v1/apply; an object that fails fails tb.
func (l *lab) apply(tb testing.TB, manifest string) []rest.ApplyResult {
	tb.Helper()
	var resp rest.ApplyResponse
	l.call(tb, http.MethodPost, "/lab/v1/apply", "application/yaml", []byte(manifest), &resp, http.StatusOK)
	return resp.Results
}

// createService creates svc and returns it as stored (cluster IP, node ports allocated).
func (l *lab) createService(tb testing.TB, svc *corev1.Service) *corev1.Service {
	tb.Helper()
	if svc.Namespace == "" {
		svc.Namespace = "default"
	}
	var out corev1.Service
	l.call(tb, http.MethodPost, servicePath(svc.Namespace, ""), "application/json", svc, &out, http.StatusCreated)
	return &out
}

// getService reads a Service.
func (l *lab) getService(tb testing.TB, ns, name string) *corev1.Service {
	tb.Helper()
	var out corev1.Service
	l.call(tb, http.MethodGet, servicePath(ns, name), "", nil, &out, http.StatusOK)
	return &out
}

// patchService applies a JSON merge patch to a Service.
func (l *lab) patchService(tb testing.TB, ns, name string, patch any) *corev1.Service {
	tb.Helper()
	var out corev1.Service
	l.call(tb, http.MethodPatch, servicePath(ns, name), "application/merge-patch+json", patch, &out, http.StatusOK)
	return &out
}

// createPods creates the pods and waits until each is Running and Ready with an IP; it returns
// them as stored, in the same order.
func (l *lab) createPods(tb testing.TB, pods ...*corev1.Pod) []*corev1.Pod {
	tb.Helper()
	for _, p := range pods {
		if p.Namespace == "" {
			p.Namespace = "default"
		}
		l.call(tb, http.MethodPost, podPath(p.Namespace, ""), "application/json", p, nil, http.StatusCreated)
	}
	out := make([]*corev1.Pod, len(pods))
	for i, p := range pods {
		out[i] = l.waitPodReady(tb, p.Namespace, p.Name)
	}
	return out
}

// createPod is createPods for one pod.
func (l *lab) createPod(tb testing.TB, p *corev1.Pod) *corev1.Pod {
	tb.Helper()
	return l.createPods(tb, p)[0]
}

// getPod reads a pod; ok is false when it does not exist.
func (l *lab) getPod(tb testing.TB, ns, name string) (*corev1.Pod, bool) {
	tb.Helper()
	var out corev1.Pod
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, b, err := l.do(ctx, http.MethodGet, podPath(ns, name), "", nil)
	if err != nil {
		tb.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	switch code {
	case http.StatusNotFound:
		return nil, false
	case http.StatusOK:
	default:
		tb.Fatalf("get pod %s/%s: %d %s", ns, name, code, b)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return &out, true
}

// listPods lists the pods of a namespace matching a label selector ("" = all).
func (l *lab) listPods(tb testing.TB, ns, selector string) []corev1.Pod {
	tb.Helper()
	var out corev1.PodList
	path := podPath(ns, "")
	if selector != "" {
		path += "?labelSelector=" + urlQueryEscape(selector)
	}
	l.call(tb, http.MethodGet, path, "", nil, &out, http.StatusOK)
	return out.Items
}

func urlQueryEscape(s string) string {
	r := strings.NewReplacer("=", "%3D", ",", "%2C", " ", "%20", "!", "%21")
	return r.Replace(s)
}

func podReady(p *corev1.Pod) bool {
	if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitPodReady polls a pod until it is Running and Ready with an IP.
func (l *lab) waitPodReady(tb testing.TB, ns, name string) *corev1.Pod {
	tb.Helper()
	var pod *corev1.Pod
	eventually(tb, 60*time.Second, fmt.Sprintf("pod %s/%s Ready", ns, name), func() (bool, string) {
		p, ok := l.getPod(tb, ns, name)
		if !ok {
			return false, "not found"
		}
		pod = p
		return podReady(p), fmt.Sprintf("phase %s, IP %q, conditions %v", p.Status.Phase, p.Status.PodIP, p.Status.Conditions)
	})
	return pod
}

// deletePod deletes a pod and waits until the API no longer has it and its namespace is gone.
func (l *lab) deletePod(tb testing.TB, ns, name string) {
	tb.Helper()
	l.call(tb, http.MethodDelete, podPath(ns, name), "", nil, nil, http.StatusOK, http.StatusAccepted)
	eventually(tb, 60*time.Second, fmt.Sprintf("pod %s/%s gone", ns, name), func() (bool, string) {
		if _, ok := l.getPod(tb, ns, name); ok {
			return false, "still in the API"
		}
		if _, err := os.Stat(l.podNetnsPath(ns, name)); err == nil {
			return false, "netns still exists"
		}
		return true, ""
	})
}

// echoPod is a pod served by the echo workload on the given ports, pinned to node unless "".
func echoPod(name, node string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "echo", Image: "echo", Ports: ports}},
		},
	}
}

func tcpPort(p int32) corev1.ContainerPort {
	return corev1.ContainerPort{ContainerPort: p, Protocol: corev1.ProtocolTCP}
}

func udpPort(p int32) corev1.ContainerPort {
	return corev1.ContainerPort{ContainerPort: p, Protocol: corev1.ProtocolUDP}
}

// clusterIPService selects labels on one TCP port.
func clusterIPService(name string, selector map[string]string, port, targetPort int32) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Protocol: corev1.ProtocolTCP, Port: port,
				TargetPort: intstr.FromInt32(targetPort),
			}},
		},
	}
}

// nodeInfo is a node's name, underlay IP and cni0 gateway.
type nodeInfo struct {
	name    string
	ip      string
	gateway string
}

// nodes lists the lab's nodes in name order.
func (l *lab) nodes(tb testing.TB) []nodeInfo {
	tb.Helper()
	var list corev1.NodeList
	l.call(tb, http.MethodGet, "/api/v1/nodes", "", nil, &list, http.StatusOK)
	var out []nodeInfo
	for _, n := range list.Items {
		ni := nodeInfo{name: n.Name}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ni.ip = a.Address
			}
		}
		p, err := netip.ParsePrefix(n.Spec.PodCIDR)
		if err != nil {
			tb.Fatalf("node %s podCIDR %q: %v", n.Name, n.Spec.PodCIDR, err)
		}
		ni.gateway = p.Addr().Next().String()
		out = append(out, ni)
	}
	slices.SortFunc(out, func(a, b nodeInfo) int { return strings.Compare(a.name, b.name) })
	return out
}

func (l *lab) node(tb testing.TB, name string) nodeInfo {
	tb.Helper()
	for _, n := range l.nodes(tb) {
		if n.name == name {
			return n
		}
	}
	tb.Fatalf("no node %s", name)
	return nodeInfo{}
}

// demoPods are the pods `up --demo` creates.
var demoPods = []string{"redis-0", "myapp-nohead-0", "myapp-nohead-1", "myapp-0", "myapp-1",
	"testsvc-0", "testsvc-1", "testsvc-2", "testsvc-3", "testsvc-4", "testsvc-5", "testsvc-6", "client"}

// waitDemo waits until the demo's pods are Ready and every node has testsvc's seven endpoints
// and the redis and kube-dns rules.
func (l *lab) waitDemo(tb testing.TB) {
	tb.Helper()
	for _, p := range demoPods {
		l.waitPodReady(tb, "default", p)
	}
	for _, n := range l.nodes(tb) {
		eventually(tb, 60*time.Second, "demo rules on "+n.name, func() (bool, string) {
			save := l.iptablesSave(tb, n.name)
			seps := strings.Count(save, `--comment "default/testsvc -> `)
			ok := seps == 7 && strings.Contains(save, `"default/redis cluster IP"`) &&
				strings.Contains(save, `"kube-system/kube-dns:dns cluster IP"`) &&
				strings.Contains(save, `"default/myapp cluster IP"`)
			return ok, fmt.Sprintf("%d testsvc endpoints", seps)
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Polling.

// eventually polls cond every 20 ms until it holds and returns how long that took; at the
// deadline it fails tb with what cond said last.
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still not true after %v: %s", what, timeout, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------------------------
// Packets.

func (l *lab) podNetnsPath(ns, name string) string {
	return filepath.Join(netnsDir, netlab.PodNetnsName(l.name, ns, name))
}

func (l *lab) nodeNetnsPath(node string) string {
	return filepath.Join(netnsDir, netlab.NodeNetnsName(l.name, node))
}

// echoTCP connects from inside the namespace at nsPath to addr, sends a line and parses the echo
// workload's one-line answer. timeout bounds the whole exchange.
func echoTCP(nsPath, addr string, timeout time.Duration) (netlab.EchoReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := netlab.DialInNetns(ctx, nsPath, "tcp", addr)
	if err != nil {
		return netlab.EchoReply{}, err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if _, err := c.Write([]byte("e2e\n")); err != nil {
		return netlab.EchoReply{}, fmt.Errorf("write to %s: %w", addr, err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return netlab.EchoReply{}, fmt.Errorf("read from %s: %w", addr, err)
	}
	return parseEchoLine(string(b))
}

// parseEchoLine parses "pod=… namespace=… node=… hostname=… ip=… port=80/TCP client=…".
func parseEchoLine(s string) (netlab.EchoReply, error) {
	kv := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return netlab.EchoReply{}, fmt.Errorf("not an echo line: %q", s)
		}
		kv[k] = v
	}
	return echoFromMap(kv, s)
}

// parseEchoText parses the echo's HTTP body ("pod: …" lines).
func parseEchoText(s string) (netlab.EchoReply, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			return netlab.EchoReply{}, fmt.Errorf("not an echo body: %q", s)
		}
		kv[k] = v
	}
	return echoFromMap(kv, s)
}

func echoFromMap(kv map[string]string, s string) (netlab.EchoReply, error) {
	port, proto, _ := strings.Cut(kv["port"], "/")
	n, err := strconv.Atoi(port)
	if err != nil || kv["pod"] == "" || kv["client"] == "" {
		return netlab.EchoReply{}, fmt.Errorf("not an echo answer: %q", s)
	}
	return netlab.EchoReply{Pod: kv["pod"], Namespace: kv["namespace"], Node: kv["node"], Hostname: kv["hostname"],
		IP: kv["ip"], Port: int32(n), Protocol: proto, Client: kv["client"]}, nil
}

// clientIP is the address part of an echo reply's client.
func clientIP(r netlab.EchoReply) string {
	ap, err := netip.ParseAddrPort(r.Client)
	if err != nil {
		return r.Client
	}
	return ap.Addr().String()
}

// isTimeout reports whether err is a dial or read timeout (the packets were dropped).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// hostPort joins an IP and a port.
func hostPort(ip string, port int32) string { return net.JoinHostPort(ip, strconv.Itoa(int(port))) }

// ---------------------------------------------------------------------------------------------
// DNS.

// fakeUpstream is the resolver the lab forwards names outside the cluster to: it knows
// www.example.com. A 192.0.2.10 and answers NXDOMAIN for everything else.
type fakeUpstream struct {
	udp, tcp *dns.Server
	mu       sync.Mutex
	queries  []string
}

// startUpstream opens 127.0.0.1:5353 (UDP and TCP) inside the host namespace and serves it.
func startUpstream(hostPath string) (*fakeUpstream, error) {
	var (
		pc net.PacketConn
		ln net.Listener
	)
	err := inNetns(enterPath(hostPath), func() error {
		var err error
		if pc, err = net.ListenPacket("udp", upstreamAddr); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", upstreamAddr); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listen for the fake upstream DNS: %w", err)
	}
	u := &fakeUpstream{}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	u.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(u.serve), NotifyStartedFunc: notify}
	u.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(u.serve), NotifyStartedFunc: notify}
	go u.udp.ActivateAndServe()
	go u.tcp.ActivateAndServe()
	<-started
	<-started
	return u, nil
}

func (u *fakeUpstream) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		u.mu.Lock()
		u.queries = append(u.queries, q.Name+" "+dns.TypeToString[q.Qtype])
		u.mu.Unlock()
		switch {
		case !strings.EqualFold(q.Name, upstreamName):
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(upstreamAnswer).To4(),
			})
		}
	}
	_ = w.WriteMsg(m)
}

// seen returns the questions the upstream answered so far.
func (u *fakeUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.queries)
}

func (u *fakeUpstream) close() {
	_ = u.udp.Shutdown()
	_ = u.tcp.Shutdown()
}

// queryDNS asks the lab's cluster DNS on the host listener (127.0.0.1:1053 in the host
// namespace) over network ("udp" or "tcp").
func (l *lab) queryDNS(network, name string, qtype uint16) (*dns.Msg, error) {
	return queryDNSIn(l.hostPath, network, dnsAddr, name, qtype)
}

// queryDNSIn asks server from inside the namespace at nsPath.
func queryDNSIn(nsPath, network, server, name string, qtype uint16) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := netlab.DialInNetns(ctx, nsPath, network, server)
	if err != nil {
		return nil, err
	}
	co := &dns.Conn{Conn: c}
	defer co.Close()
	dl, _ := ctx.Deadline()
	co.SetDeadline(dl)
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

// aRecords returns the A records' addresses of an answer, sorted.
func aRecords(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// digAnswers parses the ANSWER SECTION of dig's output into "name TTL class type data" lines
// with single spaces.
func digAnswers(out string) []string {
	var ans []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			in = true
		case in && (line == "" || strings.HasPrefix(line, ";;")):
			in = false
		case in:
			ans = append(ans, strings.Join(strings.Fields(line), " "))
		}
	}
	return ans
}

// ---------------------------------------------------------------------------------------------
// Small helpers over API types.

// sliceEndpointIPs returns the addresses of the EndpointSlices of a Service, sorted.
func (l *lab) sliceEndpointIPs(tb testing.TB, ns, svc string) []string {
	tb.Helper()
	var list discoveryv1.EndpointSliceList
	l.call(tb, http.MethodGet, slicePath(ns, "")+"?labelSelector="+urlQueryEscape(discoveryv1.LabelServiceName+"="+svc), "", nil, &list, http.StatusOK)
	var ips []string
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			ips = append(ips, e.Addresses...)
		}
	}
	slices.Sort(ips)
	return ips
}

func podIPs(pods []*corev1.Pod) []string {
	var ips []string
	for _, p := range pods {
		ips = append(ips, p.Status.PodIP)
	}
	slices.Sort(ips)
	return ips
}
