package e2e

import (
	"strings"
	"testing"
)

// TestDiffSnapshots checks the root-namespace comparison TestMain relies on: any change is
// reported, except net.bridge.* sysctls appearing because br_netfilter got loaded.
func TestDiffSnapshots(t *testing.T) {
	base := func() map[string][]string {
		return map[string][]string{
			"ip -o link":                 {"1: lo: <LOOPBACK,UP>"},
			"iptables-save":              {"*filter", ":INPUT ACCEPT [0:0]", "COMMIT"},
			"sysctl net.ipv4.ip_forward": {"net.ipv4.ip_forward = 0"},
			"sysctl net.bridge":          {"net.bridge.bridge-nf-call-iptables = 1"},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(before, after map[string][]string)
		differ bool
	}{
		{"unchanged", func(_, _ map[string][]string) {}, false},
		{"new link", func(_, a map[string][]string) { a["ip -o link"] = append(a["ip -o link"], "9: svclab0@if2: <UP>") }, true},
		{"new rule", func(_, a map[string][]string) {
			a["iptables-save"] = []string{"*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -j DROP", "COMMIT"}
		}, true},
		{"forwarding on", func(_, a map[string][]string) { a["sysctl net.ipv4.ip_forward"] = []string{"net.ipv4.ip_forward = 1"} }, true},
		{"bridge sysctl changed", func(_, a map[string][]string) {
			a["sysctl net.bridge"] = []string{"net.bridge.bridge-nf-call-iptables = 0"}
		}, true},
		{"br_netfilter loaded during the run", func(b, _ map[string][]string) { b["sysctl net.bridge"] = nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, after := base(), base()
			tc.change(before, after)
			diff := diffSnapshots(before, after)
			if (diff != "") != tc.differ {
				t.Errorf("diff = %q, want a difference: %v", diff, tc.differ)
			}
		})
	}
}

// TestSnapshotNormalisation: counters and address lifetimes do not count as changes.
func TestSnapshotNormalisation(t *testing.T) {
	in := ":KUBE-SERVICES - [12:3456]\n4: eth0    inet 192.0.2.2/24 valid_lft 86321sec preferred_lft 86321sec\n"
	got := lifetimeRE.ReplaceAllString(countersRE.ReplaceAllString(in, "[0:0]"), "$1 _")
	want := ":KUBE-SERVICES - [0:0]\n4: eth0    inet 192.0.2.2/24 valid_lft _ preferred_lft _\n"
	if got != want {
		t.Errorf("normalised %q, want %q", got, want)
	}
	if strings.Contains(got, "86321") {
		t.Error("lifetime left in")
	}
}
