// Package alloc implements the allocators kube-apiserver uses for Services, as
// in-memory bitmaps: cluster IPs out of the service CIDR, node ports out of the
// node-port range, and LoadBalancer IPs out of the lab's LB pool.
//
// The design follows kube-apiserver's pkg/registry/core/service/allocator,
// ipallocator and portallocator packages:
//
//   - An IPv4 range never hands out its network or broadcast address (an IPv6
//     range never hands out its subnet-router address); they are outside the
//     bitmap, so they can be neither allocated nor released.
//   - A range is split into a lower "static" band and an upper "dynamic" band
//     (KEP-3070). Random allocation (AllocateNext with the Random strategy)
//     scans the upper band first, starting at a random slot, and only falls back
//     to the lower band when the upper one is full; explicit requests may take
//     any free slot. The lower band size is kube's
//     min(max(16, size/16), 256) for IP ranges and min(max(16, size/32), 128)
//     for port ranges, and 0 for ranges of 16 or fewer slots. For the default
//     service CIDR 10.96.0.0/12 the static band is 10.96.0.1-10.96.1.0; for the
//     default node-port range 30000-32767 it is 30000-30085.
//   - Reserved slots (Reserve) are never returned by AllocateNext, in either
//     band, but an explicit Allocate of a reserved slot succeeds when it is free.
//     svclab reserves 10.96.0.1 (the kubernetes Service) and 10.96.0.10 (kube-dns)
//     this way.
//   - The Lowest strategy (used for the LB pool, like MetalLB) always hands out
//     the lowest free, unreserved slot and has no static band.
//
// Every allocator is safe for concurrent use. Allocations are reference
// counted so that undo steps commute: Retain re-takes a slot even if it is
// already held (the count goes up), and Release gives one hold back. This keeps
// the state exact whatever order a failed batch of writes is undone in, and
// lets Rebuild mark a slot that (wrongly) appears in two stored objects so
// that deleting one of them does not free the other's address.
package alloc
