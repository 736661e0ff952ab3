package controllers

import (
	"errors"
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/types"
)

// ErrPodCIDRFull is returned when a node's pod CIDR has no free address.
var ErrPodCIDRFull = errors.New("no free IP in the node's pod CIDR")

// nodeIPAM allocates pod IPs from one node's pod CIDR like CNI's host-local
// IPAM: .1 is the gateway (the node's cni0), pods get .2 upward, the network
// and broadcast addresses are never handed out, and allocation continues
// after the last address handed out (wrapping around) instead of reusing a
// just-released one at once, so a new pod does not inherit a deleted pod's
// conntrack entries. Not safe for concurrent use (the kubelet locks).
type nodeIPAM struct {
	prefix netip.Prefix
	first  netip.Addr // first pod address (.2)
	lastOK netip.Addr // last pod address (broadcast - 1)
	last   netip.Addr // last address handed out; invalid = none yet
	byIP   map[netip.Addr]ipOwner
	byKey  map[string]netip.Addr // "namespace/name" → IP
}

type ipOwner struct {
	key string
	uid types.UID
}

func newNodeIPAM(prefix netip.Prefix) (*nodeIPAM, error) {
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("pod CIDR %s: need an IPv4 prefix of /30 or larger", prefix)
	}
	return &nodeIPAM{
		prefix: prefix,
		first:  nthAddr(prefix, 2),
		lastOK: lastAddr(prefix).Prev(),
		byIP:   make(map[netip.Addr]ipOwner),
		byKey:  make(map[string]netip.Addr),
	}, nil
}

// usable reports whether ip may be given to a pod.
func (a *nodeIPAM) usable(ip netip.Addr) bool {
	return a.prefix.Contains(ip) && ip.Compare(a.first) >= 0 && ip.Compare(a.lastOK) <= 0
}

// reserve gives ip to the pod key/uid if it is usable and free (or already
// the pod's), and reports whether it did. It is how a restart keeps every
// pod's IP. The reservation moves "last" forward like an allocation.
func (a *nodeIPAM) reserve(key string, uid types.UID, ip netip.Addr) bool {
	if !a.usable(ip) {
		return false
	}
	if o, ok := a.byIP[ip]; ok {
		return o.key == key && o.uid == uid
	}
	a.release(key)
	a.byIP[ip] = ipOwner{key, uid}
	a.byKey[key] = ip
	if !a.last.IsValid() || ip.Compare(a.last) > 0 {
		a.last = ip
	}
	return true
}

// allocate returns the pod's IP: the one it already holds (same uid), else
// preferred when usable and free, else the next free address after the last
// one handed out. A different pod (uid) of the same key loses its address.
func (a *nodeIPAM) allocate(key string, uid types.UID, preferred netip.Addr) (netip.Addr, error) {
	if ip, ok := a.byKey[key]; ok {
		if a.byIP[ip].uid == uid {
			return ip, nil
		}
		a.release(key)
	}
	if preferred.IsValid() && a.reserve(key, uid, preferred) {
		return preferred, nil
	}
	start := a.first
	if a.last.IsValid() && a.last.Compare(a.lastOK) < 0 {
		start = a.last.Next()
	}
	ip := start
	for {
		if _, taken := a.byIP[ip]; !taken {
			a.byIP[ip] = ipOwner{key, uid}
			a.byKey[key] = ip
			a.last = ip
			return ip, nil
		}
		ip = ip.Next()
		if ip.Compare(a.lastOK) > 0 {
			ip = a.first
		}
		if ip == start {
			return netip.Addr{}, fmt.Errorf("pod %s: %w %s", key, ErrPodCIDRFull, a.prefix)
		}
	}
}

// release frees the pod's IP (no-op when it holds none).
func (a *nodeIPAM) release(key string) {
	if ip, ok := a.byKey[key]; ok {
		delete(a.byKey, key)
		delete(a.byIP, ip)
	}
}

// used returns the number of addresses handed out.
func (a *nodeIPAM) used() int { return len(a.byIP) }
