package netlab

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func routeStrings(rs []route) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func TestHostRoutes(t *testing.T) {
	cfg := Config{}.withDefaults()
	tests := []struct {
		name  string
		nodes []NodeSpec
		want  []string
	}{
		{"no nodes", nil, []string{"unreachable 10.244.0.0/16", "unreachable 10.96.0.0/12", "unreachable 172.29.255.0/24"}},
		{"one node", twoNodes()[:1], []string{"unreachable 10.244.0.0/16", "unreachable 10.96.0.0/12", "172.29.255.0/24 via 172.29.0.2 dev svclab0"}},
		{"two nodes, given in any order", []NodeSpec{twoNodes()[1], twoNodes()[0]}, []string{
			"unreachable 10.244.0.0/16", "unreachable 10.96.0.0/12",
			"172.29.255.0/24 nexthop via 172.29.0.2 dev svclab0 nexthop via 172.29.0.3 dev svclab0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, routeStrings(hostRoutes(cfg, tt.nodes))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeRoutes(t *testing.T) {
	nodes := append(twoNodes(), NodeSpec{Name: "node-3", IP: mustAddr("172.29.0.4"), PodCIDR: mustPrefix("10.244.3.0/24")})
	cfg := Config{}.withDefaults()
	got := routeStrings(nodeRoutes(cfg, nodes, "node-2"))
	want := []string{"10.244.1.0/24 via 172.29.0.2 dev eth0", "10.244.3.0/24 via 172.29.0.4 dev eth0", "10.96.0.0/12 dev eth0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	cfg.LBPool = mustPrefix("192.168.250.0/24")
	got = routeStrings(nodeRoutes(cfg, nodes[:1], "node-1"))
	want = []string{"10.96.0.0/12 dev eth0", "192.168.250.0/24 dev eth0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LB pool outside the underlay (-want +got):\n%s", diff)
	}
}

func TestHostLinkAliasRoundTrip(t *testing.T) {
	cfg := Config{PodCIDR: mustPrefix("10.50.0.0/16"), LBPool: mustPrefix("192.168.9.0/24")}.withDefaults()
	got := aliasRanges(hostLinkAlias(cfg))
	want := []string{"10.50.0.0/16", "10.96.0.0/12", "192.168.9.0/24"}
	var gs []string
	for _, p := range got {
		gs = append(gs, p.String())
	}
	if diff := cmp.Diff(want, gs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if r := aliasRanges("some user alias"); r != nil {
		t.Errorf("foreign alias parsed as %v", r)
	}
}

func TestPreflightFake(t *testing.T) {
	type setup struct {
		euid     int
		missing  []string
		bridgeNF bool
		loadable bool
		hostRun  func(k *fakeKernel)
	}
	tests := []struct {
		name string
		s    setup
		want []string
	}{
		{"all good", setup{bridgeNF: true}, nil},
		{"not root, no iptables", setup{euid: 1000, missing: []string{"iptables", "xtables-monitor"}}, []string{
			"svclab needs root (network namespaces, veths and iptables need CAP_NET_ADMIN and CAP_SYS_ADMIN): run it with sudo, or use --no-network for everything above the kernel",
			"iptables not found: run scripts/setup (apt-get install iptables)",
			"xtables-monitor not found: run scripts/setup (apt-get install iptables)",
		}},
		{"br_netfilter loads on demand", setup{loadable: true}, nil},
		{"br_netfilter unavailable", setup{}, []string{
			"net.bridge.bridge-nf-call-iptables is missing and modprobe br_netfilter failed (fake failure): load br_netfilter on the host",
		}},
		{"overlaps", setup{bridgeNF: true, hostRun: func(k *fakeKernel) {
			h := k.ns[""]
			eth1 := &fakeLink{name: "eth1", kind: "device", ns: h, up: true}
			h.links["eth1"] = eth1
			k.addAddrLocked(eth1, mustPrefix("172.29.7.1/16"))
			k.addAddrLocked(eth1, mustPrefix("10.99.0.1/32"))
			h.routes = append(h.routes, route{Dst: mustPrefix("10.240.0.0/12"), Dev: "eth1", Gws: []netip.Addr{mustAddr("172.29.0.254")}, Proto: 4})
		}}, []string{
			"underlay 172.29.0.0/16 overlaps address 172.29.7.1/16 on eth1; choose another with --underlay-cidr",
			"pod CIDR 10.244.0.0/16 overlaps route 10.240.0.0/12 via 172.29.0.254 dev eth1; choose another with --pod-cidr",
			"service CIDR 10.96.0.0/12 overlaps address 10.99.0.1/32 on eth1; choose another with --service-cidr",
		}},
		{"the lab's own leftovers do not count", setup{bridgeNF: true, hostRun: func(k *fakeKernel) {
			lab := newLab(Config{}.withDefaults(), k)
			if err := lab.Up(context.Background(), twoNodes()); err != nil {
				panic(err)
			}
		}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			if tt.s.hostRun != nil {
				tt.s.hostRun(k)
			}
			loaded := tt.s.bridgeNF
			env := preflightEnv{
				euid: tt.s.euid,
				lookPath: func(f string) (string, error) {
					for _, m := range tt.s.missing {
						if m == f {
							return "", errors.New("not found")
						}
					}
					return "/usr/sbin/" + f, nil
				},
				k:        k,
				bridgeNF: func() bool { return loaded },
				modprobe: func(context.Context, string) error {
					if tt.s.loadable {
						loaded = true
						return nil
					}
					return errFake
				},
			}
			err := preflight(Config{}.withDefaults(), env)
			if diff := cmp.Diff(tt.want, errorLines(err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if err != nil && !errors.Is(err, ErrPreflight) {
				t.Errorf("%v does not match ErrPreflight", err)
			}
		})
	}
}
