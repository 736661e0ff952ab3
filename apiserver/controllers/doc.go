// Package controllers runs svclab's control loops over the store, the way
// kube-controller-manager, kube-scheduler and the kubelets do in a cluster:
//
//   - Bootstrap creates what a fresh kubeadm cluster has (namespaces, nodes
//     node-1…node-N, the kubernetes and kube-dns Services, the CoreDNS pods),
//     idempotently on every start.
//   - The scheduler binds pods without spec.nodeName to the feasible node
//     with the fewest pods.
//   - The kubelet (one controller for every node) gives each bound pod an IP
//     from its node's pod CIDR, starts it through a PodRuntime (netlab's
//     network namespaces, or SimulatedRuntime) and reports it Running and
//     Ready through the status subresource.
//   - The EndpointSlice, Endpoints and EndpointSliceMirroring controllers
//     are ports of kube-controller-manager's: same slice names, labels,
//     annotations, grouping by port set, packing and ordering.
//   - The pod garbage collector deletes pods bound to a node that no longer
//     exists, after kube's 40 s quarantine (the EndpointSlice controller
//     drops their endpoints at once).
//
// Every controller is event-driven and level-triggered: one watch over all
// resources feeds a shared cache (re-listed when the watch ends), event
// handlers enqueue keys into small deduplicating work queues, and each sync
// compares the desired state with the cached one and writes only the
// difference. Nothing polls but the pod garbage collector, which scans the
// cache every 20 s as kube's does. A Manager wires it all: NewManager, Run,
// WaitSynced.
package controllers
