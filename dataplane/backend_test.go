package dataplane

import (
	"context"
	"errors"
	"os/exec"
	"testing"
)

func TestParseBackend(t *testing.T) {
	for _, c := range []struct {
		in   string
		want IPTablesBackend
		err  bool
	}{
		{"", BackendAuto, false},
		{"auto", BackendAuto, false},
		{" NFT ", BackendNFT, false},
		{"legacy", BackendLegacy, false},
		{"nftables", "", true},
	} {
		got, err := ParseBackend(c.in)
		if got != c.want || (err != nil) != c.err || (err != nil && !errors.Is(err, ErrUnknownBackend)) {
			t.Errorf("ParseBackend(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestBackendFromNameAndVersion(t *testing.T) {
	for _, c := range []struct {
		name string
		want IPTablesBackend
	}{
		{"/usr/sbin/xtables-nft-multi", BackendNFT},
		{"/usr/sbin/iptables-nft", BackendNFT},
		{"/usr/sbin/xtables-legacy-multi", BackendLegacy},
		{"/usr/sbin/iptables-legacy", BackendLegacy},
		{"/usr/sbin/iptables", ""},
	} {
		if got := backendFromName(c.name); got != c.want {
			t.Errorf("backendFromName(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		out  string
		want IPTablesBackend
	}{
		{"iptables v1.8.9 (nf_tables)\n", BackendNFT},
		{"iptables v1.8.9 (legacy)\n", BackendLegacy},
		{"iptables v1.6.1\n", BackendLegacy},
		{"something else\n", ""},
	} {
		if got := backendFromVersion([]byte(c.out)); got != c.want {
			t.Errorf("backendFromVersion(%q) = %q, want %q", c.out, got, c.want)
		}
	}
}

// TestDetectBackendAgreesWithIPTables checks DetectBackend against what
// `iptables -V` itself says on this machine.
func TestDetectBackendAgreesWithIPTables(t *testing.T) {
	out, err := exec.Command("iptables", "-V").Output()
	if err != nil {
		t.Skipf("iptables -V: %v", err)
	}
	want := backendFromVersion(out)
	if want == "" {
		t.Skipf("iptables -V says %q", out)
	}
	got, err := DetectBackend(context.Background())
	if err != nil || got != want {
		t.Errorf("DetectBackend = %q, %v; `iptables -V` says %q", got, err, out)
	}
}
