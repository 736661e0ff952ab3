package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Root tests: real namespaces inside a throwaway host namespace per test.
// Traffic goes only between namespaces the test created.

func twoNodes() []NodeSpec {
	return []NodeSpec{
		{Name: "node-1", IP: mustAddr("172.29.0.2"), PodCIDR: mustPrefix("10.244.1.0/24")},
		{Name: "node-2", IP: mustAddr("172.29.0.3"), PodCIDR: mustPrefix("10.244.2.0/24")},
	}
}

func testPod(ns, name, node, ip string, ports ...PortSpec) PodSpec {
	if len(ports) == 0 {
		ports = []PortSpec{{Name: "http", Port: 80}, {Name: "dns", Port: 53, Protocol: "UDP"}}
	}
	return PodSpec{Namespace: ns, Name: name, UID: "uid-" + name, Node: node, IP: mustAddr(ip), Ports: ports}
}

// upLab starts a lab with nodes and pods; Close runs at cleanup (before Down).
func upLab(t *testing.T, nodes []NodeSpec, pods ...PodSpec) (*Lab, testLab) {
	t.Helper()
	tl := newTestConfig(t)
	lab, err := New(tl.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close(context.Background()) })
	ctx := t.Context()
	if err := lab.Up(ctx, nodes); err != nil {
		t.Fatalf("Up: %v", err)
	}
	for _, p := range pods {
		if err := lab.EnsurePod(ctx, p); err != nil {
			t.Fatalf("EnsurePod: %v", err)
		}
	}
	return lab, tl
}

// httpFrom is an HTTP client whose connections start inside nsPath.
func httpFrom(nsPath string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return DialInNetns(ctx, nsPath, network, addr)
			},
		},
	}
}

// getJSON asks the echo at addr for its JSON identity from inside nsPath.
func getJSON(t *testing.T, nsPath, addr string) EchoReply {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := httpFrom(nsPath).Do(req)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", addr, nsPath, err)
	}
	defer resp.Body.Close()
	var r EchoReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode reply from %s: %v", addr, err)
	}
	return r
}

func clientIP(t *testing.T, client string) string {
	t.Helper()
	ap, err := netip.ParseAddrPort(client)
	if err != nil {
		t.Fatalf("client %q: %v", client, err)
	}
	return ap.Addr().String()
}

func TestRootPodToPod(t *testing.T) {
	a := testPod("default", "a", "node-1", "10.244.1.2")
	b := testPod("default", "b", "node-1", "10.244.1.3")
	c := testPod("other", "c", "node-2", "10.244.2.2")
	lab, _ := upLab(t, twoNodes(), a, b, c)

	tests := []struct {
		name     string
		from, to PodSpec
	}{
		{"same node", a, b},
		{"across nodes", a, c},
		{"across nodes, back", c, a},
		{"to itself", b, b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := lab.PodNetnsPath(tt.from.Namespace, tt.from.Name)
			got := getJSON(t, from, tt.to.IP.String()+":80")
			got.Client = clientIP(t, got.Client)
			want := EchoReply{Pod: tt.to.Name, Namespace: tt.to.Namespace, Node: tt.to.Node, Hostname: tt.to.Name,
				IP: tt.to.IP.String(), Port: 80, Protocol: "TCP", Client: tt.from.IP.String()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("TCP echo (-want +got):\n%s", diff)
			}

			conn, err := DialInNetns(t.Context(), from, "udp", tt.to.IP.String()+":53")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1024)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("UDP echo: %v", err)
			}
			wantLine := fmt.Sprintf("pod=%s namespace=%s node=%s hostname=%s ip=%s port=53/UDP client=%s\n",
				tt.to.Name, tt.to.Namespace, tt.to.Node, tt.to.Name, tt.to.IP, conn.LocalAddr())
			if diff := cmp.Diff(wantLine, string(buf[:n])); diff != "" {
				t.Errorf("UDP echo (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRootEchoRawTCPAndText(t *testing.T) {
	p := testPod("default", "web", "node-1", "10.244.1.7", PortSpec{Port: 8080})
	q := testPod("default", "client", "node-2", "10.244.2.7")
	lab, _ := upLab(t, twoNodes(), p, q)
	from := lab.PodNetnsPath("default", "client")

	conn, err := DialInNetns(t.Context(), from, "tcp", "10.244.1.7:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "hello there\n")
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("raw TCP: %v", err)
	}
	want := fmt.Sprintf("pod=web namespace=default node=node-1 hostname=web ip=10.244.1.7 port=8080/TCP client=%s\n", conn.LocalAddr())
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("raw TCP answer (-want +got):\n%s", diff)
	}

	resp, err := httpFrom(from).Get("http://10.244.1.7:8080/anything")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) != 7 || lines[0] != "pod: web" || lines[4] != "ip: 10.244.1.7" || !strings.HasPrefix(lines[6], "client: 10.244.2.7:") {
		t.Errorf("text body:\n%s", body)
	}
}

