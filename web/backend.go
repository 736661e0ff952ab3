package web

import (
	"context"
	"io/fs"
	"log/slog"
	"net/netip"

	"github.com/svclab/svclab/dataplane"
)

// Backend is what the web UI and its /lab/v1 endpoints need from the running
// lab. The wiring (main) implements it over the store, the proxiers and
// netlab; tests use fakes.
type Backend interface {
	// Nodes returns the node names, in display order.
	Nodes(ctx context.Context) ([]string, error)
	// Rules returns the node's LIVE rules: `iptables-save -c` of the filter
	// and nat tables inside the node's network namespace, parsed (every
	// Rule with its Counters). An unknown node is an error wrapping
	// ErrUnknownNode.
	Rules(ctx context.Context, node string) (*dataplane.Ruleset, error)
	// Topology returns the lab's nodes, pods, links and Services.
	Topology(ctx context.Context) (*Topology, error)
	// Probe sends one real request from req.Source to the destination and
	// returns the echo reply. A connection that is refused or times out is
	// an error (the trace then shows why).
	Probe(ctx context.Context, req ProbeRequest) (*ProbeResult, error)
	// NodeNetns returns the path of the node's network namespace (for the
	// kernel trace), "" if unknown.
	NodeNetns(node string) string
}

// ChainReader is an optional Backend extension for large nodes. Rules must
// run iptables-save and parse the whole dump (about a second at 10,000
// Services), so once a Backend also implements ChainReader the handler
// keeps the parsed Ruleset of each node until RulesGeneration changes and
// reads only the displayed chains' counters each second.
type ChainReader interface {
	// RulesGeneration returns a number that changes whenever the node's
	// rules are rewritten (e.g. the proxier's sync count).
	RulesGeneration(ctx context.Context, node string) (uint64, error)
	// ChainRules returns the live rules, with counters, of only the named
	// chains of one table: `iptables -t TABLE -S CHAIN -v` per chain,
	// wrapped in "*TABLE … COMMIT" and parsed with dataplane.ParseSave
	// (its "-c PACKETS BYTES" become the Counters). Missing chains are
	// absent from the result. At 10,000 Services one small chain costs
	// ~3 ms and KUBE-SERVICES ~110 ms, against ~1.7 s for iptables-save of
	// filter and nat.
	ChainRules(ctx context.Context, node string, table dataplane.Table, chains []string) (*dataplane.Ruleset, error)
}

// Options configure NewHandler.
type Options struct {
	// Logger receives request errors; nil discards. The handler adds
	// component=web.
	Logger *slog.Logger
	// APIToken, if set, lets requests that are not from loopback trace and
	// probe when they carry "Authorization: Bearer <APIToken>". Without
	// it, only loopback clients may.
	APIToken string
	// ClusterCIDR is the pod network, used to label "! -s <clusterCIDR>"
	// as "not from the pod network". The zero prefix: labels say the CIDR.
	ClusterCIDR netip.Prefix
	// AutoDrawLimit is the number of Services up to which the UI draws the
	// whole node without a selection. 0 means 40.
	AutoDrawLimit int
	// Examples holds the seed's example manifests (*.yaml at its root),
	// served concatenated at /examples.yaml for the Apply view's one-click
	// load. nil serves an empty stream. svclab passes its embedded
	// examples/ directory, the same files `up --demo` applies.
	Examples fs.FS
	// KernelTrace replaces dataplane.StartKernelTrace (tests). nil means
	// the real one.
	KernelTrace KernelTraceFunc
}

// KernelTraceFunc starts a kernel trace in a node's namespace; it has the
// shape of dataplane.StartKernelTrace.
type KernelTraceFunc func(ctx context.Context, netnsPath string, m dataplane.TraceMatch) (KernelTraceStopper, error)

// KernelTraceStopper is a running kernel trace (*dataplane.KernelTracer).
type KernelTraceStopper interface {
	Stop(ctx context.Context) (*dataplane.KernelTraceResult, error)
}

// Topology is the lab as the topology view draws it.
type Topology struct {
	// Host is the machine's side of the lab.
	Host TopoHost `json:"host"`
	// ClusterCIDR, ServiceCIDR and UnderlayCIDR are the lab's ranges
	// ("" when unknown).
	ClusterCIDR  string        `json:"clusterCIDR,omitempty"`
	ServiceCIDR  string        `json:"serviceCIDR,omitempty"`
	UnderlayCIDR string        `json:"underlayCIDR,omitempty"`
	Nodes        []TopoNode    `json:"nodes"`
	Pods         []TopoPod     `json:"pods"`
	Links        []TopoLink    `json:"links"`
	Services     []TopoService `json:"services"`
}

