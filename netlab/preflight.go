package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"time"
)

// Preflight checks that lab cfg can start on this machine and returns
// every problem found, one line each (joined with errors.Join, each
// matching ErrPreflight or ErrInvalidConfig):
//
//   - not running as root;
//   - iptables, iptables-restore or xtables-monitor missing
//     ("iptables not found: run scripts/setup (apt-get install iptables)");
//   - a lab range overlapping an existing route or address of the host
//     namespace ("underlay 172.29.0.0/16 overlaps route 172.29.0.0/16 dev
//     eth1; choose another with --underlay-cidr"), ignoring the default
//     route and what this lab itself left behind (its host link and
//     routes, so `up` after a crash passes);
//   - bridge netfilter unavailable even after `modprobe br_netfilter`.
//
// It changes nothing, except that it may load br_netfilter.
func Preflight(cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	return preflight(cfg, preflightEnv{
		euid:     os.Geteuid(),
		lookPath: exec.LookPath,
		k:        newLinuxKernel(cfg),
		bridgeNF: func() bool {
			_, err := os.Stat("/proc/sys/" + bridgeNFKey)
			return err == nil
		},
		modprobe: runModprobe,
	})
}

// preflightEnv is what Preflight looks at (faked in tests).
type preflightEnv struct {
	euid     int
	lookPath func(string) (string, error)
	k        kernel
	bridgeNF func() bool
	modprobe func(ctx context.Context, module string) error
}

func preflight(cfg Config, env preflightEnv) error {
	var errs []error
	if env.euid != 0 {
		errs = append(errs, problem(nil, "svclab needs root (network namespaces, veths and iptables need CAP_NET_ADMIN and CAP_SYS_ADMIN): run it with sudo, or use --no-network for everything above the kernel"))
	}
	for _, tool := range []string{"iptables", "iptables-restore", "xtables-monitor"} {
		if _, err := env.lookPath(tool); err != nil {
			errs = append(errs, problem(nil, "%s not found: run scripts/setup (apt-get install iptables)", tool))
		}
	}
	if env.euid != 0 {
		return errors.Join(errs...)
	}
	errs = append(errs, overlaps(cfg, env.k)...)
	if !env.bridgeNF() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		perr := env.modprobe(ctx, "br_netfilter")
		cancel()
		if !env.bridgeNF() {
			errs = append(errs, problem(ErrBridgeNetfilter, "net.bridge.bridge-nf-call-iptables is missing and modprobe br_netfilter failed (%v): load br_netfilter on the host", perr))
		}
	}
	return errors.Join(errs...)
}

// overlaps reports each lab range that overlaps an address or route of the
// host namespace (one error per range, the first conflict found).
func overlaps(cfg Config, k kernel) []error {
	host, err := k.Open("")
	if err != nil {
		return []error{problem(nil, "open host netns: %v", err)}
	}
	defer host.Close()
	links, err := host.Links()
	if err != nil {
		return []error{problem(nil, "%v", err)}
	}
	sortLinks(links)
	routes, err := host.Routes()
	if err != nil {
		return []error{problem(nil, "%v", err)}
	}
	hostLink := HostLinkName(cfg.Name)
	ownRoute := ownsHostRoute(cfg.Name, []netip.Prefix{cfg.PodCIDR, cfg.ServiceCIDR, cfg.LBPool})

	var errs []error
	for _, r := range cfg.ranges() {
		if r.what == "LoadBalancer pool" && cfg.Underlay.Contains(r.prefix.Addr()) {
			continue // checked as part of the underlay
		}
		if e := addrOverlap(r, host, links, hostLink); e != "" {
			errs = append(errs, problem(nil, "%s %s overlaps %s; choose another with %s", r.what, r.prefix, e, r.flag))
			continue
		}
		for _, rt := range routes {
			if rt.Dst.Bits() == 0 || rt.Dev == hostLink || ownRoute(rt) {
				continue
			}
			if rt.Dst.Overlaps(r.prefix) {
				errs = append(errs, problem(nil, "%s %s overlaps route %s; choose another with %s", r.what, r.prefix, rt, r.flag))
				break
			}
		}
	}
	return errs
}

// addrOverlap describes the first host address inside r ("address
// 10.244.3.5/24 on eth0"), or "".
func addrOverlap(r labRange, host nsConn, links []linkInfo, hostLink string) string {
	for _, l := range links {
		if l.Name == hostLink {
			continue
		}
		addrs, err := host.Addrs(l.Name)
		if err != nil {
			continue // the link went away meanwhile
		}
		if i := slices.IndexFunc(addrs, func(a netip.Prefix) bool { return r.prefix.Contains(a.Addr()) }); i >= 0 {
			return fmt.Sprintf("address %s on %s", addrs[i], l.Name)
		}
	}
	return ""
}

// preflightError is one Preflight problem: its text is the bare one-line
// message, and it matches ErrPreflight (and also is, if set).
type preflightError struct {
	msg  string
	also error
}

func (e *preflightError) Error() string { return e.msg }

func (e *preflightError) Is(target error) bool {
	return target == ErrPreflight || (e.also != nil && target == e.also)
}

func problem(also error, format string, args ...any) error {
	return &preflightError{msg: fmt.Sprintf(format, args...), also: also}
}
