package controllers

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"
)

// Annotations and labels svclab reads or writes on objects.
const (
	// AnnotationWorkload on a pod selects the built-in workload the node side
	// runs in the pod's netns: "dns" for the cluster DNS server; absent (or
	// "echo") for the default echo server on every containerPort.
	AnnotationWorkload = "svclab.io/workload"
	// WorkloadDNS is the AnnotationWorkload value of the cluster DNS pods.
	WorkloadDNS = "dns"
	// AnnotationReady, set to "false" on a pod, makes the kubelet report the
	// pod's containers as not ready, as a failing readiness probe would (a
	// lab knob: `kubectl annotate pod P svclab.io/ready=false`). Any other
	// value, or none, means ready.
	AnnotationReady = "svclab.io/ready"
	// AnnotationBootstrap marks objects Bootstrap owns (nodes, the DNS pods),
	// so that it can remove the ones a smaller --nodes no longer wants
	// without touching objects a user created.
	AnnotationBootstrap = "svclab.io/bootstrap"
)

// Defaults of BootstrapConfig and Config.
const (
	DefaultNodes                = 2
	DefaultNodeCIDRMaskSize     = 24
	DefaultAPIServerPort        = 6443
	DefaultDNSReplicas          = 2 // kubeadm's CoreDNS Deployment runs 2 replicas
	DefaultMaxEndpointsPerSlice = 100
	DefaultKubeletWorkers       = 4
	DefaultEndpointWorkers      = 2
)

// Default address ranges (ARCHITECTURE.md).
var (
	DefaultPodCIDR     = netip.MustParsePrefix("10.244.0.0/16")
	DefaultUnderlay    = netip.MustParsePrefix("172.29.0.0/16")
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
)

// BootstrapConfig describes the cluster Bootstrap creates. Zero values take
// the defaults.
type BootstrapConfig struct {
	// Nodes is the number of nodes node-1…node-N (default 2). Bootstrap
	// converges to exactly this many of its own nodes: node-K for K > N that
	// it created earlier is deleted, together with the pods bound to it (as
	// kube's pod garbage collector deletes pods of a node that is gone).
	// Nodes not created by Bootstrap are never touched.
	Nodes int
	// PodCIDR is the cluster pod range (default 10.244.0.0/16); node-N gets
	// its N-th subnet of size NodeCIDRMaskSize (default /24): 10.244.N.0/24.
	PodCIDR          netip.Prefix
	NodeCIDRMaskSize int
	// Underlay is the node network (default 172.29.0.0/16); node-N's
	// InternalIP is its (N+1)-th address, 172.29.0.(N+1); .1 is the host.
	Underlay netip.Prefix
	// ServiceCIDR (default 10.96.0.0/12) gives the default cluster IPs of the
	// kubernetes Service (first address + 1) and kube-dns (first + 10).
	ServiceCIDR         netip.Prefix
	KubernetesServiceIP netip.Addr // default 10.96.0.1
	DNSServiceIP        netip.Addr // default 10.96.0.10
	// APIServerAddress, when valid, is written as the endpoint of the
	// default/kubernetes Service (Endpoints and EndpointSlice "kubernetes",
	// port https APIServerPort, default 6443), as kube-apiserver's endpoint
	// reconciler does. The zero Addr means no endpoints (and removes ones a
	// previous run wrote).
	APIServerAddress netip.Addr
	APIServerPort    int32
	// DNSReplicas is the number of CoreDNS pods behind kube-dns (default 2,
	// as kubeadm); a negative value means none.
	DNSReplicas int
	// KubeletVersion is reported in every node's status.nodeInfo (default
	// the Kubernetes version of the API types svclab is built with, suffixed
	// "-svclab", e.g. "v1.37.2-svclab").
	KubeletVersion string
	// Logger receives Bootstrap's logs (nil = slog.Default()).
	Logger *slog.Logger
}

