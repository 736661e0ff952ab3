package dataplane

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// restoreCases are restore transactions with what the kernel does with them.
// TestFakeRunnerRestore checks the FakeRunner against them; the root test
// TestRootFakeRunnerMatchesKernel checks the real kernel against the same
// table, which is what makes the fake worth trusting.
type restoreCase struct {
	name     string
	setup    string // applied first; must succeed
	payload  string
	wantLine int // failing line; 0 = success
	// legacyLine, when set, is the failing line iptables-legacy-restore
	// reports instead: it names the COMMIT line for what the kernel rejects
	// when the table is replaced (iptables-nft names the rule).
	legacyLine int
	// wantNAT and wantFilter are the user chains' rules afterwards, as
	// userRules prints them.
	wantNAT, wantFilter string
}

var restoreCases = []restoreCase{
	{
		name:    "declare and fill",
		payload: "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -m comment --comment \"a b\" -j RETURN\nCOMMIT\n",
		wantNAT: ":KUBE-A\n-A KUBE-A -m comment --comment \"a b\" -j RETURN\n",
	},
	{
		name:     "jump to a chain that does not exist",
		payload:  "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j KUBE-NOPE\nCOMMIT\n",
		wantLine: 3,
	},
	{
		name:     "append to a chain that does not exist",
		payload:  "*nat\n-A KUBE-NOTTHERE -j RETURN\nCOMMIT\n",
		wantLine: 2,
	},
	{
		name:     "delete a chain still referenced",
		setup:    "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-A KUBE-B -j KUBE-A\nCOMMIT\n",
		payload:  "*nat\n:KUBE-A - [0:0]\n-X KUBE-A\nCOMMIT\n",
		wantLine: 3,
		wantNAT:  ":KUBE-A\n:KUBE-B\n-A KUBE-B -j KUBE-A\n",
	},
	{
		name:    "delete a chain after flushing its referrer",
		setup:   "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-A KUBE-B -j KUBE-A\nCOMMIT\n",
		payload: "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-X KUBE-A\nCOMMIT\n",
		wantNAT: ":KUBE-B\n",
	},
	{
		name:     "delete a chain that does not exist",
		payload:  "*nat\n-X KUBE-NOPE\nCOMMIT\n",
		wantLine: 2,
	},
	{
		name:     "delete a chain that is not empty",
		setup:    "*nat\n:KUBE-B - [0:0]\n-A KUBE-B -j RETURN\nCOMMIT\n",
		payload:  "*nat\n-X KUBE-B\nCOMMIT\n",
		wantLine: 2,
		wantNAT:  ":KUBE-B\n-A KUBE-B -j RETURN\n",
	},
	{
		name:    "declare then delete a chain that did not exist",
		payload: "*nat\n:KUBE-GONE - [0:0]\n-X KUBE-GONE\nCOMMIT\n",
	},
	{
		name:     "missing COMMIT",
		payload:  "*nat\n:KUBE-C - [0:0]\n-A KUBE-C -j RETURN\n",
		wantLine: 4,
	},
	{
		name:     "unknown table",
		payload:  "*foo\n:KUBE-C - [0:0]\nCOMMIT\n",
		wantLine: 1,
	},
	{
		name:       "REJECT in nat",
		payload:    "*nat\n:KUBE-C - [0:0]\n-A KUBE-C -j REJECT\nCOMMIT\n",
		wantLine:   3,
		legacyLine: 4,
	},
	{
		name:       "DNAT in filter",
		payload:    "*filter\n:KUBE-D - [0:0]\n-A KUBE-D -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n",
		wantLine:   3,
		legacyLine: 4,
	},
	{
		name:       "filter commits although nat fails",
		payload:    "*filter\n:KUBE-D - [0:0]\n-A KUBE-D -j ACCEPT\nCOMMIT\n*nat\n:KUBE-E - [0:0]\n-A KUBE-E -j KUBE-NOPE\nCOMMIT\n",
		wantLine:   7,
		wantFilter: ":KUBE-D\n-A KUBE-D -j ACCEPT\n",
	},
	{
		name:    "noflush keeps chains the payload does not declare",
		setup:   "*nat\n:KUBE-KEEP - [0:0]\n-A KUBE-KEEP -s 10.0.0.0/8 -j RETURN\nCOMMIT\n",
		payload: "*nat\n:KUBE-OTHER - [0:0]\n-A KUBE-OTHER -j KUBE-KEEP\nCOMMIT\n",
		wantNAT: ":KUBE-KEEP\n:KUBE-OTHER\n-A KUBE-KEEP -s 10.0.0.0/8 -j RETURN\n-A KUBE-OTHER -j KUBE-KEEP\n",
	},
	{
		name:    "insert at the top",
		setup:   "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -s 10.0.0.0/8 -j RETURN\nCOMMIT\n",
		payload: "*nat\n:KUBE-B - [0:0]\n-I KUBE-A 1 -d 10.96.0.1 -j KUBE-B\n-I KUBE-A -d 10.96.0.2 -j KUBE-B\nCOMMIT\n",
		wantNAT: ":KUBE-A\n:KUBE-B\n-A KUBE-A -d 10.96.0.2/32 -j KUBE-B\n-A KUBE-A -d 10.96.0.1/32 -j KUBE-B\n-A KUBE-A -s 10.0.0.0/8 -j RETURN\n",
	},
	{
		name:     "insert past the end",
		setup:    "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n",
		payload:  "*nat\n-I KUBE-A 3 -j RETURN\nCOMMIT\n",
		wantLine: 2,
		wantNAT:  ":KUBE-A\n-A KUBE-A -j RETURN\n",
	},
	{
		name:     "insert into a chain that does not exist",
		payload:  "*nat\n-I KUBE-NOPE 1 -j RETURN\nCOMMIT\n",
		wantLine: 2,
	},
	{
		// kube-proxy's argument order, as Render writes it, finds the rule
		// the kernel stored in its own order.
		name: "delete a rule by its spec",
		setup: "*nat\n:KUBE-A - [0:0]\n:KUBE-SVC-X - [0:0]\n" +
			"-A KUBE-A -m comment --comment \"ns/a:p cluster IP\" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j KUBE-SVC-X\n" +
			"-A KUBE-A -m comment --comment \"ns/b:p cluster IP\" -m udp -p udp -d 10.96.0.2 --dport 53 -j KUBE-SVC-X\nCOMMIT\n",
		payload: "*nat\n-D KUBE-A -m comment --comment \"ns/a:p cluster IP\" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j KUBE-SVC-X\nCOMMIT\n",
		wantNAT: ":KUBE-A\n:KUBE-SVC-X\n-A KUBE-A -d 10.96.0.2/32 -p udp -m comment --comment \"ns/b:p cluster IP\" -m udp --dport 53 -j KUBE-SVC-X\n",
	},
	{
		name:    "delete one of two identical rules",
		setup:   "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -d 10.96.0.1 -j RETURN\n-A KUBE-A -d 10.96.0.1 -j RETURN\nCOMMIT\n",
		payload: "*nat\n-D KUBE-A -d 10.96.0.1 -j RETURN\nCOMMIT\n",
		wantNAT: ":KUBE-A\n-A KUBE-A -d 10.96.0.1/32 -j RETURN\n",
	},
	{
		name:     "delete a rule that does not exist",
		setup:    "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -d 10.96.0.1 -j RETURN\nCOMMIT\n",
		payload:  "*nat\n-D KUBE-A -d 10.96.0.2 -j RETURN\nCOMMIT\n",
		wantLine: 2,
		wantNAT:  ":KUBE-A\n-A KUBE-A -d 10.96.0.1/32 -j RETURN\n",
	},
	{
		name:     "delete from a chain that does not exist",
		payload:  "*nat\n-D KUBE-NOPE -j RETURN\nCOMMIT\n",
		wantLine: 2,
	},
	{
		name:     "a failed delete rolls the transaction back",
		setup:    "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n",
		payload:  "*nat\n:KUBE-B - [0:0]\n-I KUBE-A 1 -j KUBE-B\n-D KUBE-A -j RETURN\n-D KUBE-A -j RETURN\nCOMMIT\n",
		wantLine: 5,
		wantNAT:  ":KUBE-A\n-A KUBE-A -j RETURN\n",
	},
	{
		name:    "zero an existing chain",
		setup:   "*nat\n:KUBE-Z - [0:0]\nCOMMIT\n",
		payload: "*nat\n-Z KUBE-Z\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n",
		wantNAT: ":KUBE-A\n:KUBE-Z\n-A KUBE-A -j RETURN\n",
	},
	{
		name:     "zero a chain that does not exist",
		payload:  "*nat\n:KUBE-A - [0:0]\n-Z KUBE-NOPE\nCOMMIT\n",
		wantLine: 3,
	},
	{
		name:    "redeclaring flushes",
		setup:   "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\n-A KUBE-A -j ACCEPT\nCOMMIT\n",
		payload: "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -p udp -m udp --dport 53 -j DNAT --to-destination 10.244.1.4:5353\nCOMMIT\n",
		wantNAT: ":KUBE-A\n-A KUBE-A -p udp -m udp --dport 53 -j DNAT --to-destination 10.244.1.4:5353\n",
	},
}