func TestRootHostReachability(t *testing.T) {
	p := testPod("default", "web", "node-1", "10.244.1.2")
	_, tl := upLab(t, twoNodes(), p)
	host := tl.cfg.HostNetns

	tests := []struct {
		name, addr string
		want       syscall.Errno
	}{
		{"host to pod is refused by design", "10.244.1.2:80", unix.EHOSTUNREACH},
		{"host to a ClusterIP is unreachable", "10.96.0.1:443", unix.EHOSTUNREACH},
		{"host to a node port without a listener", "172.29.0.3:30080", unix.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A generous deadline: the point is that it fails at once
			// with the right errno, not by timing out.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := DialInNetns(ctx, host, "tcp", tt.addr)
			if err == nil {
				c.Close()
				t.Fatalf("dial %s from the host succeeded", tt.addr)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("dial %s from the host: %v, want %v", tt.addr, err, tt.want)
			}
		})
	}
}

// linkNames lists the links of a namespace.
func linkNames(t *testing.T, k kernel, ns string) []string {
	t.Helper()
	c, err := k.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ls, err := c.Links()
	if err != nil {
		t.Fatal(err)
	}
	sortLinks(ls)
	var out []string
	for _, l := range ls {
		s := fmt.Sprintf("%s %s up=%v", l.Name, l.Kind, l.Up)
		if l.Master != "" {
			s += " master=" + l.Master
		}
		out = append(out, s)
	}
	return out
}

// routeList renders a namespace's netlab and kernel routes.
func routeList(t *testing.T, k kernel, ns string) []string {
	t.Helper()
	c, err := k.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs, err := c.Routes()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s proto %d", r, r.Proto))
	}
	return out
}

