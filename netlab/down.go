package netlab

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// Down removes everything lab cfg.Name made, also after a crash when no
// Lab exists: the host routes for the lab's ranges (those in cfg and those
// recorded on the host link), the host link "<Name>0", every namespace
// named "<Name>-net", "<Name>-node-…" or "<Name>-pod-…" and their
// /etc/netns directories. Workloads of a Lab in this process are not
// stopped (use Close for that). Calling it again, or for a lab that does
// not exist, returns nil. netlab changes no sysctl of the host namespace,
// so there is none to restore.
func Down(cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	return down(cfg, newLinuxKernel(cfg), cfg.Logger.With("component", "netlab", "lab", cfg.Name))
}

func down(cfg Config, k kernel, log *slog.Logger) error {
	var errs []error
	if err := downHost(cfg, k); err != nil {
		errs = append(errs, err)
	}
	names, err := k.ListNetns()
	if err != nil {
		errs = append(errs, err)
	}
	removed := 0
	for _, name := range names {
		if !ownedNetns(cfg.Name, name) {
			continue
		}
		if err := k.DelNetns(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	ents, err := os.ReadDir(cfg.EtcNetnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range ents {
		if ownedNetns(cfg.Name, e.Name()) {
			if err := os.RemoveAll(filepath.Join(cfg.EtcNetnsDir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if removed > 0 {
		log.Info("lab network down", "namespaces", removed)
	}
	return errors.Join(errs...)
}

// downHost removes the lab's routes and link from the host namespace. A
// host namespace that no longer exists (a test's, already deleted) has
// nothing to clean.
func downHost(cfg Config, k kernel) error {
	host, err := k.Open("")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open host netns: %w", err)
	}
	defer host.Close()
	link := HostLinkName(cfg.Name)
	ranges := []netip.Prefix{cfg.PodCIDR, cfg.ServiceCIDR, cfg.LBPool}
	li, ok, err := lookupLink(host, link)
	if err != nil {
		return err
	}
	if ok && li.Kind != "veth" {
		return fmt.Errorf("host link %q is a %s, not svclab's veth: not touching it", link, li.Kind)
	}
	if ok {
		for _, p := range aliasRanges(li.Alias) {
			if !slices.Contains(ranges, p) {
				ranges = append(ranges, p)
			}
		}
	}
	routes, err := host.Routes()
	if err != nil {
		return err
	}
	owned := ownsHostRoute(cfg.Name, ranges)
	for _, r := range routes {
		if owned(r) {
			if err := host.DelRoute(r); err != nil {
				return err
			}
		}
	}
	// Deleting the veth deletes its peer in <Name>-net and every route
	// through it.
	return host.DelLink(link)
}
