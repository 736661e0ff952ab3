// Package admission defaults, validates and allocates for the objects svclab
// stores, the way kube-apiserver's registry strategies and admission do: it
// implements store.Admitter for services, pods, nodes, namespaces, endpoints
// and endpointslices.
//
// # Use
//
//	adm, err := admission.New(admission.Config{
//		ServiceCIDR:   netip.MustParsePrefix("10.96.0.0/12"),  // --service-cidr
//		NodePortRange: utilnet.PortRange{Base: 30000, Size: 2768}, // --service-node-port-range
//		LBPool:        netip.MustParsePrefix("172.29.255.0/24"), // --lb-pool
//	}, logger)
//	st, err := store.Open(path, store.Options{Admitters: adm.Admitters()})
//	stats := adm.Stats() // allocator fill levels, for /metrics
//
// Zero Config fields take the defaults (DefaultConfig). New refuses bad
// flags with a clear error: a service CIDR or LB pool with no allocatable
// address or more than 20 host bits, overlapping ranges, an empty node-port
// range, a reserved IP outside the service CIDR.
//
// # Errors
//
// Refusals are *apierrors.StatusError values, returned by the store
// unchanged: 422 Invalid with one cause per bad field, using kube-apiserver's
// field paths and messages (pkg/apis/core/validation,
// pkg/apis/discovery/validation, pkg/registry/core/service/storage). For
// example:
//
//	spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated
//	spec.clusterIPs: Invalid value: ["192.168.0.1"]: failed to allocate IP 192.168.0.1: the provided IP (192.168.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12
//	spec.clusterIPs[0]: Invalid value: ["10.96.0.7"]: may not change once set
//	spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'
//
// As in kube, an exhausted range is not a field error but 500 InternalError
// ("failed to allocate a serviceIP: range is full", "failed to allocate a
// nodePort: range is full"), and deleting default, kube-system or
// kube-public is 403 Forbidden ("this namespace may not be deleted").
//
// # Services
//
// Admit follows kube-apiserver's order: v1 defaults (DefaultService), then
// clusterIP/clusterIPs normalization, IP family fields (svclab is a
// single-stack cluster of the service CIDR's family), cluster IP and node
// port allocation, validation (ValidateService / ValidateServiceUpdate; a
// refusal undoes the allocations), and finally the LoadBalancer IP. On
// update, values the client left out (clusterIP, nodePorts,
// healthCheckNodePort) are patched from the stored object so re-applying the
// original manifest works, and type changes allocate or release: to
// NodePort/LoadBalancer allocates node ports, away from them releases and
// clears them, to ExternalName releases the cluster IP, away from
// LoadBalancer releases the LB IP and clears status.loadBalancer. Releases
// are deferred to the end of Admit, so a refused write frees nothing.
//
// A LoadBalancer Service gets status.loadBalancer.ingress [{ip, ipMode: VIP}]
// from the LB pool, lowest free address first, never a .0 or .255 address
// (spec.loadBalancerIP is honoured when free, 422 otherwise); when the pool
// is exhausted the Service is admitted with an empty status ("<pending>", as
// with a cloud) and the next write of it tries again. The ingress is kept on
// later updates. A write of the status subresource (recognised because the
// store applies the status rule before admission: such an update changes the
// status and nothing else) is validated as kube's ValidateServiceStatusUpdate
// and pool IPs follow the new ingress list.
//
// # Reserved cluster IPs
//
// Config.ReservedIPs (default: 10.96.0.1 for the kubernetes Service and
// 10.96.0.10 for kube-dns, i.e. the first and tenth address of the CIDR)
// are modelled as a mask on the cluster-IP bitmap: random allocation skips
// them in both bands, but any Service that requests one explicitly gets it
// if it is free (bootstrap creates kubernetes and kube-dns that way; after
// that a user asking for 10.96.0.10 gets "provided IP is already allocated").
// This is on top of kube's band split, which already keeps dynamic
// allocations out of 10.96.0.1-10.96.1.0 until the upper band is full.
//
// # Undo and restart
//
// Every Admit returns the undo of exactly what it did (allocations are
// released, releases re-taken); the allocators count holds, so undo steps of
// a failed batch commute. Rebuild re-marks every cluster IP, node port,
// health-check node port and pool LB IP of the stored Services, logging (not
// failing on) values outside today's ranges or held twice, as kube's repair
// controllers do.
//
// # Other resources
//
// Pods: DNS-1123 subdomain names, containers required, named and with an
// image, valid container ports, kube's defaults (restartPolicy Always,
// dnsPolicy ClusterFirst, protocol TCP, ...), and a mostly immutable spec
// (images, activeDeadlineSeconds and tolerations may change; spec.nodeName
// may be set once, standing in for the pods/binding subresource). Nodes,
// Namespaces (DNS-1123 label names, the kubernetes.io/metadata.name label and
// "kubernetes" finalizer), Endpoints and EndpointSlices (addressType
// required and immutable, valid addresses and ports) follow kube's rules.
package admission