// withDefaults returns c with zero fields set to their defaults, or an error
// when the ranges do not fit together.
func (c BootstrapConfig) withDefaults() (BootstrapConfig, error) {
	if c.Nodes <= 0 {
		c.Nodes = DefaultNodes
	}
	if !c.PodCIDR.IsValid() {
		c.PodCIDR = DefaultPodCIDR
	}
	c.PodCIDR = c.PodCIDR.Masked()
	if c.NodeCIDRMaskSize == 0 {
		c.NodeCIDRMaskSize = DefaultNodeCIDRMaskSize
	}
	if !c.Underlay.IsValid() {
		c.Underlay = DefaultUnderlay
	}
	c.Underlay = c.Underlay.Masked()
	if !c.ServiceCIDR.IsValid() {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	c.ServiceCIDR = c.ServiceCIDR.Masked()
	if !c.KubernetesServiceIP.IsValid() {
		c.KubernetesServiceIP = nthAddr(c.ServiceCIDR, 1)
	}
	if !c.DNSServiceIP.IsValid() {
		c.DNSServiceIP = nthAddr(c.ServiceCIDR, 10)
	}
	if c.APIServerPort == 0 {
		c.APIServerPort = DefaultAPIServerPort
	}
	if c.DNSReplicas == 0 {
		c.DNSReplicas = DefaultDNSReplicas
	}
	if c.DNSReplicas < 0 {
		c.DNSReplicas = 0
	}
	if c.KubeletVersion == "" {
		c.KubeletVersion = defaultKubeletVersion()
	}
	switch {
	case !c.PodCIDR.Addr().Is4() || !c.Underlay.Addr().Is4() || !c.ServiceCIDR.Addr().Is4():
		return c, fmt.Errorf("bootstrap config: only IPv4 ranges are supported (pods %s, underlay %s, services %s)", c.PodCIDR, c.Underlay, c.ServiceCIDR)
	case c.NodeCIDRMaskSize < c.PodCIDR.Bits() || c.NodeCIDRMaskSize > 30:
		return c, fmt.Errorf("bootstrap config: node CIDR mask /%d does not fit pod CIDR %s", c.NodeCIDRMaskSize, c.PodCIDR)
	case c.NodeCIDRMaskSize-c.PodCIDR.Bits() < 31 && c.Nodes >= 1<<(c.NodeCIDRMaskSize-c.PodCIDR.Bits()):
		return c, fmt.Errorf("bootstrap config: pod CIDR %s has room for %d /%d node subnets, %d nodes asked (node-N gets subnet N)",
			c.PodCIDR, 1<<(c.NodeCIDRMaskSize-c.PodCIDR.Bits())-1, c.NodeCIDRMaskSize, c.Nodes)
	case !c.Underlay.Contains(nthAddr(c.Underlay, c.Nodes+1)) || nthAddr(c.Underlay, c.Nodes+1) == lastAddr(c.Underlay):
		return c, fmt.Errorf("bootstrap config: underlay %s has no room for %d nodes", c.Underlay, c.Nodes)
	case !c.ServiceCIDR.Contains(c.KubernetesServiceIP) || !c.ServiceCIDR.Contains(c.DNSServiceIP):
		return c, fmt.Errorf("bootstrap config: service IPs %s and %s must be in %s", c.KubernetesServiceIP, c.DNSServiceIP, c.ServiceCIDR)
	}
	return c, nil
}

// nodePodCIDR returns node-n's pod subnet: the n-th subnet of size maskSize.
func nodePodCIDR(pods netip.Prefix, maskSize, n int) netip.Prefix {
	base := pods.Masked().Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	v += uint32(n) << (32 - maskSize)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), maskSize)
}

// NodeIP is the InternalIP bootstrap gives node-n (n from 1): the underlay's
// (n+1)-th address, 172.29.0.2 for node-1 by default.
func NodeIP(underlay netip.Prefix, n int) netip.Addr { return nthAddr(underlay, n+1) }

// nthAddr returns the n-th address after p's network address.
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// lastAddr returns p's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	return nthAddr(p, 1<<(32-p.Bits())-1)
}

// apiTypesVersion is the Kubernetes version of the k8s.io/api module in
// go.mod (v0.37.2 ↔ v1.37.2), used when the binary carries no module
// information (test binaries); keep it in step with go.mod.
const apiTypesVersion = "v1.37.2"

// defaultKubeletVersion derives "v1.X.Y-svclab" from the k8s.io/api module
// version (v0.X.Y) svclab is built with.
func defaultKubeletVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/api" && strings.HasPrefix(d.Version, "v0.") {
				v := strings.SplitN(strings.TrimPrefix(d.Version, "v0."), "-", 2)[0]
				return "v1." + v + "-svclab"
			}
		}
	}
	return apiTypesVersion + "-svclab"
}

// Config configures the Manager. Zero values take the defaults.
type Config struct {
	// Bootstrap, when non-nil, makes Run call Bootstrap with it before
	// starting the controllers.
	Bootstrap *BootstrapConfig
	// MaxEndpointsPerSlice is the EndpointSlice controller's
	// --max-endpoints-per-slice (default 100).
	MaxEndpointsPerSlice int
	// KubeletWorkers is the number of pods the kubelet starts or stops at
	// once (default 4); the PodRuntime must allow concurrent calls for
	// different pods.
	KubeletWorkers int
	// EndpointWorkers is the number of Services each endpoints controller
	// syncs at once (default 2; kube-controller-manager's
	// --concurrent-service-endpoint-syncs is 5).
	EndpointWorkers int
	// PodGCPeriod is how often the pod garbage collector looks for pods
	// bound to a node that no longer exists (default 20 s), and
	// PodGCQuarantine how long such a node must have been missing before
	// its pods are deleted (default 40 s), as kube-controller-manager's.
	PodGCPeriod, PodGCQuarantine time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxEndpointsPerSlice <= 0 {
		c.MaxEndpointsPerSlice = DefaultMaxEndpointsPerSlice
	}
	if c.KubeletWorkers <= 0 {
		c.KubeletWorkers = DefaultKubeletWorkers
	}
	if c.EndpointWorkers <= 0 {
		c.EndpointWorkers = DefaultEndpointWorkers
	}
	if c.PodGCPeriod <= 0 {
		c.PodGCPeriod = DefaultPodGCPeriod
	}
	if c.PodGCQuarantine <= 0 {
		c.PodGCQuarantine = DefaultPodGCQuarantine
	}
	return c
}
