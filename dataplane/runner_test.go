package dataplane

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRestoreErrorLine(t *testing.T) {
	// Messages as iptables-restore v1.8.9 (nf_tables) prints them for these
	// payloads (captured on Debian 12).
	for _, c := range []struct {
		name, payload, stderr string
		want                  int
	}{
		{
			name:    "jump to missing chain, reported at COMMIT",
			payload: "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j KUBE-NOPE\nCOMMIT\n",
			stderr:  "iptables-restore v1.8.9 (nf_tables): Chain 'KUBE-NOPE' does not exist\nError occurred at line: 4\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.",
			want:    3,
		},
		{
			name:    "jump to missing chain in the second table",
			payload: "*filter\n:KUBE-D - [0:0]\n-A KUBE-D -j ACCEPT\nCOMMIT\n*nat\n:KUBE-E - [0:0]\n-A KUBE-E -m comment --comment x -j KUBE-NOPE\nCOMMIT\n",
			stderr:  "iptables-restore v1.8.9 (nf_tables): Chain 'KUBE-NOPE' does not exist\nError occurred at line: 8\n",
			want:    7,
		},
		{
			name:    "missing chain that is only a prefix of another jump",
			payload: "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j KUBE-NOPE-2\n-A KUBE-A -j KUBE-NOPE\nCOMMIT\n",
			stderr:  "iptables-restore v1.8.9 (nf_tables): Chain 'KUBE-NOPE' does not exist\nError occurred at line: 5\n",
			want:    4,
		},
		{
			name:    "delete of a referenced chain",
			payload: "*nat\n:KUBE-A - [0:0]\n-X KUBE-A\nCOMMIT\n",
			stderr:  "iptables-restore v1.8.9 (nf_tables): \nline 3: CHAIN_DEL failed (Device or resource busy): chain KUBE-A",
			want:    3,
		},
		{
			name:    "missing COMMIT",
			payload: "*nat\n:KUBE-C - [0:0]\n-A KUBE-C -j RETURN\n",
			stderr:  "iptables-restore: COMMIT expected at line 4",
			want:    4,
		},
		{
			name:    "legacy style",
			payload: "*nat\n-X KUBE-NOPE\nCOMMIT\n",
			stderr:  "iptables-restore: line 2 failed: No chain/target/match by that name.",
			want:    2,
		},
		{
			name:    "no line at all",
			payload: "*nat\nCOMMIT\n",
			stderr:  "iptables-restore: unable to initialize table 'nat'",
			want:    0,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := restoreErrorLine(c.stderr, []byte(c.payload)); got != c.want {
				t.Errorf("restoreErrorLine = %d, want %d", got, c.want)
			}
		})
	}
}

func TestExtractLines(t *testing.T) {
	payload := []byte("*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j RETURN\n-X C\nCOMMIT\n")
	want := "   2: :A - [0:0]\n   3: :B - [0:0]\n=> 4: -A A -j B\n   5: -A B -j RETURN\n   6: -X C\n"
	if diff := cmp.Diff(want, extractLines(payload, 4, 2)); diff != "" {
		t.Errorf("extractLines (-want +got):\n%s", diff)
	}
	want = "=> 1: *nat\n   2: :A - [0:0]\n"
	if diff := cmp.Diff(want, extractLines(payload, 1, 1)); diff != "" {
		t.Errorf("extractLines at the start (-want +got):\n%s", diff)
	}
	if got := extractLines(payload, 99, 3); got != "" {
		t.Errorf("extractLines past the end = %q, want empty", got)
	}
}
