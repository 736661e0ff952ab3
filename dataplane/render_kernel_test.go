package dataplane

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/go-cmp/cmp"
)

// requireKernelIPTables skips unless the test runs as root with iptables.
func requireKernelIPTables(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, iptables)")
	}
	for _, bin := range []string{"iptables", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
}

// kernelRestore runs `iptables-restore --noflush` with payload inside the netns.
func kernelRestore(t *testing.T, nsPath string, payload []byte) {
	t.Helper()
	err := inNetns(nsPath, func() error {
		cmd := exec.Command("iptables-restore", "--noflush")
		cmd.Stdin = bytes.NewReader(payload)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables-restore: %v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("restore in %s: %v\npayload:\n%s", nsPath, err, numbered(payload))
	}
}

// kernelSave returns the parsed `iptables-save` of the netns.
func kernelSave(t *testing.T, nsPath string) *Ruleset {
	t.Helper()
	var out []byte
	err := inNetns(nsPath, func() error {
		var err error
		out, err = exec.Command("iptables-save").Output()
		return err
	})
	if err != nil {
		t.Fatalf("iptables-save in %s: %v", nsPath, err)
	}
	rs, err := ParseSave(out)
	if err != nil {
		t.Fatalf("parse iptables-save output: %v\n%s", err, out)
	}
	return rs
}

// kernelEnsureJumps creates the kube-proxy chains the jumps point to and the
// jump rules, with go-iptables, as kube-proxy does before a full sync.
func kernelEnsureJumps(t *testing.T, nsPath string) {
	t.Helper()
	err := inNetns(nsPath, func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		for _, tb := range CanaryTables {
			if ok, err := ipt.ChainExists(string(tb), CanaryChain); err != nil {
				return err
			} else if !ok {
				if err := ipt.NewChain(string(tb), CanaryChain); err != nil {
					return err
				}
			}
		}
		for _, j := range JumpRules {
			ok, err := ipt.ChainExists(string(j.Table), j.DstChain)
			if err != nil {
				return err
			}
			if !ok {
				if err := ipt.NewChain(string(j.Table), j.DstChain); err != nil {
					return err
				}
			}
			if ok, err := ipt.Exists(string(j.Table), j.SrcChain, j.Args()...); err != nil {
				return err
			} else if !ok {
				if err := ipt.Insert(string(j.Table), j.SrcChain, 1, j.Args()...); err != nil {
					return fmt.Errorf("insert %v: %w", j, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ensure jump rules: %v", err)
	}
}

func numbered(b []byte) string {
	var s strings.Builder
	for i, l := range strings.Split(string(b), "\n") {
		fmt.Fprintf(&s, "%4d %s\n", i+1, l)
	}
	return s.String()
}

// chainRules maps "table/chain" to the rules of every chain of the given
// tables as iptables-save prints them.
func chainRules(rs *Ruleset, onlyKube bool, saveText bool) map[string][]string {
	out := map[string][]string{}
	for _, tb := range rs.Tables {
		if tb.Name != TableFilter && tb.Name != TableNAT {
			continue
		}
		for _, c := range tb.Chains {
			if onlyKube && !strings.HasPrefix(c.Name, "KUBE-") {
				continue
			}
			lines := []string{}
			for _, r := range c.Rules {
				if saveText {
					lines = append(lines, r.SaveText())
				} else {
					lines = append(lines, r.Text)
				}
			}
			out[string(tb.Name)+"/"+c.Name] = lines
		}
	}
	return out
}

// expectedKernelState is what the kernel should hold after applying res on
// top of an empty table: every chain kube-proxy declared, with its rules
// normalised as iptables-save prints them, plus the canary chains.
func expectedKernelState(t *testing.T, payload []byte) map[string][]string {
	t.Helper()
	rs, err := ParseSave(payload)
	if err != nil {
		t.Fatalf("parse payload: %v", err)
	}
	want := chainRules(rs, true, true)
	for _, tb := range []Table{TableFilter, TableNAT} {
		want[string(tb)+"/"+CanaryChain] = []string{}
	}
	return want
}

func TestKernelAcceptsRenderedPayloads(t *testing.T) {
	requireKernelIPTables(t)
	seed := seedTestsvcInput()
	cases := map[string]Input{
		"kube-proxy-overall": kubeProxyOverallInput(),
		"trace-cluster":      traceCluster(),
		"seed-testsvc":       seed,
		"mixed":              mixedInput(),
		"large-cluster":      largeClusterInput(),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			ns := pxNewNetns(t)
			kernelEnsureJumps(t, ns)
			res := Render(in)
			kernelRestore(t, ns, res.Payload)
			got := chainRules(kernelSave(t, ns), true, false)
			if diff := cmp.Diff(expectedKernelState(t, res.Payload), got); diff != "" {
				t.Errorf("kernel state differs from payload normalised by SaveText (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKernelJumpRules(t *testing.T) {
	requireKernelIPTables(t)
	ns := pxNewNetns(t)
	kernelEnsureJumps(t, ns)
	kernelEnsureJumps(t, ns) // idempotent
	rs := kernelSave(t, ns)
	for _, tc := range []struct {
		table Table
		chain string
	}{{TableNAT, "PREROUTING"}, {TableNAT, "OUTPUT"}, {TableNAT, "POSTROUTING"}, {TableFilter, "INPUT"}, {TableFilter, "FORWARD"}, {TableFilter, "OUTPUT"}} {
		var want []string
		for _, j := range JumpRulesFor(tc.table, tc.chain) {
			want = append(want, j.SaveText())
		}
		var got []string
		for _, r := range rs.Chain(tc.table, tc.chain).Rules {
			got = append(got, r.Text)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tc.table, tc.chain, diff)
		}
	}
}

// TestKernelPartialSyncAndStaleChains applies a full sync, then a partial
// sync that changes one Service and deletes another, and checks the kernel
// ends up exactly where a full sync of the new state would put it.
func TestKernelPartialSyncAndStaleChains(t *testing.T) {
	requireKernelIPTables(t)
	ns := pxNewNetns(t)
	kernelEnsureJumps(t, ns)

	before := mixedInput()
	first := Render(before)
	kernelRestore(t, ns, first.Payload)

	after, changed := mixedInputAfterChange()
	second := Render(Input{
		Node: after.Node, Config: after.Config, Services: after.Services, EndpointSlices: after.EndpointSlices,
		Changed: changed, Existing: first.Chains,
	})
	kernelRestore(t, ns, second.Payload)

	full := Render(after)
	got := chainRules(kernelSave(t, ns), true, false)
	if diff := cmp.Diff(expectedKernelState(t, full.Payload), got); diff != "" {
		t.Errorf("kernel after partial sync differs from a full sync of the new state (-want +got):\n%s\npartial payload:\n%s", diff, second.Payload)
	}
	var kernelChains []string
	for k := range got {
		if tb, c, _ := strings.Cut(k, "/"); tb == string(TableNAT) && c != CanaryChain {
			kernelChains = append(kernelChains, c)
		}
	}
	var resultChains []string
	for c := range second.Chains[TableNAT] {
		resultChains = append(resultChains, c)
	}
	slices.Sort(kernelChains)
	slices.Sort(resultChains)
	if diff := cmp.Diff(resultChains, kernelChains); diff != "" {
		t.Errorf("Result.Chains[nat] differs from the kernel's chains (-result +kernel):\n%s", diff)
	}
}

// TestKernelTraceOfSavedRules traces packets through what the kernel holds
// (iptables-save, with the real built-in chains and jump rules) and checks
// the tracer reaches the same verdicts as over the rendered payload with
// synthetic jump rules.
func TestKernelTraceOfSavedRules(t *testing.T) {
	requireKernelIPTables(t)
	ns := pxNewNetns(t)
	kernelEnsureJumps(t, ns)
	res := Render(traceCluster())
	kernelRestore(t, ns, res.Payload)
	saved := kernelSave(t, ns)
	fromPayload, err := ParseSave(res.Payload)
	if err != nil {
		t.Fatal(err)
	}
	local := []netip.Addr{mustAddr("192.168.0.2")}
	for _, pkt := range []Packet{
		{Src: mustAddr("10.244.1.99"), Dst: mustAddr("10.96.0.20"), DstPort: 80, Hook: HookPrerouting},
		{Src: mustAddr("192.168.0.2"), Dst: mustAddr("192.168.0.2"), DstPort: 30080, Hook: HookOutput},
		{Src: mustAddr("198.51.100.7"), Dst: mustAddr("192.168.0.2"), DstPort: 30081, Hook: HookPrerouting},
		{Src: mustAddr("198.51.100.7"), Dst: mustAddr("192.168.0.2"), DstPort: 30082, Hook: HookPrerouting},
		{Src: mustAddr("192.0.2.99"), Dst: mustAddr("203.0.113.10"), DstPort: 443, Hook: HookPrerouting},
		{Src: mustAddr("10.244.1.99"), Dst: mustAddr("10.96.0.24"), DstPort: 80, Hook: HookPrerouting},
		{Src: mustAddr("10.244.1.99"), Dst: mustAddr("10.96.0.26"), DstPort: 80, Hook: HookPrerouting},
	} {
		pkt.Proto, pkt.LocalAddrs = "tcp", local
		want := Trace(fromPayload, pkt, TraceOptions{})
		got := Trace(saved, pkt, TraceOptions{})
		if got.Summary() != want.Summary() {
			t.Errorf("%v → %v:%d: kernel rules give %q, payload gives %q", pkt.Src, pkt.Dst, pkt.DstPort, got.Summary(), want.Summary())
		}
		for _, p := range got.Paths {
			for _, s := range p.Steps {
				if s.Synthetic {
					t.Errorf("trace over the kernel's rules used a synthetic jump: %+v", s)
				}
			}
		}
		if len(got.Unsupported) > 0 {
			t.Errorf("unsupported in kernel rules: %v", got.Unsupported)
		}
	}
}
