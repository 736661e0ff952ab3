package netlab

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"LB pool outside the underlay", func(c *Config) { c.LBPool = mustPrefix("192.168.250.0/24") }, ""},
		{"bad lab name", func(c *Config) { c.Name = "Svc" }, "lab name"},
		{"not a network address", func(c *Config) { c.PodCIDR = mustPrefix("10.244.0.1/16") }, "pod CIDR 10.244.0.1/16 is not a network address (did you mean 10.244.0.0/16?)"},
		{"IPv6", func(c *Config) { c.ServiceCIDR = mustPrefix("fd00::/108") }, "service CIDR fd00::/108 is not IPv4"},
		{"pod overlaps service", func(c *Config) { c.ServiceCIDR = mustPrefix("10.244.128.0/20") }, "pod CIDR 10.244.0.0/16 overlaps service CIDR 10.244.128.0/20"},
		{"underlay overlaps pods", func(c *Config) { c.Underlay = mustPrefix("10.0.0.0/8") }, "underlay 10.0.0.0/8 overlaps pod CIDR"},
		{"LB pool contains the underlay", func(c *Config) { c.LBPool = mustPrefix("172.28.0.0/15") }, "underlay 172.29.0.0/16 overlaps LoadBalancer pool 172.28.0.0/15"},
		{"LB pool holds the host", func(c *Config) { c.LBPool = mustPrefix("172.29.0.0/24") }, "contains the host address 172.29.0.1"},
		{"tiny underlay", func(c *Config) { c.Underlay = mustPrefix("172.29.0.0/30"); c.LBPool = mustPrefix("192.168.0.0/24") }, "too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{}.withDefaults()
			tt.modify(&c)
			err := c.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			case err != nil && !errors.Is(err, ErrInvalidConfig):
				t.Errorf("error %v does not match ErrInvalidConfig", err)
			}
		})
	}
}

func TestNormalizePod(t *testing.T) {
	node := twoNodes()[0]
	p := PodSpec{Namespace: "default", Name: "web", Node: "node-1", IP: mustAddr("10.244.1.9"),
		Ports: []PortSpec{{Port: 80}, {Name: "dns", Port: 53, Protocol: "udp"}}}
	got, err := normalizePod(p, node)
	if err != nil {
		t.Fatal(err)
	}
	want := p
	want.Hostname, want.Workload = "web", "echo"
	want.Ports = []PortSpec{{Port: 80, Protocol: "TCP"}, {Name: "dns", Port: 53, Protocol: "UDP"}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("normalizePod (-want +got):\n%s", diff)
	}

	bad := []PodSpec{
		{Namespace: "", Name: "x", IP: mustAddr("10.244.1.9")},
		{Namespace: "default", Name: "x", IP: mustAddr("10.244.1.0")},
		{Namespace: "default", Name: "x", IP: mustAddr("10.244.1.255")},
		{Namespace: "default", Name: "x", IP: mustAddr("10.244.1.9"), Ports: []PortSpec{{Port: 0}}},
		{Namespace: "default", Name: "x", IP: mustAddr("10.244.1.9"), Ports: []PortSpec{{Port: 70000}}},
	}
	for _, b := range bad {
		if _, err := normalizePod(b, node); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("normalizePod(%+v) = %v, want ErrInvalidSpec", b, err)
		}
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.244.1.0/24": "10.244.1.255", "172.29.0.0/16": "172.29.255.255", "10.96.0.0/12": "10.111.255.255", "10.0.0.8/30": "10.0.0.11",
	} {
		if got := lastAddr(mustPrefix(in)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
