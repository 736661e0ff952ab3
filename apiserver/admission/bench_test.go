package admission

import (
	"context"
	"testing"

	"github.com/svclab/svclab/apiserver/store"
)

// BenchmarkServiceCreateDelete measures one Admit(Create) of a NodePort
// Service (defaults, cluster IP, node port, validation) plus the
// Admit(Delete) that releases them.
func BenchmarkServiceCreateDelete(b *testing.B) {
	a := newAdmission(b, Config{})
	adm := a.Admitters()["services"]
	ctx := context.Background()
	base := svc("web", nodePort)
	for b.Loop() {
		s := base.DeepCopy()
		if _, err := adm.Admit(ctx, store.Create, nil, s); err != nil {
			b.Fatal(err)
		}
		if _, err := adm.Admit(ctx, store.Delete, s, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPodCreate measures one Admit(Create) of a Pod.
func BenchmarkPodCreate(b *testing.B) {
	a := newAdmission(b, Config{})
	adm := a.Admitters()["pods"]
	ctx := context.Background()
	base := pod("web-0")
	for b.Loop() {
		p := base.DeepCopy()
		if _, err := adm.Admit(ctx, store.Create, nil, p); err != nil {
			b.Fatal(err)
		}
	}
}
