package netlab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// Fixed link names inside the lab's own namespaces (they cannot collide
// with anything outside the lab, so they carry no prefix).
const (
	underlayBridge = "br0"  // the switch in <Name>-net
	underlayHost   = "host" // <Name>-net's end of the host veth
	nodeUplink     = "eth0" // a node's link to the underlay
	podBridge      = "cni0" // a node's pod bridge
	podIface       = "eth0" // a pod's only link
	loopback       = "lo"
)

const (
	maxIfName    = 15 // IFNAMSIZ - 1
	maxLabName   = 32
	maxNetnsName = 96
	hashLen      = 10
)

var labNameRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// validateLabName checks Config.Name: see its documentation.
func validateLabName(name string) error {
	if len(name) > maxLabName || !labNameRE.MatchString(name) {
		return fmt.Errorf("%w: lab name %q must be lowercase letters, digits and '-', start with a letter, at most %d characters", ErrInvalidConfig, name, maxLabName)
	}
	for _, part := range strings.Split(name, "-")[1:] {
		switch part {
		case "net", "node", "pod":
			return fmt.Errorf("%w: lab name %q may not contain the part %q (it would clash with another lab's namespace names)", ErrInvalidConfig, name, part)
		}
	}
	return nil
}

// shortHash is a stable hex digest of s, n characters long.
func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// safeName reports whether s uses only characters that are safe in file and
// link names and readable in `ip netns list`.
func safeName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return s[0] != '.' && s[0] != '-'
}

// sanitize maps s to safe characters, keeping it readable.
func sanitize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-.")
}

// hashedName is base + a readable form of readable (truncated) + "-" + a
// hash of key, at most maxNetnsName long.
func hashedName(base, readable, key string) string {
	h := shortHash(key, hashLen)
	r := sanitize(readable)
	if keep := maxNetnsName - len(base) - 1 - len(h); len(r) > keep {
		r = strings.TrimRight(r[:keep], "-.")
	}
	if r == "" {
		return base + h
	}
	return base + r + "-" + h
}

// NetNetnsName is the name of the namespace holding lab labName's underlay
// bridge: "<labName>-net".
func NetNetnsName(labName string) string { return labName + "-net" }

// NodeNetnsName is the namespace name of node in lab labName. A node named
// "node-<x>" (x made of [a-z0-9.-]) gets "<labName>-node-<x>", so node-1 of
// lab svclab is "svclab-node-1"; any other node name gets
// "<labName>-node-<sanitized name>-<hash>", which keeps names unique (up to
// a 40-bit hash collision) and at most 96 characters.
func NodeNetnsName(labName, node string) string {
	base := labName + "-node-"
	if x, ok := strings.CutPrefix(node, "node-"); ok && safeName(x) && len(base)+len(x) <= maxNetnsName {
		return base + x
	}
	return hashedName(base, node, "node/"+node)
}

// PodNetnsName is the namespace name of pod namespace/name in lab labName:
// "<labName>-pod-<namespace>-<name>" when namespace contains no '-' and both
// parts use only [a-z0-9.-] (so the pair can be read back unambiguously),
// otherwise "<labName>-pod-<sanitized namespace-name>-<hash>". Names are
// unique (up to a 40-bit hash collision) and at most 96 characters.
func PodNetnsName(labName, namespace, name string) string {
	base := labName + "-pod-"
	readable := namespace + "-" + name
	if !strings.Contains(namespace, "-") && safeName(namespace) && safeName(name) && len(base)+len(readable) <= maxNetnsName {
		return base + readable
	}
	return hashedName(base, readable, "pod/"+namespace+"/"+name)
}

// ownedNetns reports whether a namespace (or /etc/netns directory) name
// belongs to lab labName. Lab name validation guarantees that no other
// lab's names match.
func ownedNetns(labName, name string) bool {
	return name == NetNetnsName(labName) ||
		strings.HasPrefix(name, labName+"-node-") ||
		strings.HasPrefix(name, labName+"-pod-")
}

// isPodNetns reports whether name is one of lab labName's pod namespaces.
func isPodNetns(labName, name string) bool { return strings.HasPrefix(name, labName+"-pod-") }

// isNodeNetns reports whether name is one of lab labName's node namespaces.
func isNodeNetns(labName, name string) bool { return strings.HasPrefix(name, labName+"-node-") }

// HostLinkName is the host's link to the lab's underlay: "<labName>0"
// ("svclab0"), or for lab names longer than 14 characters their first 7
// characters, a 6-character hash and "0", so it fits IFNAMSIZ.
func HostLinkName(labName string) string {
	if len(labName)+1 <= maxIfName {
		return labName + "0"
	}
	return labName[:7] + shortHash(labName, 6) + "0"
}

// underlayPortName is node's port on the underlay bridge inside
// <Name>-net: the node name itself when it is "node-…" and fits, else
// "n" + hash.
func underlayPortName(node string) string {
	if strings.HasPrefix(node, "node-") && len(node) <= maxIfName && safeName(node) {
		return node
	}
	return "n" + shortHash("node/"+node, 12)
}

// podVethName is the node-side name of a pod's veth, CNI style:
// "veth" + 11 hex characters of a hash of the pod's namespace name.
func podVethName(podNetns string) string { return "veth" + shortHash(podNetns, maxIfName-4) }

// bridgeMAC is a stable, locally administered MAC address for a bridge, so
// that its address never changes when ports come and go (and pods' ARP
// caches stay valid across restarts).
func bridgeMAC(netnsName, link string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(netnsName + "/" + link))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02 // unicast, locally administered
	return mac
}