// userRules prints the user-defined chains of table in save (":NAME" lines
// sorted, then their rules as iptables-save prints them).
func userRules(t *testing.T, save []byte, table Table) string {
	t.Helper()
	rs, err := ParseSave(save)
	if err != nil {
		t.Fatalf("ParseSave: %v", err)
	}
	var decl, rules strings.Builder
	tbl := rs.Table(table)
	names := tbl.ChainNames()
	var user []string
	for _, n := range names {
		if !IsBuiltinChain(table, n) && n != CanaryChain {
			user = append(user, n)
		}
	}
	slices.Sort(user)
	for _, n := range user {
		decl.WriteString(":" + n + "\n")
		for _, r := range tbl.Chain(n).Rules {
			rules.WriteString(r.SaveText() + "\n")
		}
	}
	return decl.String() + rules.String()
}

// checkRestoreCase runs one restoreCase against r.
func checkRestoreCase(t *testing.T, r Runner, c restoreCase) {
	if c.legacyLine != 0 && r.Backend() == BackendLegacy {
		c.wantLine = c.legacyLine
	}
	t.Helper()
	ctx := context.Background()
	if c.setup != "" {
		if err := r.Restore(ctx, []byte(c.setup)); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	err := r.Restore(ctx, []byte(c.payload))
	gotLine := 0
	if err != nil {
		var re *RestoreError
		if !errors.As(err, &re) {
			t.Fatalf("Restore error %v is not a *RestoreError", err)
		}
		gotLine = re.Line
		if gotLine == 0 {
			t.Errorf("Restore error names no line: %v", err)
		}
	}
	if gotLine != c.wantLine {
		t.Errorf("Restore failed at line %d (%v), want %d", gotLine, err, c.wantLine)
	}
	for _, tc := range []struct {
		table Table
		want  string
	}{{TableNAT, c.wantNAT}, {TableFilter, c.wantFilter}} {
		save, err := r.SaveCounters(ctx, tc.table)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, userRules(t, save, tc.table)); diff != "" {
			t.Errorf("%s afterwards (-want +got):\n%s", tc.table, diff)
		}
	}
}