func TestRootTopology(t *testing.T) {
	p := testPod("default", "web", "node-1", "10.244.1.2")
	lab, tl := upLab(t, twoNodes(), p)
	k := newLinuxKernel(tl.cfg)
	name := tl.cfg.Name
	hostLink := HostLinkName(name)
	veth := podVethName(PodNetnsName(name, "default", "web"))

	host, err := k.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	hl, err := host.Link(hostLink)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("svclab lab=%s pod=10.244.0.0/16 service=10.96.0.0/12 lb=172.29.255.0/24", name); hl.Alias != want {
		t.Errorf("host link alias %q, want %q", hl.Alias, want)
	}

	tests := []struct {
		ns         string
		links      []string
		routes     []string
		sysctls    map[string]string
		hairpinFor string
	}{
		{
			ns:    "",
			links: []string{"lo device up=false", hostLink + " veth up=true"},
			routes: []string{
				"unreachable 10.96.0.0/12 proto 115",
				"unreachable 10.244.0.0/16 proto 115",
				"172.29.0.0/16 dev " + hostLink + " proto 2",
				"172.29.255.0/24 nexthop via 172.29.0.2 dev " + hostLink + " nexthop via 172.29.0.3 dev " + hostLink + " proto 115",
			},
		},
		{
			ns:      NetNetnsName(name),
			links:   []string{"br0 bridge up=true", "host veth up=true master=br0", "lo device up=true", "node-1 veth up=true master=br0", "node-2 veth up=true master=br0"},
			sysctls: map[string]string{bridgeNFKey: "0"},
		},
		{
			ns:    NodeNetnsName(name, "node-1"),
			links: []string{"cni0 bridge up=true", "eth0 veth up=true", "lo device up=true", veth + " veth up=true master=cni0"},
			routes: []string{
				"10.96.0.0/12 dev eth0 proto 115",
				"10.244.1.0/24 dev cni0 proto 2",
				"10.244.2.0/24 via 172.29.0.3 dev eth0 proto 115",
				"172.29.0.0/16 dev eth0 proto 2",
			},
			sysctls:    map[string]string{"net/ipv4/ip_forward": "1", bridgeNFKey: "1", "net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/default/rp_filter": "0", "net/ipv4/conf/all/route_localnet": "0"},
			hairpinFor: veth,
		},
		{
			ns:     NodeNetnsName(name, "node-2"),
			links:  []string{"cni0 bridge up=true", "eth0 veth up=true", "lo device up=true"},
			routes: []string{"10.96.0.0/12 dev eth0 proto 115", "10.244.1.0/24 via 172.29.0.2 dev eth0 proto 115", "10.244.2.0/24 dev cni0 proto 2", "172.29.0.0/16 dev eth0 proto 2"},
		},
		{
			ns:     PodNetnsName(name, "default", "web"),
			links:  []string{"eth0 veth up=true", "lo device up=true"},
			routes: []string{"0.0.0.0/0 via 10.244.1.1 dev eth0 proto 115", "10.244.1.0/24 dev eth0 proto 2"},
		},
	}
	for _, tt := range tests {
		t.Run("netns "+tt.ns, func(t *testing.T) {
			if diff := cmp.Diff(tt.links, linkNames(t, k, tt.ns)); diff != "" {
				t.Errorf("links (-want +got):\n%s", diff)
			}
			if tt.routes != nil {
				got := routeList(t, k, tt.ns)
				if diff := cmp.Diff(tt.routes, got, sortStrings); diff != "" {
					t.Errorf("routes (-want +got):\n%s", diff)
				}
			}
			c, err := k.Open(tt.ns)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for key, want := range tt.sysctls {
				if got, err := c.ReadSysctl(key); err != nil || got != want {
					t.Errorf("sysctl %s = %q, %v; want %q", key, got, err, want)
				}
			}
			if tt.hairpinFor != "" {
				lc := c.(*linuxConn)
				l, err := lc.h.LinkByName(tt.hairpinFor)
				if err != nil {
					t.Fatal(err)
				}
				pi, err := lc.h.LinkGetProtinfo(l)
				if err != nil || !pi.Hairpin {
					t.Errorf("hairpin on %s: %+v, %v", tt.hairpinFor, pi, err)
				}
			}
		})
	}

	resolv, err := os.ReadFile(filepath.Join(tl.cfg.EtcNetnsDir, PodNetnsName(name, "default", "web"), "resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	wantResolv := "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if diff := cmp.Diff(wantResolv, string(resolv)); diff != "" {
		t.Errorf("resolv.conf (-want +got):\n%s", diff)
	}
	if lab.PodNetnsPath("default", "web") != filepath.Join(DefaultNetnsDir, PodNetnsName(name, "default", "web")) {
		t.Errorf("PodNetnsPath = %s", lab.PodNetnsPath("default", "web"))
	}
}

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func TestRootEnsurePodIdempotent(t *testing.T) {
	p := testPod("default", "web", "node-1", "10.244.1.2")
	q := testPod("default", "client", "node-2", "10.244.2.2")
	lab, tl := upLab(t, twoNodes(), p, q)
	k := newLinuxKernel(tl.cfg)
	podNS := PodNetnsName(tl.cfg.Name, "default", "web")
	idBefore, err := k.NetnsID(podNS)
	if err != nil {
		t.Fatal(err)
	}
	linksBefore := linkNames(t, k, NodeNetnsName(tl.cfg.Name, "node-1"))

	// A keep-alive connection survives a repeated EnsurePod: the workload
	// was not restarted.
	conn, err := DialInNetns(t.Context(), lab.PodNetnsPath("default", "client"), "tcp", "10.244.1.2:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func() error {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: web\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := lab.EnsurePod(t.Context(), p); err != nil {
			t.Fatalf("EnsurePod again: %v", err)
		}
		if err := lab.Up(t.Context(), twoNodes()); err != nil {
			t.Fatalf("Up again: %v", err)
		}
	}
	if err := get(); err != nil {
		t.Fatalf("keep-alive connection after repeated EnsurePod/Up: %v", err)
	}
	if id, _ := k.NetnsID(podNS); id != idBefore {
		t.Errorf("pod netns replaced: %d -> %d", idBefore, id)
	}
	if diff := cmp.Diff(linksBefore, linkNames(t, k, NodeNetnsName(tl.cfg.Name, "node-1"))); diff != "" {
		t.Errorf("node links changed (-before +after):\n%s", diff)
	}
}

func TestRootDeleteAndRecreate(t *testing.T) {
	p := testPod("default", "web", "node-1", "10.244.1.2")
	q := testPod("default", "client", "node-1", "10.244.1.3")
	lab, tl := upLab(t, twoNodes(), p, q)
	k := newLinuxKernel(tl.cfg)
	podNS := PodNetnsName(tl.cfg.Name, "default", "web")
	nodeNS := NodeNetnsName(tl.cfg.Name, "node-1")

	for range 2 { // the second delete is a no-op
		if err := lab.DeletePod(t.Context(), "default", "web"); err != nil {
			t.Fatalf("DeletePod: %v", err)
		}
	}
	if _, err := k.NetnsID(podNS); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pod netns after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tl.cfg.EtcNetnsDir, podNS)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/etc/netns dir after delete: %v", err)
	}
	wantLinks := []string{"cni0 bridge up=true", "eth0 veth up=true", "lo device up=true", podVethName(PodNetnsName(tl.cfg.Name, "default", "client")) + " veth up=true master=cni0"}
	if diff := cmp.Diff(wantLinks, linkNames(t, k, nodeNS)); diff != "" {
		t.Errorf("node links after delete (-want +got):\n%s", diff)
	}

	// Recreated at once (same name, same veth name) it serves again.
	if err := lab.EnsurePod(t.Context(), p); err != nil {
		t.Fatalf("EnsurePod after delete: %v", err)
	}
	if got := getJSON(t, lab.PodNetnsPath("default", "client"), "10.244.1.2:80"); got.Pod != "web" {
		t.Errorf("recreated pod answered as %q", got.Pod)
	}
}

