// Package dataplane turns Kubernetes Services and EndpointSlices into the exact
// iptables rules kube-proxy (iptables mode, v1.30+) writes, applies them inside a
// node's network namespace, and explains them: it parses iptables-save output
// into a Ruleset and traces packets through it.
//
// Rendering (Render) is a pure function with no I/O; applying is a separate,
// thin step (Proxier, runner).
package dataplane

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Table is an iptables table name as used in iptables-save ("*nat").
type Table string

// The tables kube-proxy writes to.
const (
	TableFilter Table = "filter"
	TableNAT    Table = "nat"
	TableMangle Table = "mangle"
)

// Node is the node whose rules are rendered.
type Node struct {
	// Name is the node name, e.g. "node-1": endpoints whose nodeName equals
	// Name are local.
	Name string
	// IPs are the node's own addresses. Render uses them only to decide
	// whether a loadBalancerSourceRanges entry covers the node itself (then
	// the LB IPs are also allowed as sources in KUBE-FW, as kube-proxy does
	// with its nodeIP).
	IPs []netip.Addr
	// Zone is the node's topology.kubernetes.io/zone label ("" = none); it
	// only matters for EndpointSlices with zone hints (topology-aware routing).
	Zone string
}

// Config holds the proxy-wide options (kube-proxy flags).
type Config struct {
	// ClusterCIDR is the pod network, used for the "! -s <clusterCIDR>"
	// masquerade rule; the zero (invalid) prefix means unset, in which case
	// kube-proxy writes no off-cluster masquerade rule (unless MasqueradeAll).
	ClusterCIDR netip.Prefix
	// MasqueradeAll masquerades all traffic to cluster IPs (--masquerade-all).
	MasqueradeAll bool
	// MasqueradeBit is the fwmark bit used to mark packets for SNAT
	// (--iptables-masquerade-bit). 0 means the default 14 (mark 0x4000).
	MasqueradeBit int
	// RandomFully appends --random-fully to the MASQUERADE rule, as kube-proxy
	// does when the host's iptables supports it. Off by default, as in
	// kube-proxy's own golden tests.
	RandomFully bool
}

// Input is everything Render needs. Render never does I/O.
type Input struct {
	Node           Node
	Config         Config
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	// Changed limits the per-service chains (KUBE-SVC/SVL/EXT/FW/SEP) written in
	// this payload to the Services it names (partial sync). nil means a full
	// sync that writes every chain.
	Changed map[types.NamespacedName]bool
	// Existing is the set of chains present in each table before this sync
	// (from the previous Result.Chains, or parsed from iptables-save). Chains in
	// Existing that are no longer wanted are declared and deleted (-X) in the
	// payload. nil = unknown (delete nothing).
	Existing map[Table]map[string]bool
}

// Result is the rendered sync.
type Result struct {
	// Payload is the complete iptables-restore --noflush input:
	// *filter … COMMIT *nat … COMMIT.
	Payload []byte
	// Chains is every chain (kube-proxy owned, not built-in) that exists after
	// this sync; feed it back as the next Input.Existing.
	Chains map[Table]map[string]bool
	// RuleCounts is the number of rules in the full desired state per table
	// (kubeproxy_sync_proxy_rules_iptables_total), also on a partial sync.
	RuleCounts map[Table]int
	// ServiceChains maps each Service to the per-service chains it owns
	// (nat table), for partial-sync bookkeeping.
	ServiceChains map[types.NamespacedName][]string
}

// JumpRule is a rule kube-proxy ensures (go-iptables EnsureRule / Insert at
// position 1) in a built-in chain, outside the restore payload, jumping to
// one of its own chains.
type JumpRule struct {
	Table    Table
	SrcChain string   // built-in chain, e.g. "PREROUTING"
	DstChain string   // kube-proxy chain, e.g. "KUBE-SERVICES"
	Extra    []string // extra match arguments placed before the comment, e.g. -m conntrack --ctstate NEW
	Comment  string   // "" means no comment match
}

