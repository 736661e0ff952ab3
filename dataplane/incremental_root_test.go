package dataplane

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRootIncrementalSyncsMatchFullSync is TestIncrementalSyncsMatchFullSync
// against the kernel, per backend: a Proxier applies 50 random changes to a
// node namespace (incremental transactions with -I/-D, batched full syncs
// with nft), then a fresh Proxier programs the final objects into a second
// namespace with one full sync; both namespaces' iptables-save must match,
// order aside only within KUBE-SERVICES and KUBE-NODEPORTS. Root only.
func TestRootIncrementalSyncsMatchFullSync(t *testing.T) {
	pxRequireRoot(t)
	for _, backend := range pxBackends {
		t.Run(string(backend), func(t *testing.T) {
			pxRequireBackend(t, backend)
			tweak := func(c *ProxierConfig) { c.Backend, c.Node, c.Config = backend, randLabNode, randLabConfig }
			ctx := pxCtx(t)
			lab := newRandLab(42)
			p, runner, logs := pxStartReal(t, pxNewNetns(t), tweak)
			for range 300 { // more than nftBatchChains per-service chains
				lab.addService(p)
			}
			p.OnSynced()
			if err := p.WaitForSync(ctx); err != nil {
				t.Fatalf("first sync: %v\n%s", err, logs.String())
			}
			var steps []string
			for range 50 {
				steps = append(steps, lab.step(p))
				if err := p.WaitForSync(ctx); err != nil {
					t.Fatalf("after %v: %v\n%s", steps, err, logs.String())
				}
			}
			st := p.Status()
			if st.FullSyncs != 1 || st.Failures != 0 || st.PartialSyncs == 0 {
				t.Errorf("status = %+v, want one full sync, then only incremental ones\n%s", st, logs.String())
			}

			fresh, freshRunner, freshLogs := pxStartReal(t, pxNewNetns(t), tweak)
			svcs, sls := lab.objects()
			for _, s := range svcs {
				fresh.OnServiceAdd(s)
			}
			for _, s := range sls {
				fresh.OnEndpointSliceAdd(s)
			}
			fresh.OnSynced()
			if err := fresh.WaitForSync(ctx); err != nil {
				t.Fatalf("fresh full sync: %v\n%s", err, freshLogs.String())
			}
			want, got := normalizedTables(t, freshRunner), normalizedTables(t, runner)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("after %d changes the kernel differs from a fresh full sync (-full +incremental):\n%s\nchanges: %s", len(steps), diff, fmt.Sprint(steps))
			}
		})
	}
}
