package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
)

// EnsurePod makes pod p exist and serve: its namespace on p.Node, the veth
// to the node's cni0 (hairpin on), its address and default route, its
// /etc/netns files (resolv.conf, hosts, hostname) and its workload. It is
// idempotent and repairs what is missing or wrong: a pod whose node, IP or
// ports changed is re-plumbed and its workload restarted; a workload that
// is not running (after a crash, or because its namespace was replaced) is
// started. It returns once the workload is ready (see WorkloadEnv.Ready).
// It fails with ErrUnknownNode when p.Node was not given to Up, and with
// ErrInvalidSpec for a bad spec or an IP another pod of this Lab holds.
func (l *Lab) EnsurePod(ctx context.Context, p PodSpec) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.ensurePod(ctx, p); err != nil {
		return fmt.Errorf("ensure pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

func (l *Lab) ensurePod(ctx context.Context, p PodSpec) error {
	node, ok := l.nodes[p.Node]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownNode, p.Node)
	}
	spec, err := normalizePod(p, node)
	if err != nil {
		return err
	}
	w, ok := l.workloads[spec.Workload]
	if !ok {
		return fmt.Errorf("%w: unknown workload %q", ErrInvalidSpec, spec.Workload)
	}
	key := podKey{spec.Namespace, spec.Name}
	for k, st := range l.pods {
		if k != key && st.spec.IP == spec.IP {
			return fmt.Errorf("%w: IP %s is held by pod %s/%s", ErrInvalidSpec, spec.IP, k.namespace, k.name)
		}
	}

	name := PodNetnsName(l.cfg.Name, spec.Namespace, spec.Name)
	nodeName := NodeNetnsName(l.cfg.Name, node.Name)
	if _, err := ensureNetns(l.k, name); err != nil {
		return err
	}
	pc, err := l.k.Open(name)
	if err != nil {
		return err
	}
	defer pc.Close()
	nc, err := l.k.Open(nodeName)
	if err != nil {
		return fmt.Errorf("node %s: %w", node.Name, err)
	}
	defer nc.Close()

	veth := podVethName(name)
	if _, err := ensureVethPair(nc, nodeName, veth, pc, name, podIface); err != nil {
		return err
	}
	if err := nc.SetMaster(veth, podBridge); err != nil {
		return err
	}
	if err := nc.SetHairpin(veth, true); err != nil {
		return err
	}
	if err := nc.SetUp(veth); err != nil {
		return err
	}
	if err := pc.SetUp(loopback); err != nil {
		return err
	}
	if err := ensureAddrs(pc, podIface, netip.PrefixFrom(spec.IP, node.PodCIDR.Bits())); err != nil {
		return err
	}
	if err := pc.SetUp(podIface); err != nil {
		return err
	}
	if err := ensureRoutes(pc, podRoutes(node), ownsEveryRoute); err != nil {
		return err
	}
	if err := l.writePodFiles(name, spec); err != nil {
		return err
	}
	if err := waitLinksReady(ctx, pc, name, podIface); err != nil {
		return err
	}
	if err := waitLinksReady(ctx, nc, nodeName, veth, podBridge); err != nil {
		return err
	}

	id, err := l.k.NetnsID(name)
	if err != nil {
		return err
	}
	st := l.pods[key]
	if st != nil && st.run != nil && st.run.alive() && st.netnsID == id && reflect.DeepEqual(st.spec, spec) {
		return nil
	}
	if st != nil && st.run != nil {
		if err := st.run.stop(ctx); err != nil {
			return err
		}
	}
	delete(l.pods, key)
	log := l.log.With("pod", spec.Namespace+"/"+spec.Name, "node", spec.Node, "workload", spec.Workload)
	env := WorkloadEnv{
		Pod:          spec,
		Listen:       func(network, address string) (net.Listener, error) { return l.k.Listen(name, network, address) },
		ListenPacket: func(network, address string) (net.PacketConn, error) { return l.k.ListenPacket(name, network, address) },
		Logger:       log,
	}
	run, err := startWorkload(ctx, w, env)
	if err != nil {
		return fmt.Errorf("workload %q: %w", spec.Workload, err)
	}
	l.pods[key] = &podState{spec: spec, netnsID: id, run: run}
	log.Debug("pod ready", "ip", spec.IP, "netns", name)
	return nil
}

// writePodFiles writes /etc/netns/<netns>/{resolv.conf,hosts,hostname},
// which `ip netns exec` and ExecInPod bind-mount over /etc.
func (l *Lab) writePodFiles(netnsName string, p PodSpec) error {
	dir := filepath.Join(l.cfg.EtcNetnsDir, netnsName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	files := []struct{ name, content string }{
		{"resolv.conf", resolvConf(l.cfg, p.Namespace)},
		{"hosts", hostsFile(p)},
		{"hostname", p.Hostname + "\n"},
	}
	for _, f := range files {
		if err := writeFileIfChanged(filepath.Join(dir, f.name), f.content); err != nil {
			return err
		}
	}
	return nil
}

// writeFileIfChanged atomically replaces path with content unless it
// already holds it.
func writeFileIfChanged(path, content string) error {
	if b, err := os.ReadFile(path); err == nil && string(b) == content {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// DeletePod stops the pod's workload and removes its veth, namespace and
// /etc/netns directory. Deleting a pod that does not exist returns nil.
func (l *Lab) DeletePod(ctx context.Context, namespace, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.deletePod(ctx, podKey{namespace, name}, PodNetnsName(l.cfg.Name, namespace, name)); err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

func (l *Lab) deletePod(ctx context.Context, key podKey, netnsName string) error {
	if st := l.pods[key]; st != nil && st.run != nil {
		if err := st.run.stop(ctx); err != nil {
			return err
		}
	}
	delete(l.pods, key)
	if err := deleteNetns(l.k, netnsName, podIface); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(l.cfg.EtcNetnsDir, netnsName)); err != nil {
		return fmt.Errorf("remove /etc/netns files: %w", err)
	}
	return nil
}

// SyncPods converges the lab's pods to desired: it ensures every desired
// pod and deletes every other pod namespace of this lab, including ones a
// previous process left behind (level-triggered garbage collection after
// a crash). It carries on past failures and returns them joined.
func (l *Lab) SyncPods(ctx context.Context, desired []PodSpec) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	var errs []error
	want := map[string]bool{}
	wantKey := map[podKey]bool{}
	for _, p := range desired {
		want[PodNetnsName(l.cfg.Name, p.Namespace, p.Name)] = true
		wantKey[podKey{p.Namespace, p.Name}] = true
	}
	// Delete first, so that an IP moving from a stale pod to a desired
	// one is free when the desired pod is ensured.
	for key := range l.pods {
		if !wantKey[key] {
			if err := l.deletePod(ctx, key, PodNetnsName(l.cfg.Name, key.namespace, key.name)); err != nil {
				errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", key.namespace, key.name, err))
			}
		}
	}
	names, err := l.k.ListNetns()
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range names {
		if isPodNetns(l.cfg.Name, name) && !want[name] {
			l.log.Info("removing stale pod namespace", "netns", name)
			if err := deleteNetns(l.k, name, podIface); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if ents, err := os.ReadDir(l.cfg.EtcNetnsDir); err == nil {
		for _, e := range ents {
			if isPodNetns(l.cfg.Name, e.Name()) && !want[e.Name()] {
				if err := os.RemoveAll(filepath.Join(l.cfg.EtcNetnsDir, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, p := range desired {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := l.ensurePod(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("ensure pod %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	return errors.Join(errs...)
}
