// Package dns is svclab's cluster DNS: a miekg/dns server that answers the
// way CoreDNS's kubernetes plugin does under kubeadm's default Corefile
//
//	kubernetes cluster.local in-addr.arpa ip6.arpa {
//	    pods insecure
//	    fallthrough in-addr.arpa ip6.arpa
//	}
//	forward . <upstreams>
//	loadbalance
//
// with TTL 5 (the product's spec; kubeadm uses 30) and without a cache, so a
// change is visible to the next query.
//
// An Index holds the DNS-relevant part of Services, EndpointSlices, Pods and
// (optionally) Namespaces; the caller feeds it from watch events with the
// Upsert*/Delete* methods. A Server answers from the Index only:
//
//	idx := dns.NewIndex("cluster.local.")
//	srv := dns.NewServer(dns.Config{Upstreams: ups}, idx)
//	go srv.ServePacketConn(ctx, udpConn) // opened inside the DNS pod's netns
//	go srv.ServeListener(ctx, tcpListener)
//
// Records (zone cluster.local., TTL Config.TTL):
//
//   - <svc>.<ns>.svc A/AAAA: the cluster IPs (also without endpoints); for a
//     headless Service every ready endpoint address (all with
//     publishNotReadyAddresses), NXDOMAIN when there is none.
//   - <hostname>.<svc>.<ns>.svc A/AAAA: that endpoint; hostname is the
//     EndpointSlice endpoint's hostname, else its dashed IP (10-244-1-5).
//   - _<port>._<proto>.<svc>.<ns>.svc SRV: priority 0, weight floor(100/n),
//     target <svc>.<ns>.svc.<zone> (ClusterIP) or <hostname>.<svc>.<ns>.svc.<zone>
//     per ready endpoint (headless), target addresses in Additional.
//     <svc>.<ns>.svc SRV lists every port, as CoreDNS does: named ones and an
//     unnamed one alike.
//   - ExternalName: CNAME <externalName>.; for A/AAAA an in-zone target is
//     followed inside the server and an out-of-zone one resolved through the
//     upstreams, its answer appended (the CNAME alone when the upstream
//     fails). An externalName that is an IP address is NXDOMAIN, as in CoreDNS.
//   - PTR in in-addr.arpa./ip6.arpa.: cluster, external and load-balancer IPs
//     → <svc>.<ns>.svc.<zone>; endpoint IPs → <hostname>.<svc>.<ns>.svc.<zone>;
//     other reverse names are forwarded upstream.
//   - <a-b-c-d>.<ns>.pod A: a.b.c.d for any well-formed dashed IP in an
//     existing namespace (Config.Pods selects verified or disabled instead).
//   - dns-version TXT "1.1.0" (TTL 28800); the apex's SOA and NS (the
//     Services whose endpoints hold Config.LocalIPs, normally
//     kube-dns.kube-system.svc.<zone>, with address glue).
//
// Negative answers follow CoreDNS: NXDOMAIN for an unknown Service,
// namespace, endpoint or port, for a second-level label other than svc/pod
// and for a headless Service without ready endpoints; NODATA (NOERROR, no
// answer) for a name without records of the asked type, for the empty
// non-terminals (svc.<zone>, <ns>.svc.<zone>, pod.<zone>), for every TXT
// query except dns-version and for SOA queries below the apex. Both carry
// <zone> SOA ns.dns.<zone> hostmaster.<zone> <serial> 7200 1800 86400 <ttl>,
// where the serial is the unix time of the Index's last change. Answers are
// authoritative (AA) without RA. Names match case-insensitively and answers
// keep the question's spelling (the SOA and SRV targets keep its spelling of
// the zone).
//
// Serving: ServePacketConn answers UDP with a few workers that read and
// write batches (recvmmsg/sendmmsg on Linux) and answer in-zone queries
// inline; queries that may wait on an upstream get their own goroutine.
// ServeListener uses miekg/dns's TCP server. Both take sockets opened
// elsewhere (e.g. inside the DNS pod's network namespace) and stop when
// their context is done. Forwarding goes to Config.Upstreams from the
// process's own network namespace. Measured with dnsperf against 10,000
// Services on loopback (dns/internal/dnsperf): about 78,000 queries/s on
// the 2-vCPU lab VM while other work kept its load average near 8.
//
// Deviations from CoreDNS, all deliberate: no cache plugin; a namespace
// exists while the Index holds an object in it or it was announced with
// UpsertNamespace (CoreDNS watches Namespaces); apex NS and ns.dns.<zone>
// match case-insensitively (CoreDNS compares them case-sensitively).
package dns