// TopoHost is the host (root network namespace) end of the lab.
type TopoHost struct {
	// Name is a display name, e.g. "host".
	Name string `json:"name"`
	// IP is the host's address on the lab's underlay (svclab0).
	IP string `json:"ip,omitempty"`
	// Link is the host's link into the lab, e.g. "svclab0".
	Link string `json:"link,omitempty"`
}

// TopoNode is one node (a network namespace holding kube-proxy's rules).
type TopoNode struct {
	Name    string `json:"name"`
	IP      string `json:"ip"`
	PodCIDR string `json:"podCIDR,omitempty"`
	Ready   bool   `json:"ready"`
	// Netns is the namespace name, e.g. "svclab-node-1".
	Netns string `json:"netns,omitempty"`
	// Bridge is the pods' bridge, e.g. "cni0", and BridgeIP its address.
	Bridge   string `json:"bridge,omitempty"`
	BridgeIP string `json:"bridgeIP,omitempty"`
	// LocalAddrs are every address of the node (what `-m addrtype
	// --dst-type LOCAL` matches). Empty means IP and BridgeIP.
	LocalAddrs []string `json:"localAddrs,omitempty"`
}

// TopoPod is one pod (a network namespace on a node).
type TopoPod struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	IP          string            `json:"ip"`
	Node        string            `json:"node"`
	Ready       bool              `json:"ready"`
	Ports       []TopoPort        `json:"ports,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// TopoPort is a container port.
type TopoPort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
}

// TopoLink is a link between two ends (veth pair, bridge port, underlay).
type TopoLink struct {
	// Kind is "veth", "bridge" or "underlay".
	Kind string `json:"kind"`
	// A and B are the ends: "host", a node name, or "ns/pod"; IfA and IfB
	// the interface names at each end.
	A   string `json:"a"`
	IfA string `json:"ifA,omitempty"`
	B   string `json:"b"`
	IfB string `json:"ifB,omitempty"`
}

// TopoService is one Service.
type TopoService struct {
	Namespace    string            `json:"namespace"`
	Name         string            `json:"name"`
	Type         string            `json:"type"`
	ClusterIP    string            `json:"clusterIP,omitempty"`
	Ports        []TopoServicePort `json:"ports,omitempty"`
	LBIPs        []string          `json:"loadBalancerIPs,omitempty"`
	ExternalIPs  []string          `json:"externalIPs,omitempty"`
	ExternalName string            `json:"externalName,omitempty"`
	// ExternalTrafficPolicy, InternalTrafficPolicy, SessionAffinity as in
	// the spec ("" when unset).
	ExternalTrafficPolicy string            `json:"externalTrafficPolicy,omitempty"`
	InternalTrafficPolicy string            `json:"internalTrafficPolicy,omitempty"`
	SessionAffinity       string            `json:"sessionAffinity,omitempty"`
	Endpoints             []TopoEndpoint    `json:"endpoints,omitempty"`
	Labels                map[string]string `json:"labels,omitempty"`
	Annotations           map[string]string `json:"annotations,omitempty"`
}

// TopoServicePort is one port of a Service.
type TopoServicePort struct {
	Name       string `json:"name,omitempty"`
	Port       int32  `json:"port"`
	Protocol   string `json:"protocol"`
	TargetPort string `json:"targetPort,omitempty"`
	NodePort   int32  `json:"nodePort,omitempty"`
}

// TopoEndpoint is one endpoint address of a Service.
type TopoEndpoint struct {
	IP    string `json:"ip"`
	Port  int32  `json:"port,omitempty"`
	Ready bool   `json:"ready"`
	Node  string `json:"node,omitempty"`
	// Pod is "ns/name" of the target pod, "" if none.
	Pod string `json:"pod,omitempty"`
}

// ProbeRequest is one request the lab sends for a trace.
type ProbeRequest struct {
	// Source is "host", "node:NAME" (a process on the node itself) or
	// "NAMESPACE/POD".
	Source string `json:"source"`
	// DestIP and Port are where the request goes (before any DNAT).
	DestIP   string `json:"destIP"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"` // "tcp" or "udp"
}

// ProbeResult is the answer of a probe.
type ProbeResult struct {
	// Reply is the echo workload's answer as text.
	Reply string `json:"reply"`
	// SourceIP is the address the request was sent from, if known.
	SourceIP string `json:"sourceIP,omitempty"`
	// Pod is "ns/name" of the pod that answered, if known (from the reply).
	Pod string `json:"pod,omitempty"`
}
