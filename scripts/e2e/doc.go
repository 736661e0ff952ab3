// Package e2e tests svclab the way a user meets it: the real svclab binary
// (built once per run), real network namespaces, real iptables rules inside
// the nodes, real packets and real DNS queries.
//
// Every lab runs inside a throwaway network namespace that plays the host
// ("svclabtest-e2e-<rand>-host"): `svclab up` is started there with nsenter,
// so its host link, host routes and loopback listeners (API on
// 127.0.0.1:8080, DNS on 127.0.0.1:1053) never touch the machine's root
// namespace. The tests reach the API and the DNS by dialing inside that
// namespace, and reach pods and nodes by dialing inside theirs
// (netlab.DialInNetns) or with `svclab exec`. Names outside the cluster are
// forwarded to a fake upstream DNS the tests start on 127.0.0.1:5353 of the
// same host namespace; no packet ever leaves the machine.
//
// The tests need root, iptables, nsenter, conntrack, dig and curl; they skip
// otherwise. TestMain compares the root namespace's links, addresses,
// routes, iptables rules and forwarding sysctls before and after the run
// and fails when anything changed; every lab is taken down in t.Cleanup,
// also on failure, and checked to leave no namespace, link or file behind.
//
// Run only this package, one package at a time:
//
//	go test ./scripts/e2e/ -v -count=1
//	go test ./scripts/e2e/ -run '^$' -bench FirstPacket -benchtime 500x -timeout 30m
//	go test ./scripts/e2e/ -run '^$' -bench NetworkProgramming -benchtime 20x -timeout 30m
//
// The benchmarks load 10,000 Services through the API (about 30 s); keep -benchtime an
// iteration count: each NetworkProgramming iteration writes one more Service and waits for it.
// A run killed by `go test -timeout` skips every cleanup: remove what is left with
// `svclab down --name e2eXXXX` and `ip netns del svclabtest-e2eXXXX-host`.
package e2e
