// Package dnsperf measures the cluster DNS server's throughput with dnsperf
// (Debian package dnsperf) against 10,000 Services on loopback. It holds only
// a test, TestDNSPerfFigure, which runs when SVCLAB_DNSPERF=1:
//
//	SVCLAB_DNSPERF=1 go test -run TestDNSPerfFigure -v ./dns/internal/dnsperf/
//
// SVCLAB_DNSPERF_ARGS overrides the dnsperf flags after -s/-p/-d (default
// "-l 10 -c 4 -T 2 -q 200").
package dnsperf