func TestRootSyncPods(t *testing.T) {
	a := testPod("default", "a", "node-1", "10.244.1.2")
	b := testPod("default", "b", "node-1", "10.244.1.3")
	c := testPod("default", "c", "node-2", "10.244.2.2")
	lab, tl := upLab(t, twoNodes(), a, b, c)
	k := newLinuxKernel(tl.cfg)

	// b moves to node-2 with a new IP, c goes away, d is new.
	b2 := testPod("default", "b", "node-2", "10.244.2.3")
	d := testPod("kube-system", "d", "node-1", "10.244.1.4")
	if err := lab.SyncPods(t.Context(), []PodSpec{a, b2, d}); err != nil {
		t.Fatalf("SyncPods: %v", err)
	}
	if got := podNetnsNames(t, k, tl.cfg.Name); !cmp.Equal(got, []string{
		PodNetnsName(tl.cfg.Name, "default", "a"), PodNetnsName(tl.cfg.Name, "default", "b"), PodNetnsName(tl.cfg.Name, "kube-system", "d"),
	}, sortStrings) {
		t.Errorf("pod namespaces after SyncPods: %v", got)
	}
	got := getJSON(t, lab.PodNetnsPath("default", "a"), "10.244.2.3:80")
	if got.Pod != "b" || got.Node != "node-2" || clientIP(t, got.Client) != "10.244.1.2" {
		t.Errorf("moved pod b answered %+v", got)
	}
	if got := getJSON(t, lab.PodNetnsPath("default", "b"), "10.244.1.4:80"); got.Pod != "d" {
		t.Errorf("new pod d answered %+v", got)
	}
	// node-1 keeps exactly the veths of a and d.
	nodeLinks := linkNames(t, k, NodeNetnsName(tl.cfg.Name, "node-1"))
	if n := countPrefix(nodeLinks, "veth"); n != 2 {
		t.Errorf("node-1 has %d pod veths, want 2: %v", n, nodeLinks)
	}
}

