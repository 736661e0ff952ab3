package dataplane

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files with the current output")

// assertGolden compares got with testdata/name, rewriting the file with -update.
func assertGolden(t *testing.T, name string, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("write golden %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s (run with -update to create): %v", path, err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func makeService(ns, name string, mut func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

func makeSlice(ns, svcName, sliceName string, mut func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: sliceName,
			Labels: map[string]string{discoveryv1.LabelServiceName: svcName},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	if mut != nil {
		mut(es)
	}
	return es
}

func tcpPort(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptrTo(name), Port: ptrTo(port), Protocol: ptrTo(corev1.ProtocolTCP)}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

// sortedPayload rewrites a restore payload into a canonical order that does
// not depend on the order Services are processed in, the way kube-proxy's own
// tests (sortIPTablesRules) do: tables by name; chains KUBE-NODEPORTS,
// KUBE-SERVICES, then alphabetically; rules grouped by chain; KUBE-SERVICES and
// KUBE-NODEPORTS rules stably sorted by the service name in their comment
// (the nat KUBE-SERVICES "must be the last rule" rule stays last).
func sortedPayload(t *testing.T, payload []byte) string {
	t.Helper()
	rs, err := ParseSave(payload)
	if err != nil {
		t.Fatalf("parse payload: %v", err)
	}
	tables := slices.Clone(rs.Tables)
	slices.SortFunc(tables, func(a, b *TableRules) int { return strings.Compare(string(a.Name), string(b.Name)) })
	rank := func(n string) int {
		switch {
		case n == ChainNodePorts:
			return 0
		case n == ChainServices:
			return 1
		case strings.HasPrefix(n, "KUBE-"):
			return 2
		}
		return 3
	}
	svcName := func(r *Rule) string {
		c := r.Comment
		if i := strings.IndexAny(c, " :"); i >= 0 {
			c = c[:i]
		}
		return c
	}
	var b strings.Builder
	for _, tb := range tables {
		b.WriteString("*" + string(tb.Name) + "\n")
		chains := slices.Clone(tb.Chains)
		slices.SortStableFunc(chains, func(a, b *Chain) int {
			if ra, rb := rank(a.Name), rank(b.Name); ra != rb {
				return ra - rb
			}
			return strings.Compare(a.Name, b.Name)
		})
		for _, c := range chains {
			if c.Declared {
				b.WriteString(":" + c.Name + " " + c.Policy + " [0:0]\n")
			}
		}
		for _, c := range chains {
			rules := slices.Clone(c.Rules)
			if c.Name == ChainServices || c.Name == ChainNodePorts {
				slices.SortStableFunc(rules, func(x, y *Rule) int {
					lx := strings.Contains(x.Comment, "must be the last rule")
					ly := strings.Contains(y.Comment, "must be the last rule")
					switch {
					case lx && !ly:
						return 1
					case ly && !lx:
						return -1
					}
					if x.Comment == "" || y.Comment == "" {
						return 0
					}
					return strings.Compare(svcName(x), svcName(y))
				})
			}
			for _, r := range rules {
				b.WriteString(r.Text + "\n")
			}
		}
		for _, d := range tb.Deleted {
			b.WriteString("-X " + d + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
