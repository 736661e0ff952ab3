package dataplane

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestStaleUDPFilter(t *testing.T) {
	dns := pxService("ns1", "dns", "10.96.0.53", pxPort("dns", corev1.ProtocolUDP, 53))
	dns.Spec.ExternalIPs = []string{"192.0.2.53"}
	dns.Spec.Ports[0].NodePort = 30053
	empty := pxService("ns1", "empty", "10.96.0.54", pxPort("dns", corev1.ProtocolUDP, 53))
	gone := pxService("ns1", "gone", "10.96.0.55", pxPort("dns", corev1.ProtocolUDP, 53))
	tcp := pxService("ns1", "web", "10.96.0.10", pxPort("http", corev1.ProtocolTCP, 80))

	dnsSlice := pxSlice("ns1", "dns", "dns", corev1.ProtocolUDP, 5353, "10.244.1.4", "10.244.1.6")
	// 10.244.1.6 is terminating but still serving: kube-proxy keeps its flows.
	f, tr := false, true
	dnsSlice.Endpoints[1].Conditions = discoveryv1.EndpointConditions{Ready: &f, Serving: &tr, Terminating: &tr}
	// 10.244.1.7 is not ready and says nothing about serving: not serving.
	dnsSlice.Endpoints = append(dnsSlice.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.244.1.7"}, Conditions: discoveryv1.EndpointConditions{Ready: &f}})
	goneSlice := pxSlice("ns1", "gone", "dns", corev1.ProtocolUDP, 5353, "10.244.1.8")

	prev := buildUDPState([]*corev1.Service{dns, empty, gone, tcp}, []*discoveryv1.EndpointSlice{dnsSlice, goneSlice})
	cur := buildUDPState([]*corev1.Service{dns, empty, tcp}, []*discoveryv1.EndpointSlice{dnsSlice})
	filter := newStaleUDPFilter(prev, cur)

	flow := func(proto uint8, dst string, dport uint16, replySrc string, rport uint16) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{
			FamilyType: unix.AF_INET,
			Forward:    netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP("10.244.2.9"), SrcPort: 40000, DstIP: net.ParseIP(dst), DstPort: dport},
			Reverse:    netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(replySrc), SrcPort: rport, DstIP: net.ParseIP("10.244.2.9"), DstPort: 40000},
		}
	}
	const udp, tcpP = unix.IPPROTO_UDP, unix.IPPROTO_TCP
	for _, c := range []struct {
		name string
		flow *netlink.ConntrackFlow
		want bool
	}{
		{"cluster IP to a serving endpoint", flow(udp, "10.96.0.53", 53, "10.244.1.4", 5353), false},
		{"cluster IP to a terminating, serving endpoint", flow(udp, "10.96.0.53", 53, "10.244.1.6", 5353), false},
		{"cluster IP to a removed endpoint", flow(udp, "10.96.0.53", 53, "10.244.1.5", 5353), true},
		{"cluster IP to a not-ready endpoint", flow(udp, "10.96.0.53", 53, "10.244.1.7", 5353), true},
		{"cluster IP to the right IP, wrong port", flow(udp, "10.96.0.53", 53, "10.244.1.4", 53), true},
		{"cluster IP never DNATed (blackholed before the rules)", flow(udp, "10.96.0.53", 53, "10.96.0.53", 53), true},
		{"external IP to a removed endpoint", flow(udp, "192.0.2.53", 53, "10.244.1.5", 5353), true},
		{"external IP to a serving endpoint", flow(udp, "192.0.2.53", 53, "10.244.1.4", 5353), false},
		{"other port of the cluster IP", flow(udp, "10.96.0.53", 54, "10.244.1.5", 5353), false},
		{"TCP is never touched", flow(tcpP, "10.96.0.53", 53, "10.244.1.5", 5353), false},
		{"Service without endpoints, DNATed", flow(udp, "10.96.0.54", 53, "10.244.1.5", 5353), true},
		{"Service without endpoints, not DNATed", flow(udp, "10.96.0.54", 53, "10.96.0.54", 53), false},
		{"deleted Service, DNATed", flow(udp, "10.96.0.55", 53, "10.244.1.8", 5353), true},
		{"deleted Service, not DNATed", flow(udp, "10.96.0.55", 53, "10.96.0.55", 53), true},
		{"node port to a removed endpoint", flow(udp, "172.29.0.2", 30053, "10.244.1.5", 5353), true},
		{"node port to a serving endpoint", flow(udp, "172.29.0.2", 30053, "10.244.1.4", 5353), false},
		{"node port number, not DNATed", flow(udp, "198.51.100.1", 30053, "198.51.100.1", 30053), false},
		{"unrelated UDP", flow(udp, "198.51.100.1", 53, "198.51.100.1", 53), false},
		{"IPv4 in 16-byte form", &netlink.ConntrackFlow{
			Forward: netlink.IPTuple{Protocol: udp, DstIP: net.ParseIP("10.96.0.53").To16(), DstPort: 53},
			Reverse: netlink.IPTuple{Protocol: udp, SrcIP: net.ParseIP("10.244.1.5").To16(), SrcPort: 5353},
		}, true},
	} {
		if got := filter.MatchConntrackFlow(c.flow); got != c.want {
			t.Errorf("%s: match = %v, want %v", c.name, got, c.want)
		}
	}
	if got := filter.families(); len(got) != 1 || got[0] != unix.AF_INET {
		t.Errorf("families = %v, want [AF_INET]", got)
	}
	if !cur.equal(buildUDPState([]*corev1.Service{dns, empty, tcp}, []*discoveryv1.EndpointSlice{dnsSlice})) {
		t.Error("the same objects give a different udpState")
	}
	if cur.equal(prev) {
		t.Error("removing a Service left the udpState equal")
	}
}
