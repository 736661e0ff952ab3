package dataplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A capture of `xtables-monitor --trace` (iptables 1.8.9) for a probe to a
// cluster IP sent from the node itself, with the tracer's own TRACE rules,
// a marker packet, and a later packet of the same connection.
const sampleTrace = `PACKET: 2 5d1c0a01 OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=48 TOS=0x0 TTL=64 ID=1 DF SPORT=51000 DPORT=45000 
 TRACE: 2 5d1c0a01 raw:OUTPUT:rule:0x9:CONTINUE  -4 -t raw -A OUTPUT -d 127.0.0.1/32 -p udp -m udp --dport 45000 -m comment --comment "svclab-ktrace-abcd marker" -j TRACE
 TRACE: 2 5d1c0a01 raw:OUTPUT:policy:ACCEPT 
PACKET: 2 96126de2 OUT=veth0 SRC=10.99.0.1 DST=10.96.5.5 LEN=60 TOS=0x0 TTL=64 ID=41605 DF SPORT=37242 DPORT=80 SYN 
 TRACE: 2 96126de2 raw:OUTPUT:rule:0x7:CONTINUE  -4 -t raw -A OUTPUT -d 10.96.5.5/32 -p tcp -m tcp --dport 80 -m comment --comment "svclab-ktrace-abcd probe" -j TRACE
 TRACE: 2 96126de2 raw:OUTPUT:policy:ACCEPT 
PACKET: 2 96126de2 OUT=veth0 SRC=10.99.0.1 DST=10.96.5.5 LEN=60 TOS=0x0 TTL=64 ID=41605 DF SPORT=37242 DPORT=80 SYN 
 TRACE: 2 96126de2 nat:OUTPUT:rule:0x3:JUMP:KUBE-SERVICES  -4 -t nat -A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
 TRACE: 2 96126de2 nat:KUBE-SERVICES:rule:0x5:JUMP:KUBE-SVC-TEST  -4 -t nat -A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-TEST
 TRACE: 2 96126de2 nat:KUBE-SVC-TEST:rule:0x6:JUMP:KUBE-SEP-ONE  -4 -t nat -A KUBE-SVC-TEST -m comment --comment "default/web:http -> 10.99.0.2:8080" -j KUBE-SEP-ONE
 TRACE: 2 96126de2 nat:KUBE-SEP-ONE:rule:0x8:ACCEPT  -4 -t nat -A KUBE-SEP-ONE -p tcp -m comment --comment default/web:http -m tcp -j DNAT --to-destination 10.99.0.2:8080
PACKET: 2 96126de2 OUT=veth0 SRC=10.99.0.1 DST=10.99.0.2 LEN=60 TOS=0x0 TTL=64 ID=41605 DF SPORT=37242 DPORT=8080 SYN 
 TRACE: 2 96126de2 filter:OUTPUT:rule:0x2:JUMP:KUBE-SERVICES  -4 -t filter -A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
 TRACE: 2 96126de2 filter:KUBE-SERVICES:return: 
 TRACE: 2 96126de2 filter:OUTPUT:policy:ACCEPT 
PACKET: 2 0b0b0b0b OUT=veth0 SRC=10.99.0.1 DST=10.96.5.5 LEN=52 TOS=0x0 TTL=64 ID=41606 DF SPORT=37242 DPORT=80 ACK 
 TRACE: 2 0b0b0b0b raw:OUTPUT:rule:0x7:CONTINUE  -4 -t raw -A OUTPUT -d 10.96.5.5/32 -p tcp -m tcp --dport 80 -m comment --comment "svclab-ktrace-abcd probe" -j TRACE
 TRACE: 2 0b0b0b0b raw:OUTPUT:policy:ACCEPT 
some unrelated line
`

