package dataplane

import "testing"

func TestChainNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ServicePortChainName(PrefixSVC, "ns1/svc1:p80", "tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O"},
		{ServicePortChainName(PrefixSVC, "ns1/svc1:p80", "TCP"), "KUBE-SVC-XPGD46QRK7WJZT7O"},
		{EndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"},
		{EndpointChainName("ns1/svc1:p80", "TCP", "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"},
		// The other prefixes share the hash (values from kube-proxy's tests).
		{ServicePortChainName(PrefixEXT, "ns2/svc2:p80", "tcp"), "KUBE-EXT-GNZBNJ2PO5MGZ6GT"},
		{ServicePortChainName(PrefixSVL, "ns2/svc2:p80", "tcp"), "KUBE-SVL-GNZBNJ2PO5MGZ6GT"},
		{ServicePortChainName(PrefixFW, "ns5/svc5:p80", "tcp"), "KUBE-FW-NUKIZ6OKUXPJNT4C"},
		{EndpointChainName("ns5/svc5:p80", "tcp", "10.180.0.3:80"), "KUBE-SEP-I77PXRDZVX7PMWMN"},
		{ServicePortName("ns1", "svc1", "p80"), "ns1/svc1:p80"},
		{ServicePortName("default", "testsvc", ""), "default/testsvc"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestIsServiceChainName(t *testing.T) {
	for name, want := range map[string]bool{
		"KUBE-SVC-XPGD46QRK7WJZT7O": true, "KUBE-SVL-X": true, "KUBE-EXT-X": true, "KUBE-FW-X": true, "KUBE-SEP-X": true,
		"KUBE-SERVICES": false, "KUBE-XLB-X": false, "KUBE-MARK-MASQ": false, "KUBE-PROXY-FIREWALL": false, "DOCKER": false,
	} {
		if got := IsServiceChainName(name); got != want {
			t.Errorf("IsServiceChainName(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestJumpRulesForOrder(t *testing.T) {
	var got []string
	for _, j := range JumpRulesFor(TableFilter, "INPUT") {
		got = append(got, j.DstChain)
	}
	want := []string{"KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if a := (JumpRule{Table: TableNAT, SrcChain: "PREROUTING", DstChain: "KUBE-SERVICES", Comment: "kubernetes service portals"}).Args(); len(a) != 6 || a[3] != "kubernetes service portals" {
		t.Errorf("Args() = %q", a)
	}
}
