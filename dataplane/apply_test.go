package dataplane

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// mixedIncrementalChange returns mixedInput and the same objects after:
// shop/cache deleted, shop/api lost an endpoint, shop/broken got a ready
// endpoint (its REJECTs go, its cluster IP, external IP and node port rules
// come) and shop/new appeared; unchanged objects are shared, as a Proxier
// sees them. It returns the Changed set too.
func mixedIncrementalChange() (before, after Input, changed map[types.NamespacedName]bool) {
	before = mixedInput()
	after = before
	after.Services = slices.DeleteFunc(slices.Clone(before.Services), func(s *corev1.Service) bool { return s.Name == "cache" })
	after.EndpointSlices = nil
	for _, es := range before.EndpointSlices {
		switch es.Name {
		case "cache-aaaaa":
			continue
		case "api-aaaaa":
			es = es.DeepCopy()
			es.Endpoints = es.Endpoints[1:]
		case "broken-aaaaa":
			es = es.DeepCopy()
			es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.71"}, NodeName: ptrTo("node-1")}}
		}
		after.EndpointSlices = append(after.EndpointSlices, es)
	}
	after.Services = append(after.Services, makeService("shop", "new", func(s *corev1.Service) {
		s.Spec.ClusterIP = "10.96.1.9"
		s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
	}))
	after.EndpointSlices = append(after.EndpointSlices, makeSlice("shop", "new", "new-aaaaa", func(es *discoveryv1.EndpointSlice) {
		es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.244.2.90"}, NodeName: ptrTo("node-2")}}
		es.Ports = []discoveryv1.EndpointPort{tcpPort("http", 8080)}
	}))
	changed = map[types.NamespacedName]bool{}
	for _, name := range []string{"cache", "api", "broken", "new"} {
		changed[types.NamespacedName{Namespace: "shop", Name: name}] = true
	}
	return before, after, changed
}

// applyTo restores payloads in order into f, failing the test on an error.
func applyTo(t *testing.T, f *FakeRunner, payloads ...[]byte) {
	t.Helper()
	for i, p := range payloads {
		if err := f.Restore(context.Background(), p); err != nil {
			t.Fatalf("transaction %d: %v\n%s", i, err, p)
		}
	}
}

