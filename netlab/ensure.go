package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"time"
)

// Idempotent building blocks: each makes one piece of kernel state match
// what is wanted, creating what is missing and replacing what is wrong.

// ensureNetns makes the named namespace exist; a stale file left by a crash
// is replaced. It reports whether the namespace was created.
func ensureNetns(k kernel, name string) (bool, error) {
	_, err := k.NetnsID(name)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, errStaleNetns):
		if err := k.DelNetns(name); err != nil {
			return false, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	if err := k.AddNetns(name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil // created concurrently
		}
		return false, fmt.Errorf("create netns %s: %w", name, err)
	}
	return true, nil
}

// lookupLink returns the link, ok=false when it does not exist.
func lookupLink(c nsConn, name string) (linkInfo, bool, error) {
	l, err := c.Link(name)
	if errors.Is(err, fs.ErrNotExist) {
		return linkInfo{}, false, nil
	}
	if err != nil {
		return linkInfo{}, false, err
	}
	return l, true, nil
}

// ensureBridge makes a bridge named name with a stable MAC exist in c.
func ensureBridge(c nsConn, nsName, name string) error {
	l, ok, err := lookupLink(c, name)
	if err != nil {
		return err
	}
	if ok && l.Kind == "bridge" {
		return nil
	}
	if ok {
		return fmt.Errorf("link %q in %s is a %s, not a bridge", name, nsName, l.Kind)
	}
	return c.AddBridge(name, bridgeMAC(nsName, name))
}

// ensureVethPair makes a veth aName in a whose peer is bName in b. Both
// ends are created together and die together, so when both exist they are
// taken to be the pair; when only one exists (the other died with its
// namespace, or the pod moved to another node) it is deleted and the pair
// re-created. It reports whether the pair was created.
func ensureVethPair(a nsConn, aNS, aName string, b nsConn, bNS, bName string) (bool, error) {
	la, aok, err := lookupLink(a, aName)
	if err != nil {
		return false, err
	}
	lb, bok, err := lookupLink(b, bName)
	if err != nil {
		return false, err
	}
	if aok && la.Kind != "veth" {
		return false, fmt.Errorf("link %q in %s is a %s, not a veth", aName, aNS, la.Kind)
	}
	if bok && lb.Kind != "veth" {
		return false, fmt.Errorf("link %q in %s is a %s, not a veth", bName, bNS, lb.Kind)
	}
	if aok && bok {
		return false, nil
	}
	if aok {
		if err := a.DelLink(aName); err != nil {
			return false, err
		}
	}
	if bok {
		if err := b.DelLink(bName); err != nil {
			return false, err
		}
	}
	if err := a.AddVeth(aName, b, bName); err != nil {
		return false, err
	}
	return true, nil
}

// ensureAddrs makes want the link's only IPv4 addresses.
func ensureAddrs(c nsConn, link string, want ...netip.Prefix) error {
	have, err := c.Addrs(link)
	if err != nil {
		return err
	}
	for _, p := range have {
		if !slices.Contains(want, p) {
			if err := c.DelAddr(link, p); err != nil {
				return err
			}
		}
	}
	for _, p := range want {
		if !slices.Contains(have, p) {
			if err := c.AddAddr(link, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureRoutes adds or replaces every wanted route and deletes every
// existing route that owned reports as netlab's but is not wanted.
// Routes the kernel made (connected routes) are left alone.
func ensureRoutes(c nsConn, want []route, owned func(route) bool) error {
	have, err := c.Routes()
	if err != nil {
		return err
	}
	for _, w := range want {
		if slices.ContainsFunc(have, func(h route) bool { return sameRoute(h, w) && h.Proto == routeProto }) {
			continue
		}
		if err := c.ReplaceRoute(w); err != nil {
			return err
		}
	}
	for _, h := range have {
		if h.Proto == protoKernel || !owned(h) {
			continue
		}
		// A wanted route replaced above now has a different identity
		// only if its destination differs; keep every wanted destination.
		if slices.ContainsFunc(want, func(w route) bool { return w.Dst == h.Dst }) {
			continue
		}
		if err := c.DelRoute(h); err != nil {
			return err
		}
	}
	return nil
}

// linkReadyTimeout bounds waitLinksReady; the kernel normally needs a few
// milliseconds.
const linkReadyTimeout = 5 * time.Second

// waitLinksReady polls until every named link of c passes traffic (see
// nsConn.LinkReady), so that the caller's first packet is not dropped
// while the kernel's link watcher catches up with a link just set up.
func waitLinksReady(ctx context.Context, c nsConn, nsName string, names ...string) error {
	deadline := time.Now().Add(linkReadyTimeout)
	pause := 500 * time.Microsecond
	for {
		pending := ""
		for _, n := range names {
			ok, err := c.LinkReady(n)
			if err != nil {
				return err
			}
			if !ok {
				pending = n
				break
			}
		}
		if pending == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %q in %s is not passing traffic after %s", pending, nsName, linkReadyTimeout)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(pause*2, 20*time.Millisecond)
	}
}

// protoKernel is RTPROT_KERNEL: routes the kernel adds for addresses.
const protoKernel = 2

// ownsEveryRoute is the ownership rule inside the lab's own namespaces:
// every route that is not the kernel's is netlab's.
func ownsEveryRoute(route) bool { return true }