func TestFakeRunnerRestore(t *testing.T) {
	for _, c := range restoreCases {
		t.Run(c.name, func(t *testing.T) {
			checkRestoreCase(t, NewFakeRunner(), c)
		})
	}
}

func TestFakeRunnerCountersSurviveUndeclaredChains(t *testing.T) {
	f := NewFakeRunner()
	ctx := context.Background()
	if err := f.Restore(ctx, []byte("*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-A KUBE-A -j RETURN\n-A KUBE-B -j RETURN\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"KUBE-A", "KUBE-B"} {
		if err := f.AddCounts(TableNAT, c, 1, 3, 180); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Restore(ctx, []byte("*nat\n:KUBE-B - [0:0]\n-A KUBE-B -j RETURN\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	save, err := f.SaveCounters(ctx, TableNAT)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Generated by svclab FakeRunner\n*nat\n" +
		":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
		":KUBE-A - [0:0]\n:KUBE-B - [0:0]\n" +
		"[3:180] -A KUBE-A -j RETURN\n[0:0] -A KUBE-B -j RETURN\nCOMMIT\n# Completed\n"
	if diff := cmp.Diff(want, string(save)); diff != "" {
		t.Errorf("save (-want +got):\n%s", diff)
	}
}

func TestFakeRunnerEnsure(t *testing.T) {
	f := NewFakeRunner()
	ctx := context.Background()
	if err := f.EnsureRule(ctx, TableNAT, "PREROUTING", "-j", "KUBE-SERVICES"); err == nil {
		t.Error("EnsureRule jumping to a missing chain succeeded")
	}
	for i := 0; i < 2; i++ {
		if err := f.EnsureChain(ctx, TableNAT, "KUBE-SERVICES"); err != nil {
			t.Fatal(err)
		}
		for _, j := range JumpRules {
			if j.Table != TableNAT {
				continue
			}
			if err := f.EnsureChain(ctx, j.Table, j.DstChain); err != nil {
				t.Fatal(err)
			}
			if err := f.EnsureRule(ctx, j.Table, j.SrcChain, j.Args()...); err != nil {
				t.Fatal(err)
			}
		}
	}
	save, _ := f.SaveCounters(ctx, TableNAT)
	rs, err := ParseSave(save)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range []string{"PREROUTING", "OUTPUT", "POSTROUTING"} {
		for _, r := range rs.Chain(TableNAT, c).Rules {
			got = append(got, r.Text)
		}
	}
	want := []string{
		`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ensured twice (-want +got):\n%s", diff)
	}
	if err := f.Restore(ctx, []byte("*nat\n:KUBE-SERVICES - [0:0]\n-X KUBE-SERVICES\nCOMMIT\n")); err == nil {
		t.Error("deleting KUBE-SERVICES while PREROUTING jumps to it succeeded")
	}
}