// withJumps returns a FakeRunner with the canary chains and jump rules a
// Proxier ensures before its first sync.
func withJumps(t *testing.T) *FakeRunner {
	t.Helper()
	f := NewFakeRunner()
	ctx := context.Background()
	for _, tbl := range CanaryTables {
		if err := f.EnsureChain(ctx, tbl, CanaryChain); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range JumpRules {
		if err := f.EnsureChain(ctx, j.Table, j.DstChain); err != nil {
			t.Fatal(err)
		}
		if err := f.EnsureRule(ctx, j.Table, j.SrcChain, j.Args()...); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestPlanIncrementalGolden(t *testing.T) {
	var r renderer
	before, after, changed := mixedIncrementalChange()
	first, firstOut := r.render(before, nil)
	full := after
	after.Changed, after.Existing = changed, first.Chains
	_, out := r.render(after, firstOut)

	plan := planIncremental(firstOut, out, false)
	assertGolden(t, "incremental-mixed.golden", string(plan.payload))
	if diff := cmp.Diff(map[Table]int{TableFilter: 1, TableNAT: 1}, plan.deleted); diff != "" {
		t.Errorf("deleted rules per table (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[Table]int{TableNAT: 4}, plan.inserted); diff != "" {
		t.Errorf("inserted rules per table (-want +got):\n%s", diff)
	}

	// Applied after the first sync, it gives what a full sync of the new
	// objects gives.
	f := withJumps(t)
	applyTo(t, f, first.Payload, plan.payload)
	want := withJumps(t)
	applyTo(t, want, Render(full).Payload)
	if diff := cmp.Diff(normalizedTables(t, want), normalizedTables(t, f)); diff != "" {
		t.Errorf("incremental sync vs full sync (-full +incremental):\n%s", diff)
	}

	// The legacy shape: each table starts with the canary guard, and a
	// missing canary fails the transaction at a guard line.
	guarded := planIncremental(firstOut, out, true)
	lines := strings.Split(string(guarded.payload), "\n")
	for _, n := range guarded.guardLines {
		if got := lines[n-1]; got != "-Z "+CanaryChain {
			t.Errorf("guard line %d is %q", n, got)
		}
	}
	if len(guarded.guardLines) != 2 {
		t.Errorf("guard lines %v, want one per table", guarded.guardLines)
	}
	g := withJumps(t)
	applyTo(t, g, first.Payload)
	applyTo(t, g, guarded.payload)
	if diff := cmp.Diff(normalizedTables(t, want), normalizedTables(t, g)); diff != "" {
		t.Errorf("guarded incremental sync vs full sync (-full +incremental):\n%s", diff)
	}
	flushed := withJumps(t)
	applyTo(t, flushed, first.Payload)
	if err := flushed.Restore(context.Background(), []byte("*filter\n-X "+CanaryChain+"\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	err := flushed.Restore(context.Background(), guarded.payload)
	re, ok := err.(*RestoreError)
	if !ok || !slices.Contains(guarded.guardLines, re.Line) {
		t.Errorf("guarded transaction without the filter canary: %v, want a failure at a guard line %v", err, guarded.guardLines)
	}
}

func TestPlanIncrementalNothingToDo(t *testing.T) {
	var r renderer
	in := mixedInput()
	first, firstOut := r.render(in, nil)
	// An informer relist: the same objects, nothing changed.
	in.Changed, in.Existing = map[types.NamespacedName]bool{}, first.Chains
	_, out := r.render(in, firstOut)
	if plan := planIncremental(firstOut, out, true); plan.payload != nil {
		t.Errorf("transaction for no change:\n%s", plan.payload)
	}
}

func TestPlanFull(t *testing.T) {
	in := benchInput(700) // 2,100 per-service chains: two batches of 1,050
	in.Existing = map[Table]map[string]bool{TableNAT: {"KUBE-SVC-AAAAAAAAAAAAAAAA": true}}
	var r renderer
	res, out := r.render(in, nil)

	legacy := planFull(res, out, BackendLegacy, nftBatchChains)
	if len(legacy) != 1 {
		t.Fatalf("legacy full sync in %d transactions, want 1", len(legacy))
	}
	// Only the order of the nat chain declarations differs from Render's.
	sortLines := func(b []byte) []string { return slices.Sorted(slices.Values(strings.Split(string(b), "\n"))) }
	if diff := cmp.Diff(sortLines(res.Payload), sortLines(legacy[0])); diff != "" {
		t.Errorf("legacy transaction vs Render's payload, lines sorted (-Render +applied):\n%s", diff)
	}
	var decls []string
	for _, l := range strings.Split(string(legacy[0][strings.Index(string(legacy[0]), "*nat"):]), "\n") {
		if name, ok := strings.CutPrefix(l, ":"); ok {
			decls = append(decls, name)
		}
	}
	if !slices.IsSortedFunc(decls, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("nat declarations not in descending order: %q…", decls[:5])
	}

	nft := planFull(res, out, BackendNFT, 1050)
	if len(nft) != 3 {
		t.Fatalf("nft full sync of 2,100 chains in %d transactions, want 3 (2 batches of 1,050 chains, then the top-level chains)", len(nft))
	}
	for i, step := range nft[:len(nft)-1] {
		if strings.Contains(string(step), ChainServices) || strings.Contains(string(step), "*filter") {
			t.Errorf("batch %d touches the top-level chains or filter", i)
		}
	}
	// Applied in order, the batches leave what the single transaction does,
	// rule order included.
	stale := func(f *FakeRunner) {
		applyTo(t, f, []byte("*nat\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\nCOMMIT\n"))
	}
	want, got := withJumps(t), withJumps(t)
	stale(want)
	stale(got)
	applyTo(t, want, res.Payload)
	applyTo(t, got, nft...)
	for _, tbl := range []Table{TableFilter, TableNAT} {
		w, _ := want.SaveCounters(context.Background(), tbl)
		g, _ := got.SaveCounters(context.Background(), tbl)
		if diff := cmp.Diff(string(w), string(g)); diff != "" {
			t.Errorf("%s after the batches vs one transaction (-one +batches):\n%s", tbl, diff)
		}
	}
}
