// Package netlab builds the lab's network out of Linux network namespaces,
// veth pairs and bridges (with vishvananda/netlink and netns), runs the
// pods' built-in workloads inside them, and tears it all down. It knows
// nothing about Services or the store: callers hand it node and pod specs.
//
// # API
//
//	lab, err := netlab.New(cfg)          // validates cfg, touches nothing
//	err = netlab.Preflight(cfg)          // root? iptables? range overlaps? br_netfilter?
//	err = lab.Up(ctx, nodes)             // host link, underlay, node namespaces; idempotent
//	err = lab.EnsurePod(ctx, pod)        // namespace, veth, IP, routes, resolv.conf, workload
//	err = lab.DeletePod(ctx, ns, name)   // idempotent
//	err = lab.SyncPods(ctx, pods)        // ensure these, delete every other pod namespace
//	err = lab.Close(ctx)                 // stop workloads, take the network down (Ctrl-C)
//	err = netlab.Down(cfg)               // remove everything of lab cfg.Name, even after a crash
//	netlab.ExecInPod(cfg, ns, name, argv) // `svclab exec`: replaces the process
//	conn, err := netlab.DialInNetns(ctx, lab.PodNetnsPath(ns, name), "tcp", "10.96.0.1:443")
//
// Up and EnsurePod return only once the links they made pass traffic (the
// kernel's link watcher brings a new veth or bridge port into service a few
// milliseconds after `ip link set up`; packets sent earlier are dropped and
// a TCP SYN would be retried only after a second) and, for EnsurePod, once
// the workload reports ready.
//
// Every level-triggered call converges the kernel to the specs: after a
// kill -9, New + Up + SyncPods adopts the namespaces that exist, re-creates
// missing veths, addresses and routes, restarts the workloads and removes
// stale pods, duplicating nothing.
//
// # Topology (defaults; every name derives from Config.Name)
//
//	host netns (Config.HostNetns)   svclab0 172.29.0.1/16, veth to ──┐
//	svclab-net                      br0 (a pure switch) ─────────────┴── host, node-1, node-2, …
//	svclab-node-1                   eth0 172.29.0.2/16 (veth to br0)
//	                                cni0 bridge 10.244.1.1/24, one veth port per pod (hairpin on)
//	                                10.244.2.0/24 via 172.29.0.3 dev eth0   (host-gw, per other node)
//	                                10.96.0.0/12 dev eth0                    (see "Node routes")
//	svclab-pod-default-myapp-0      eth0 10.244.1.2/24, default via 10.244.1.1, lo up
//	/etc/netns/svclab-pod-default-myapp-0/{resolv.conf,hosts,hostname}
//
// Namespaces are bind-mounted under Config.NetnsDir (/var/run/netns), so
// `ip netns exec svclab-node-1 iptables-save` works; pod namespace names
// come from PodNetnsName, node ones from NodeNetnsName. Links in the host
// namespace carry the lab name ("svclab0", see HostLinkName); links inside
// the lab's own namespaces have fixed short names (eth0, cni0, br0,
// veth<hash>). Interface names never exceed 15 characters.
//
// # Host routes
//
// The host gets exactly one link and three routes (protocol 115, so they
// are recognisably netlab's): "unreachable 10.244.0.0/16" and
// "unreachable 10.96.0.0/12" — host→pod and host→ClusterIP fail at once
// with EHOSTUNREACH, by design, instead of leaving through the default
// gateway — and "172.29.255.0/24 nexthop via <node-1> nexthop via <node-2>
// …" (ECMP over all nodes, like a cloud load balancer that keeps the VIP
// as destination; unreachable while there are no nodes). The underlay is
// on-link through svclab0, so NodePorts on node IPs are reachable. The
// link's alias records the ranges, so Down cleans up after a crash even
// when called with other ranges. netlab writes no sysctl of the host
// namespace.
//
// # Node sysctls and routes
//
// Each node namespace gets net.ipv4.ip_forward=1, rp_filter=0 (all and
// default: LoadBalancer VIP packets arrive with dst=VIP and are DNATed by
// kube-proxy in PREROUTING, so the node needs no local address for them,
// and asymmetric or DNATed flows must not be dropped) and
// net.bridge.bridge-nf-call-iptables=1 (kube-proxy must see bridged
// traffic between two pods of the node). That sysctl is per namespace since
// Linux 5.3 and exists once br_netfilter is loaded; netlab runs `modprobe
// br_netfilter` when it is missing and fails Up with ErrBridgeNetfilter if
// it still is. route_localnet stays 0 (kube-proxy sets it if it wants
// NodePorts on 127.0.0.1). The underlay namespace sets
// bridge-nf-call-iptables=0: its bridge is a plain switch.
//
// Nodes have no default route, so nothing leaves the lab. Instead they get
// an on-link route for the service range (and for a LoadBalancer pool
// outside the underlay): a process on the node connecting to a ClusterIP
// needs a route before kube-proxy's OUTPUT DNAT rewrites the destination;
// a ClusterIP without rules then goes unanswered on the underlay. Pods
// reach other nodes' pods via host-gw routes; the host cannot reply to a
// pod address (its route is unreachable), so pod→host connections fail —
// the lab has no masquerading agent.
//
// # Workloads
//
// A pod runs the Workload named by PodSpec.Workload ("" = "echo", the
// built-in Echo) as goroutines in this process, not as processes: its
// sockets are opened inside the pod's namespace through WorkloadEnv.Listen
// and ListenPacket. Config.Workloads adds more (the cluster DNS registers
// "dns"). A workload runs until DeletePod, SyncPods or Close, restarting
// with backoff when it exits early.
//
// # Safety
//
// Down removes every namespace named "<Name>-net", "<Name>-node-…" or
// "<Name>-pod-…", their /etc/netns directories, the host link and the
// host routes; lab names are validated so that no other lab's names ever
// match. All namespace switching happens in one function (onThread), on a
// locked OS thread that is discarded if it cannot switch back.
package netlab