// Args returns the rule specification (without table and chain) as
// go-iptables expects it, in kube-proxy's argument order:
// [extra...] -m comment --comment C -j DST.
func (j JumpRule) Args() []string {
	args := append([]string(nil), j.Extra...)
	if j.Comment != "" {
		args = append(args, "-m", "comment", "--comment", j.Comment)
	}
	return append(args, "-j", j.DstChain)
}

// SaveText returns the rule exactly as iptables-save prints it once
// ensured, e.g. `-A INPUT -m conntrack --ctstate NEW -m comment --comment
// "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`, for checking
// whether it is already present in a dump.
func (j JumpRule) SaveText() string {
	r, err := parseRuleArgs(j.Table, j.SrcChain, j.Args())
	if err != nil {
		// Unreachable for well-formed JumpRules; fall back to the raw words.
		return "-A " + j.SrcChain + " " + joinArgs(j.Args())
	}
	return r.SaveText()
}

// JumpRules lists the jumps from built-in chains that kube-proxy ensures
// before every full sync, in kube-proxy's order (iptablesJumpChains plus the
// KUBE-FIREWALL jumps). Each must be inserted at the top of SrcChain if not
// present. The DstChain must exist first (see CanaryChains and the payload):
// kube-proxy does EnsureChain(table, DstChain) before EnsureRule.
var JumpRules = []JumpRule{
	{TableFilter, "INPUT", "KUBE-EXTERNAL-SERVICES", []string{"-m", "conntrack", "--ctstate", "NEW"}, "kubernetes externally-visible service portals"},
	{TableFilter, "FORWARD", "KUBE-EXTERNAL-SERVICES", []string{"-m", "conntrack", "--ctstate", "NEW"}, "kubernetes externally-visible service portals"},
	{TableFilter, "INPUT", "KUBE-NODEPORTS", nil, "kubernetes health check service ports"},
	{TableFilter, "FORWARD", "KUBE-SERVICES", []string{"-m", "conntrack", "--ctstate", "NEW"}, "kubernetes service portals"},
	{TableFilter, "OUTPUT", "KUBE-SERVICES", []string{"-m", "conntrack", "--ctstate", "NEW"}, "kubernetes service portals"},
	{TableFilter, "FORWARD", "KUBE-FORWARD", nil, "kubernetes forwarding rules"},
	{TableFilter, "INPUT", "KUBE-PROXY-FIREWALL", []string{"-m", "conntrack", "--ctstate", "NEW"}, "kubernetes load balancer firewall"},
	{TableFilter, "OUTPUT", "KUBE-PROXY-FIREWALL", []string{"-m", "conntrack", "--ctstate", "NEW"}, "kubernetes load balancer firewall"},
	{TableFilter, "FORWARD", "KUBE-PROXY-FIREWALL", []string{"-m", "conntrack", "--ctstate", "NEW"}, "kubernetes load balancer firewall"},
	{TableNAT, "OUTPUT", "KUBE-SERVICES", nil, "kubernetes service portals"},
	{TableNAT, "PREROUTING", "KUBE-SERVICES", nil, "kubernetes service portals"},
	{TableNAT, "POSTROUTING", "KUBE-POSTROUTING", nil, "kubernetes postrouting rules"},
	{TableFilter, "INPUT", "KUBE-FIREWALL", nil, ""},
	{TableFilter, "OUTPUT", "KUBE-FIREWALL", nil, ""},
}

// CanaryChain is the empty chain kube-proxy creates (go-iptables EnsureChain,
// not in the restore payload) in each of CanaryTables; when it disappears
// someone flushed the tables and a full resync is needed.
const CanaryChain = "KUBE-PROXY-CANARY"

// CanaryTables are the tables holding CanaryChain, in kube-proxy's order.
var CanaryTables = []Table{TableMangle, TableNAT, TableFilter}