func podNetnsNames(t *testing.T, k kernel, lab string) []string {
	t.Helper()
	names, err := k.ListNetns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if isPodNetns(lab, n) {
			out = append(out, n)
		}
	}
	return out
}

func countPrefix(ss []string, prefix string) int {
	n := 0
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// TestRootCrashRecovery kills -9 a process that built a lab, then
// converges with a new Lab: adopt, repair, restart workloads, remove stale
// pods, duplicate nothing.
func TestRootCrashRecovery(t *testing.T) {
	tl := newTestConfig(t)
	a := testPod("default", "a", "node-1", "10.244.1.2")
	b := testPod("default", "b", "node-2", "10.244.2.2")
	stale := testPod("default", "stale", "node-1", "10.244.1.9")
	cmd := startHelper(t, "crash-lab", helperArgs{
		Name: tl.cfg.Name, HostNetns: tl.cfg.HostNetns, EtcNetnsDir: tl.cfg.EtcNetnsDir,
		Nodes: twoNodes(), Pods: []PodSpec{a, b, stale},
	})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("crash helper: %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	k := newLinuxKernel(tl.cfg)
	// Damage what a crash (or a user) might leave half-done: a's veth is
	// gone, node-2 lost its pod route.
	func() {
		c, err := k.Open(PodNetnsName(tl.cfg.Name, "default", "a"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.DelLink(podIface); err != nil {
			t.Fatal(err)
		}
		n2, err := k.Open(NodeNetnsName(tl.cfg.Name, "node-2"))
		if err != nil {
			t.Fatal(err)
		}
		defer n2.Close()
		if err := n2.DelRoute(route{Dst: mustPrefix("10.244.1.0/24"), Type: routeUnicast, Proto: routeProto}); err != nil {
			t.Fatal(err)
		}
	}()
	hostBefore := linkNames(t, k, "")

	lab, err := New(tl.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close(context.Background()) })
	if err := Preflight(tl.cfg); err != nil {
		t.Errorf("Preflight after a crash must ignore the lab's own leftovers: %v", err)
	}
	if err := lab.Up(t.Context(), twoNodes()); err != nil {
		t.Fatalf("Up after crash: %v", err)
	}
	if err := lab.SyncPods(t.Context(), []PodSpec{a, b}); err != nil {
		t.Fatalf("SyncPods after crash: %v", err)
	}

	if got := getJSON(t, lab.PodNetnsPath("default", "a"), "10.244.2.2:80"); got.Pod != "b" || clientIP(t, got.Client) != "10.244.1.2" {
		t.Errorf("a -> b after recovery: %+v", got)
	}
	if got := getJSON(t, lab.PodNetnsPath("default", "b"), "10.244.1.2:80"); got.Pod != "a" {
		t.Errorf("b -> a after recovery: %+v", got)
	}
	if got := podNetnsNames(t, k, tl.cfg.Name); len(got) != 2 {
		t.Errorf("pod namespaces after recovery: %v", got)
	}
	if _, err := os.Stat(filepath.Join(tl.cfg.EtcNetnsDir, PodNetnsName(tl.cfg.Name, "default", "stale"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale pod's /etc/netns dir: %v", err)
	}
	if diff := cmp.Diff(hostBefore, linkNames(t, k, "")); diff != "" {
		t.Errorf("host links changed by recovery (-before +after):\n%s", diff)
	}
	for _, node := range []string{"node-1", "node-2"} {
		if n := countPrefix(linkNames(t, k, NodeNetnsName(tl.cfg.Name, node)), "veth"); n != 1 {
			t.Errorf("%s has %d pod veths after recovery, want 1", node, n)
		}
	}
	if got := routeList(t, k, NodeNetnsName(tl.cfg.Name, "node-2")); !cmp.Equal(got, []string{
		"10.96.0.0/12 dev eth0 proto 115", "10.244.1.0/24 via 172.29.0.2 dev eth0 proto 115", "10.244.2.0/24 dev cni0 proto 2", "172.29.0.0/16 dev eth0 proto 2",
	}, sortStrings) {
		t.Errorf("node-2 routes after recovery: %v", got)
	}
}

// TestRootDownRestoresHost checks that the host namespace after Up, pods
// and Down is exactly what it was before, and that Down is safe twice.
func TestRootDownRestoresHost(t *testing.T) {
	tl := newTestConfig(t)
	before, err := snapshotIn(tl.cfg.HostNetns)
	if err != nil {
		t.Fatal(err)
	}
	lab, err := New(tl.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Up(t.Context(), twoNodes()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []PodSpec{testPod("default", "a", "node-1", "10.244.1.2"), testPod("default", "b", "node-2", "10.244.2.2")} {
		if err := lab.EnsurePod(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	// Use the lab from the host so its ARP/route caches are touched too.
	if c, err := DialInNetns(t.Context(), tl.cfg.HostNetns, "tcp", "172.29.0.2:1"); err == nil {
		c.Close()
	}
	during, err := snapshotIn(tl.cfg.HostNetns)
	if err != nil {
		t.Fatal(err)
	}
	if during == before {
		t.Fatal("the host namespace did not change at all during Up: the snapshot sees nothing")
	}
	if err := lab.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i := range 2 {
		if err := Down(tl.cfg); err != nil {
			t.Fatalf("Down #%d: %v", i+1, err)
		}
	}
	after, err := snapshotIn(tl.cfg.HostNetns)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("host namespace after Down differs from before Up (-before +after):\n%s", diff)
	}
	names, _ := newLinuxKernel(tl.cfg).ListNetns()
	for _, n := range names {
		if ownedNetns(tl.cfg.Name, n) {
			t.Errorf("namespace %s left after Down", n)
		}
	}
	if ents, _ := os.ReadDir(tl.cfg.EtcNetnsDir); len(ents) != 0 {
		t.Errorf("/etc/netns entries left after Down: %v", ents)
	}
}

// TestRootDownAfterCrashWithOtherRanges: the host link's alias lets Down
// find routes of ranges it was not told about.
func TestRootDownAfterCrashWithOtherRanges(t *testing.T) {
	tl := newTestConfig(t)
	cfg := tl.cfg
	cfg.PodCIDR = mustPrefix("10.50.0.0/16")
	lab, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []NodeSpec{{Name: "node-1", IP: mustAddr("172.29.0.2"), PodCIDR: mustPrefix("10.50.1.0/24")}}
	if err := lab.Up(t.Context(), nodes); err != nil {
		t.Fatal(err)
	}
	// No Close: Down with the default ranges, as `svclab down` without flags.
	if err := Down(tl.cfg); err != nil {
		t.Fatal(err)
	}
	if got := routeList(t, newLinuxKernel(tl.cfg), ""); len(got) != 0 {
		t.Errorf("host routes left: %v", got)
	}
}

func TestRootExec(t *testing.T) {
	p := testPod("default", "web", "node-1", "10.244.1.2")
	p.Hostname = "web-host"
	_, tl := upLab(t, twoNodes(), p)
	args := helperArgs{Name: tl.cfg.Name, HostNetns: tl.cfg.HostNetns, EtcNetnsDir: tl.cfg.EtcNetnsDir, Namespace: "default", Pod: "web", Node: "node-1"}

	tests := []struct {
		name     string
		mode     string
		argv     []string
		wantOut  string
		wantCode int
	}{
		{"resolv.conf", "exec-pod", []string{"cat", "/etc/resolv.conf"}, "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", 0},
		{"pod address", "exec-pod", []string{"sh", "-c", "ip -4 -o addr show dev eth0 | awk '{print $4}'"}, "10.244.1.2/24\n", 0},
		{"hostname", "exec-pod", []string{"hostname"}, "web-host\n", 0},
		{"sysfs of the pod", "exec-pod", []string{"ls", "/sys/class/net"}, "eth0\nlo\n", 0},
		{"exit code passes through", "exec-pod", []string{"sh", "-c", "exit 7"}, "", 7},
		{"node", "exec-node", []string{"cat", "/proc/sys/net/ipv4/ip_forward"}, "1\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := args
			a.Argv = tt.argv
			cmd := startHelper(t, tt.mode, a)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || string(out) != tt.wantOut {
				t.Errorf("exit %d, output %q (stderr %q); want exit %d, output %q", code, out, stderr.String(), tt.wantCode, tt.wantOut)
			}
		})
	}

	// A pod that does not exist: ExecInPod returns ErrNotFound (no exec).
	if err := ExecInPod(tl.cfg, "default", "nope", []string{"true"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ExecInPod of a missing pod: %v, want ErrNotFound", err)
	}
}

func TestRootPreflight(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, h *netlink.Handle)
		want  []string
	}{
		{"clean host", func(*testing.T, *netlink.Handle) {}, nil},
		{
			"route overlapping the underlay",
			func(t *testing.T, h *netlink.Handle) {
				l := addDummy(t, h, "eth1")
				must(t, h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(mustPrefix("172.29.0.0/16")), Scope: netlink.SCOPE_LINK}))
			},
			[]string{"underlay 172.29.0.0/16 overlaps route 172.29.0.0/16 dev eth1; choose another with --underlay-cidr"},
		},
		{
			"address inside the pod CIDR, route over the service CIDR",
			func(t *testing.T, h *netlink.Handle) {
				l := addDummy(t, h, "eth2")
				must(t, h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(mustPrefix("10.244.3.5/24"))}))
				must(t, h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(mustPrefix("10.0.0.0/8")), Gw: mustAddr("10.244.3.1").AsSlice()}))
			},
			[]string{
				"pod CIDR 10.244.0.0/16 overlaps address 10.244.3.5/24 on eth2; choose another with --pod-cidr",
				"service CIDR 10.96.0.0/12 overlaps route 10.0.0.0/8 via 10.244.3.1 dev eth2; choose another with --service-cidr",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTestConfig(t)
			ns, err := netns.GetFromPath(tl.cfg.HostNetns)
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			h, err := netlink.NewHandleAt(ns)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			tt.setup(t, h)
			err = Preflight(tl.cfg)
			if diff := cmp.Diff(tt.want, errorLines(err)); diff != "" {
				t.Errorf("Preflight (-want +got):\n%s", diff)
			}
			if err != nil && !errors.Is(err, ErrPreflight) {
				t.Errorf("Preflight error does not match ErrPreflight: %v", err)
			}
		})
	}
}

func addDummy(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	// A veth, not a dummy: the test kernel may lack the dummy driver.
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}))
	l, err := h.LinkByName(name)
	must(t, err)
	must(t, h.LinkSetUp(l))
	return l
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
