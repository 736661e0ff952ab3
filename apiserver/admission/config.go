package admission

import (
	"fmt"
	"net/netip"

	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// Defaults of Config, the same as svclab's flags and kube-apiserver's.
var (
	// DefaultServiceCIDR is kube-apiserver's default --service-cluster-ip-range
	// (kubeadm's) and svclab's --service-cidr.
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
	// DefaultNodePortRange is kube-apiserver's --service-node-port-range.
	DefaultNodePortRange = utilnet.PortRange{Base: 30000, Size: 2768}
	// DefaultLBPool is svclab's --lb-pool.
	DefaultLBPool = netip.MustParsePrefix("172.29.255.0/24")
)

// Config configures the admitters.
type Config struct {
	// ServiceCIDR is the cluster-IP range (--service-cidr). The zero value
	// means DefaultServiceCIDR. Its family (IPv4 or IPv6) is the cluster's only
	// IP family: svclab is a single-stack cluster.
	ServiceCIDR netip.Prefix
	// NodePortRange is the node-port range (--service-node-port-range). The
	// zero value means DefaultNodePortRange.
	NodePortRange utilnet.PortRange
	// LBPool is the range LoadBalancer IPs come from (--lb-pool). The zero
	// value means DefaultLBPool.
	LBPool netip.Prefix
	// ReservedIPs are cluster IPs that random allocation never picks but that a
	// Service may request explicitly. nil means the defaults: the first address
	// of ServiceCIDR (the kubernetes Service, 10.96.0.1) and the tenth
	// (kube-dns, 10.96.0.10), as kubeadm lays them out; an empty non-nil slice
	// reserves nothing. Every address must be allocatable in ServiceCIDR.
	ReservedIPs []netip.Addr
}

// DefaultConfig returns the Config svclab starts with.
func DefaultConfig() Config {
	c := Config{}
	c.setDefaults()
	return c
}

// KubernetesServiceIP returns the first address of cidr, the clusterIP of
// the default/kubernetes Service (10.96.0.1 for 10.96.0.0/12).
func KubernetesServiceIP(cidr netip.Prefix) netip.Addr {
	return cidr.Masked().Addr().Next()
}

// DNSServiceIP returns the tenth address of cidr, the clusterIP of the
// kube-system/kube-dns Service (10.96.0.10 for 10.96.0.0/12), as kubeadm
// picks it.
func DNSServiceIP(cidr netip.Prefix) netip.Addr {
	a := cidr.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a
}

func (c *Config) setDefaults() {
	if !c.ServiceCIDR.IsValid() {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	c.ServiceCIDR = c.ServiceCIDR.Masked()
	if c.NodePortRange.Size == 0 {
		c.NodePortRange = DefaultNodePortRange
	}
	if !c.LBPool.IsValid() {
		c.LBPool = DefaultLBPool
	}
	c.LBPool = c.LBPool.Masked()
	if c.ReservedIPs == nil {
		c.ReservedIPs = []netip.Addr{KubernetesServiceIP(c.ServiceCIDR), DNSServiceIP(c.ServiceCIDR)}
	}
}

// validate checks what the allocators do not: ranges that overlap.
func (c *Config) validate() error {
	if c.ServiceCIDR.Overlaps(c.LBPool) {
		return fmt.Errorf("LB pool %s overlaps the service CIDR %s", c.LBPool, c.ServiceCIDR)
	}
	return nil
}