func TestParseKernelTrace(t *testing.T) {
	own := func(text string) bool { return strings.Contains(text, "svclab-ktrace-abcd") }
	marker := func(p packetLine) bool { return p.dport == 45000 && p.dst == mustAddr("127.0.0.1") }
	res := parseKernelTrace(strings.Split(sampleTrace, "\n"), own, marker)

	type hit struct {
		Table                     Table
		Chain, Kind, Verdict, Jmp string
		Handle                    uint64
		Target, ToDest            string
	}
	type pkt struct {
		ID      string
		Src     string
		Dst     string
		DPort   uint16
		Headers int
		Hits    []hit
	}
	var got []pkt
	for _, p := range res.Packets {
		g := pkt{ID: p.ID, Src: p.Src.String(), Dst: p.Dst.String(), DPort: p.DstPort, Headers: len(p.Headers)}
		for _, h := range p.Hits {
			x := hit{Table: h.Table, Chain: h.Chain, Kind: h.Kind, Verdict: h.Verdict, Jmp: h.JumpTarget, Handle: h.Handle}
			if h.Rule != nil {
				x.Target, x.ToDest = h.Rule.Target, h.Rule.ToDestination
			}
			g.Hits = append(g.Hits, x)
		}
		got = append(got, g)
	}
	want := []pkt{
		{ID: "96126de2", Src: "10.99.0.1", Dst: "10.96.5.5", DPort: 80, Headers: 3, Hits: []hit{
			{Table: "raw", Chain: "OUTPUT", Kind: "policy", Verdict: "ACCEPT"},
			{Table: "nat", Chain: "OUTPUT", Kind: "rule", Verdict: "JUMP", Jmp: "KUBE-SERVICES", Handle: 3, Target: "KUBE-SERVICES"},
			{Table: "nat", Chain: "KUBE-SERVICES", Kind: "rule", Verdict: "JUMP", Jmp: "KUBE-SVC-TEST", Handle: 5, Target: "KUBE-SVC-TEST"},
			{Table: "nat", Chain: "KUBE-SVC-TEST", Kind: "rule", Verdict: "JUMP", Jmp: "KUBE-SEP-ONE", Handle: 6, Target: "KUBE-SEP-ONE"},
			{Table: "nat", Chain: "KUBE-SEP-ONE", Kind: "rule", Verdict: "ACCEPT", Handle: 8, Target: "DNAT", ToDest: "10.99.0.2:8080"},
			{Table: "filter", Chain: "OUTPUT", Kind: "rule", Verdict: "JUMP", Jmp: "KUBE-SERVICES", Handle: 2, Target: "KUBE-SERVICES"},
			{Table: "filter", Chain: "KUBE-SERVICES", Kind: "return", Verdict: "RETURN"},
			{Table: "filter", Chain: "OUTPUT", Kind: "policy", Verdict: "ACCEPT"},
		}},
		{ID: "0b0b0b0b", Src: "10.99.0.1", Dst: "10.96.5.5", DPort: 80, Headers: 1, Hits: []hit{
			{Table: "raw", Chain: "OUTPUT", Kind: "policy", Verdict: "ACCEPT"},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsed packets (-want +got):\n%s", diff)
	}
	first := res.First()
	if d, ok := first.DNAT(); !ok || d != netip.MustParseAddrPort("10.99.0.2:8080") {
		t.Errorf("DNAT() = %v, %v; want 10.99.0.2:8080", d, ok)
	}
	if v := first.Verdict(); v != VerdictAccept {
		t.Errorf("Verdict() = %s, want ACCEPT", v)
	}
	if got, want := first.Hits[4].Text, "-A KUBE-SEP-ONE -p tcp -m comment --comment default/web:http -m tcp -j DNAT --to-destination 10.99.0.2:8080"; got != want {
		t.Errorf("hit text = %q, want %q", got, want)
	}
	for _, l := range res.Lines {
		if strings.Contains(l, "5d1c0a01") || strings.Contains(l, "svclab-ktrace-abcd") || l == "some unrelated line" {
			t.Errorf("line %q should have been dropped", l)
		}
	}
	if len(res.Lines) != 13 {
		t.Errorf("kept %d lines, want 13:\n%s", len(res.Lines), strings.Join(res.Lines, "\n"))
	}
}

func TestKernelPacketVerdict(t *testing.T) {
	reject := &Rule{Target: "REJECT"}
	tests := []struct {
		name string
		hits []KernelHit
		want Verdict
	}{
		{"accept", []KernelHit{{Kind: "policy", Verdict: "ACCEPT"}}, VerdictAccept},
		{"drop rule", []KernelHit{{Kind: "rule", Verdict: "DROP", Rule: &Rule{Target: "DROP"}}}, VerdictDrop},
		{"reject rule", []KernelHit{{Kind: "rule", Verdict: "DROP", Rule: reject}}, VerdictReject},
		{"drop policy", []KernelHit{{Kind: "policy", Verdict: "DROP"}}, VerdictDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := KernelPacket{Hits: tt.hits}
			if got := p.Verdict(); got != tt.want {
				t.Errorf("Verdict() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestKernelTraceRejectsBadMatch(t *testing.T) {
	for _, m := range []TraceMatch{
		{Proto: "icmp", Dst: mustAddr("10.0.0.1")},
		{Proto: "tcp"},
		{Proto: "tcp", Dst: mustAddr("fd00::1")},
	} {
		if _, err := StartKernelTrace(context.Background(), "/run/netns/none", m); err == nil {
			t.Errorf("StartKernelTrace(%+v) succeeded, want an error", m)
		}
	}
	if _, err := StartKernelTrace(context.Background(), "", TraceMatch{Proto: "tcp", Dst: mustAddr("10.0.0.1")}); !errors.Is(err, ErrNoNetns) {
		t.Errorf("empty netns path: err = %v, want ErrNoNetns", err)
	}
}

// ktraceLab is a throwaway three-namespace lab:
//
//	client (10.99.1.2) ── node (10.99.1.1 | 10.99.0.1) ── pod (10.99.0.2, echo on :8080)
//
// The node holds kube-proxy-like nat rules: 10.96.5.5:80 → KUBE-SVC-TEST →
// KUBE-SEP-ONE / KUBE-SEP-TWO, both DNAT to the pod.
type ktraceLab struct {
	node, pod, client string // netns paths
}

func requireKernelTrace(t *testing.T) {
	t.Helper()
	requireKernelIPTables(t)
	if _, err := exec.LookPath("xtables-monitor"); err != nil {
		t.Skip("xtables-monitor not installed")
	}
	if out, err := exec.Command("iptables", "-V").Output(); err != nil || !strings.Contains(string(out), "nf_tables") {
		t.Skipf("iptables is not the nf_tables variant: %s", out)
	}
}

func newKtraceNetns(t *testing.T, prefix, role string) (string, netns.NsHandle) {
	t.Helper()
	path := pxNamedNetns(t, prefix+"-"+role)
	h, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open netns %s: %v", path, err)
	}
	t.Cleanup(func() { h.Close() }) // before the namespace's own cleanup deletes it
	return path, h
}

// ktraceVeth creates a veth pair a (in nsA, with addrA) — b (in nsB, with
// addrB), both up.
func ktraceVeth(t *testing.T, nsA netns.NsHandle, a, addrA string, nsB netns.NsHandle, b, addrB string) {
	t.Helper()
	hA, err := netlink.NewHandleAt(nsA)
	if err != nil {
		t.Fatal(err)
	}
	defer hA.Close()
	hB, err := netlink.NewHandleAt(nsB)
	if err != nil {
		t.Fatal(err)
	}
	defer hB.Close()
	// ip link add a type veth peer name b netns B (created inside A).
	if err := hA.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b, PeerNamespace: netlink.NsFd(int(nsB))}); err != nil {
		t.Fatalf("add veth %s/%s: %v", a, b, err)
	}
	for _, x := range []struct {
		h    *netlink.Handle
		name string
		addr string
	}{{hA, a, addrA}, {hB, b, addrB}} {
		l, err := x.h.LinkByName(x.name)
		if err != nil {
			t.Fatal(err)
		}
		ad, err := netlink.ParseAddr(x.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.h.AddrAdd(l, ad); err != nil {
			t.Fatalf("add %s to %s: %v", x.addr, x.name, err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

func ktraceRoute(t *testing.T, ns netns.NsHandle, dst, gw, dev string) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := net.ParseCIDR(dst)
	if err != nil {
		t.Fatal(err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: n}
	if gw != "" {
		r.Gw = net.ParseIP(gw)
	}
	if err := h.RouteAdd(r); err != nil {
		t.Fatalf("ip route add %s via %q dev %s: %v", dst, gw, dev, err)
	}
}

const ktraceRules = `*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-TEST - [0:0]
:KUBE-SEP-ONE - [0:0]
:KUBE-SEP-TWO - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment "default/other:http cluster IP" -m tcp -p tcp -d 10.96.7.7 --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.5.5 --dport 80 -j KUBE-SVC-TEST
-A KUBE-SVC-TEST -m comment --comment "default/web:http -> 10.99.0.2:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-ONE
-A KUBE-SVC-TEST -m comment --comment "default/web:http -> 10.99.0.2:8080" -j KUBE-SEP-TWO
-A KUBE-SEP-ONE -m comment --comment default/web:http -s 10.99.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-ONE -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.99.0.2:8080
-A KUBE-SEP-TWO -m comment --comment default/web:http -s 10.99.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-TWO -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.99.0.2:8080
COMMIT
`

func newKtraceLab(t *testing.T) ktraceLab {
	t.Helper()
	requireKernelTrace(t)
	prefix := fmt.Sprintf("svclabtest-web-%06x", rand.Uint32()&0xffffff)
	nodePath, node := newKtraceNetns(t, prefix, "node")
	podPath, pod := newKtraceNetns(t, prefix, "pod")
	clientPath, client := newKtraceNetns(t, prefix, "client")
	ktraceVeth(t, node, "kt-pod", "10.99.0.1/24", pod, "eth0", "10.99.0.2/24")
	ktraceVeth(t, node, "kt-client", "10.99.1.1/24", client, "eth0", "10.99.1.2/24")
	ktraceRoute(t, pod, "0.0.0.0/0", "10.99.0.1", "eth0")
	ktraceRoute(t, client, "0.0.0.0/0", "10.99.1.1", "eth0")
	// The service range is routed towards the pod side, as a node routes
	// it somewhere before DNAT picks the real destination.
	ktraceRoute(t, node, "10.96.0.0/16", "", "kt-pod")
	err := inNetns(nodePath, func() error {
		// sysctl net.ipv4.ip_forward=1 (this thread's namespace: the node).
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	})
	if err != nil {
		t.Fatalf("enable forwarding in the node: %v", err)
	}
	kernelRestore(t, nodePath, []byte(ktraceRules))

	// The "pod": answers every TCP connection on :8080 with one line.
	var ln net.Listener
	err = inNetns(podPath, func() error {
		var err error
		ln, err = net.Listen("tcp4", "10.99.0.2:8080")
		return err
	})
	if err != nil {
		t.Fatalf("listen in pod: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "pod=web-0 client=%s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	return ktraceLab{node: nodePath, pod: podPath, client: clientPath}
}

// probeFrom connects from the namespace at nsPath to addr and returns the
// line the echo answered.
func probeFrom(nsPath, addr string, reply *string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var c net.Conn
		err := inNetns(nsPath, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp4", addr)
			return err
		})
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		*reply = strings.TrimSpace(line)
		return err
	}
}

// hitSummary is the comparable part of a hit.
type hitSummary struct {
	Table   Table
	Chain   string
	Num     int
	Verdict string
	Text    string
}

func summarize(hits []KernelHit) []hitSummary {
	var out []hitSummary
	for _, h := range hits {
		if h.Table == "raw" {
			continue
		}
		s := hitSummary{Table: h.Table, Chain: h.Chain, Num: h.Num, Verdict: h.Verdict, Text: h.Text}
		if h.JumpTarget != "" {
			s.Verdict += ":" + h.JumpTarget
		}
		out = append(out, s)
	}
	return out
}

// wantNatPath is the nat part of the probe's path through endpoint chain sep
// (entering at built-in chain hook).
func wantNatPath(t *testing.T, nodePath, hook, sep string) []hitSummary {
	rs := kernelSave(t, nodePath)
	rule := func(chain string, num int) string { return rs.Chain(TableNAT, chain).Rules[num-1].Text }
	svcNum := 1
	if sep == "KUBE-SEP-TWO" {
		svcNum = 2
	}
	return []hitSummary{
		{TableNAT, hook, 1, "JUMP:KUBE-SERVICES", rule(hook, 1)},
		{TableNAT, "KUBE-SERVICES", 2, "JUMP:KUBE-SVC-TEST", rule("KUBE-SERVICES", 2)},
		{TableNAT, "KUBE-SVC-TEST", svcNum, "JUMP:" + sep, rule("KUBE-SVC-TEST", svcNum)},
		{TableNAT, sep, 2, "ACCEPT", rule(sep, 2)},
	}
}

// assertNoTraceRules fails when TRACE rules are left in the namespace.
func assertNoTraceRules(t *testing.T, nsPath string) {
	t.Helper()
	var out []byte
	err := inNetns(nsPath, func() error {
		var err error
		out, err = exec.Command("iptables-save", "-t", "raw").Output()
		return err
	})
	if err != nil {
		t.Fatalf("iptables-save -t raw: %v", err)
	}
	if strings.Contains(string(out), "TRACE") || strings.Contains(string(out), "svclab-ktrace") {
		t.Errorf("TRACE rules left behind:\n%s", out)
	}
}

func TestKernelTrace(t *testing.T) {
	lab := newKtraceLab(t)
	tests := []struct {
		name   string
		from   string // netns the probe is sent from
		hook   string // nat built-in chain the packet enters
		src    netip.Addr
		client string // client address the pod sees
	}{
		{"from the node itself (OUTPUT)", lab.node, "OUTPUT", netip.Addr{}, "10.99.0.1"},
		{"arriving from another host (PREROUTING)", lab.client, "PREROUTING", mustAddr("10.99.1.2"), "10.99.1.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var reply string
			m := TraceMatch{Proto: "tcp", Dst: mustAddr("10.96.5.5"), DstPort: 80, Src: tt.src}
			res, err := KernelTrace(ctx, lab.node, m, probeFrom(tt.from, "10.96.5.5:80", &reply))
			if err != nil {
				t.Fatalf("KernelTrace: %v", err)
			}
			assertNoTraceRules(t, lab.node)
			if !strings.HasPrefix(reply, "pod=web-0 client="+tt.client+":") {
				t.Errorf("reply = %q, want the pod's answer seeing client %s", reply, tt.client)
			}
			first := res.First()
			if first == nil {
				t.Fatalf("no packet traced; lines:\n%s", strings.Join(res.Lines, "\n"))
			}
			if first.Dst != mustAddr("10.96.5.5") || first.DstPort != 80 {
				t.Errorf("first packet to %s:%d, want 10.96.5.5:80", first.Dst, first.DstPort)
			}
			d, ok := first.DNAT()
			if !ok || d != netip.MustParseAddrPort("10.99.0.2:8080") {
				t.Errorf("DNAT() = %v, %v; want 10.99.0.2:8080", d, ok)
			}
			got := summarize(first.Hits)
			var nat []hitSummary
			for _, h := range got {
				if h.Table == TableNAT {
					nat = append(nat, h)
				}
			}
			sep := "KUBE-SEP-ONE"
			for _, h := range nat {
				if h.Chain == "KUBE-SEP-TWO" {
					sep = "KUBE-SEP-TWO"
				}
			}
			if diff := cmp.Diff(wantNatPath(t, lab.node, tt.hook, sep), nat); diff != "" {
				t.Errorf("nat hits (-want +got):\n%s\nlines:\n%s", diff, strings.Join(res.Lines, "\n"))
			}
			for _, p := range res.Packets {
				for _, h := range p.Hits {
					if strings.Contains(h.Text, "svclab-ktrace") {
						t.Errorf("the tracer's own rule is listed as a hit: %s", h.Text)
					}
				}
				if p.Dst == mustAddr("127.0.0.1") {
					t.Errorf("a marker packet is listed: %+v", p)
				}
			}
		})
	}
}

func TestKernelTraceProbeFailure(t *testing.T) {
	lab := newKtraceLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errProbe := errors.New("probe exploded")
	var reply string
	m := TraceMatch{Proto: "tcp", Dst: mustAddr("10.96.5.5"), DstPort: 80}
	res, err := KernelTrace(ctx, lab.node, m, func(ctx context.Context) error {
		if err := probeFrom(lab.node, "10.96.5.5:80", &reply)(ctx); err != nil {
			return err
		}
		return errProbe
	})
	if !errors.Is(err, errProbe) {
		t.Fatalf("err = %v, want the probe's error", err)
	}
	if res.First() == nil {
		t.Errorf("no trace returned with the probe's error")
	}
	assertNoTraceRules(t, lab.node)
}

func TestKernelTraceStartFailureCleansUp(t *testing.T) {
	lab := newKtraceLab(t)
	// Without a route to 127.0.0.1 the marker packets cannot be sent, so
	// the start fails after inserting its rules and starting the monitor:
	// both must be undone. (ip route del local 127.0.0.0/8 table local)
	err := inNetns(lab.node, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		_, dst, _ := net.ParseCIDR("127.0.0.0/8")
		for _, d := range []*net.IPNet{dst, {IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(32, 32)}} {
			_ = netlink.RouteDel(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: d, Table: 255, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("delete the loopback routes: %v", err)
	}
	before := monitorPIDs(t)
	// The check sees monitors: one started here shows up while it runs.
	probe := exec.Command("xtables-monitor", "--trace")
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	if !monitorPIDs(t)[probe.Process.Pid] {
		t.Error("monitorPIDs does not see a running xtables-monitor")
	}
	_ = probe.Process.Kill()
	_ = probe.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = StartKernelTrace(ctx, lab.node, TraceMatch{Proto: "tcp", Dst: mustAddr("10.96.5.5"), DstPort: 80})
	if err == nil {
		t.Fatal("StartKernelTrace succeeded without a route to 127.0.0.1")
	}
	t.Logf("start failed as expected: %v", err)
	assertNoTraceRules(t, lab.node)
	for pid := range monitorPIDs(t) {
		if !before[pid] {
			t.Errorf("xtables-monitor (pid %d) left running", pid)
		}
	}
}

// monitorPIDs lists the running xtables-monitor processes.
func monitorPIDs(t *testing.T) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if filepath.Base(argv0) == "xtables-monitor" {
			out[pid] = true
		}
	}
	return out
}

func TestKernelTraceCancelledCleansUp(t *testing.T) {
	lab := newKtraceLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	kt, err := StartKernelTrace(ctx, lab.node, TraceMatch{Proto: "tcp", Dst: mustAddr("10.96.5.5"), DstPort: 80})
	if err != nil {
		t.Fatalf("StartKernelTrace: %v", err)
	}
	monitor := kt.cmd.Process.Pid
	// Cancelling the start context kills the monitor; Stop must then fail
	// and still remove the TRACE rules.
	cancel()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	if _, err := kt.Stop(stopCtx); err == nil {
		t.Error("Stop succeeded after the monitor was killed")
	}
	assertNoTraceRules(t, lab.node)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/cmdline", monitor)); err == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", monitor)); strings.Contains(string(b), "xtables-monitor") {
			t.Errorf("xtables-monitor (pid %d) still running", monitor)
		}
	}
	if _, err := kt.Stop(stopCtx); err == nil {
		t.Error("second Stop succeeded")
	}
}
