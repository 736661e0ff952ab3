package dataplane

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// Chain-name prefixes of the per-service and per-endpoint chains kube-proxy
// creates in the nat table.
const (
	PrefixSVC = "KUBE-SVC-" // all usable endpoints ("Cluster" traffic policy)
	PrefixSVL = "KUBE-SVL-" // node-local endpoints ("Local" traffic policy)
	PrefixEXT = "KUBE-EXT-" // external destinations (NodePort, external IP, LB IP)
	PrefixFW  = "KUBE-FW-"  // loadBalancerSourceRanges firewall
	PrefixSEP = "KUBE-SEP-" // one endpoint
)

// The kube-proxy top-level chains.
const (
	ChainServices         = "KUBE-SERVICES"
	ChainExternalServices = "KUBE-EXTERNAL-SERVICES"
	ChainNodePorts        = "KUBE-NODEPORTS"
	ChainPostrouting      = "KUBE-POSTROUTING"
	ChainMarkMasq         = "KUBE-MARK-MASQ"
	ChainForward          = "KUBE-FORWARD"
	ChainProxyFirewall    = "KUBE-PROXY-FIREWALL"
	ChainFirewall         = "KUBE-FIREWALL" // kubelet's anti-martian chain, duplicated by kube-proxy
)

// portProtoHash is kube-proxy's portProtoHash: the first 16 characters of the
// RFC 4648 base32 encoding of sha256(s).
func portProtoHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// ServicePortName returns kube-proxy's ServicePortName string for a Service
// port: "namespace/name:portName", or "namespace/name" when the port has no
// name (a Service with a single port may leave it unnamed).
func ServicePortName(namespace, name, portName string) string {
	if portName == "" {
		return namespace + "/" + name
	}
	return namespace + "/" + name + ":" + portName
}

// ServicePortChainName returns the per-service-port chain name kube-proxy
// uses: prefix (one of PrefixSVC, PrefixSVL, PrefixEXT, PrefixFW) followed by
// the hash of servicePortName + lower-case protocol. protocol may be given in
// any case ("TCP" and "tcp" give the same name).
// Example: ("KUBE-SVC-", "ns1/svc1:p80", "tcp") → "KUBE-SVC-XPGD46QRK7WJZT7O".
func ServicePortChainName(prefix string, servicePortName string, protocol string) string {
	return prefix + portProtoHash(servicePortName+strings.ToLower(protocol))
}

// EndpointChainName returns the KUBE-SEP chain name of one endpoint of a
// service port. endpoint is "IP:port" ("[IPv6]:port" for IPv6), exactly as
// kube-proxy's endpoint String().
// Example: ("ns1/svc1:p80", "tcp", "10.180.0.1:80") → "KUBE-SEP-SXIVWICOYRO3J4NJ".
func EndpointChainName(servicePortName, protocol, endpoint string) string {
	return PrefixSEP + portProtoHash(servicePortName+strings.ToLower(protocol)+endpoint)
}

// IsServiceChainName reports whether chain is a per-service or per-endpoint
// chain (KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW-, KUBE-SEP-), i.e. one that
// kube-proxy deletes when it is no longer wanted.
func IsServiceChainName(chain string) bool {
	for _, p := range []string{PrefixSVC, PrefixSVL, PrefixSEP, PrefixFW, PrefixEXT} {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}
