package dataplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// randLab is a random, changing set of Services and EndpointSlices covering
// what Render distinguishes: ClusterIP/NodePort/LoadBalancer, external IPs,
// LB source ranges (some covering the node), Local traffic policies, session
// affinity, several ports and protocols, no/remote/terminating endpoints,
// endpoints split over slices, and duplicate LB ingress IPs (duplicate rules
// in KUBE-SERVICES).
type randLab struct {
	rng    *rand.Rand
	svcs   map[types.NamespacedName]*corev1.Service
	slices map[types.NamespacedName][]*discoveryv1.EndpointSlice // by Service
	serial int
}

func newRandLab(seed uint64) *randLab {
	return &randLab{
		rng:    rand.New(rand.NewPCG(seed, seed^0x5eed)),
		svcs:   map[types.NamespacedName]*corev1.Service{},
		slices: map[types.NamespacedName][]*discoveryv1.EndpointSlice{},
	}
}

// randLabNode is the node the lab's Proxiers render for: pod network
// 10.244.0.0/16, node IP 10.0.1.1 (covered by some LB source ranges).
var randLabNode = Node{Name: "node-1", IPs: []netip.Addr{netip.MustParseAddr("10.0.1.1")}}

var randLabConfig = Config{ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}

func (l *randLab) chance(p float64) bool { return l.rng.Float64() < p }

func (l *randLab) next() int { l.serial++; return l.serial }

// service returns a random Service ns/name.
func (l *randLab) service(nn types.NamespacedName) *corev1.Service {
	n := l.next()
	s := &corev1.Service{}
	s.Namespace, s.Name = nn.Namespace, nn.Name
	s.ResourceVersion = fmt.Sprint(n)
	s.Spec.Type = corev1.ServiceTypeClusterIP
	s.Spec.ClusterIP = fmt.Sprintf("10.96.%d.%d", n/250, 1+n%250)
	s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
	switch l.rng.IntN(4) {
	case 1:
		s.Spec.Type = corev1.ServiceTypeNodePort
	case 2:
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		ip := fmt.Sprintf("198.51.100.%d", 1+n%250)
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		if l.chance(0.15) {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
		if l.chance(0.4) {
			s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/24"}
			if l.chance(0.5) {
				s.Spec.LoadBalancerSourceRanges = append(s.Spec.LoadBalancerSourceRanges, "10.0.0.0/16")
			}
		}
	}
	if l.chance(0.2) {
		s.Spec.ExternalIPs = []string{fmt.Sprintf("192.0.2.%d", 1+l.rng.IntN(20))}
	}
	if s.Spec.Type != corev1.ServiceTypeClusterIP || len(s.Spec.ExternalIPs) > 0 {
		if l.chance(0.3) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				s.Spec.HealthCheckNodePort = int32(32000 + n%700)
			}
		}
	}
	if l.chance(0.15) {
		s.Spec.InternalTrafficPolicy = ptrTo(corev1.ServiceInternalTrafficPolicyLocal)
	}
	if l.chance(0.2) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo(int32(60 + l.rng.IntN(100)))}}
	}
	ports := 1 + l.rng.IntN(2)
	for i := range ports {
		p := corev1.ServicePort{Name: fmt.Sprintf("p%d", i), Port: int32(80 + i), Protocol: corev1.ProtocolTCP}
		if l.chance(0.3) {
			p.Protocol = corev1.ProtocolUDP
		}
		if s.Spec.Type != corev1.ServiceTypeClusterIP {
			p.NodePort = int32(30000 + (2*n+i)%2700)
		}
		s.Spec.Ports = append(s.Spec.Ports, p)
	}
	return s
}

// endpointSlices returns 0–2 random slices for svc.
func (l *randLab) endpointSlices(svc *corev1.Service) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for i := range l.rng.IntN(3) {
		n := l.next()
		es := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4}
		es.Namespace, es.Name = svc.Namespace, fmt.Sprintf("%s-%d", svc.Name, i)
		es.ResourceVersion = fmt.Sprint(n)
		es.Labels = map[string]string{discoveryv1.LabelServiceName: svc.Name}
		for _, p := range svc.Spec.Ports {
			es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptrTo(p.Name), Port: ptrTo(8000 + p.Port), Protocol: ptrTo(p.Protocol)})
		}
		for range l.rng.IntN(4) {
			ep := discoveryv1.Endpoint{
				Addresses: []string{fmt.Sprintf("10.244.%d.%d", 1+l.rng.IntN(2), 2+l.rng.IntN(40))},
				NodeName:  ptrTo(fmt.Sprintf("node-%d", 1+l.rng.IntN(2))),
			}
			switch l.rng.IntN(6) {
			case 0:
				ep.Conditions = discoveryv1.EndpointConditions{Ready: ptrTo(false), Serving: ptrTo(true), Terminating: ptrTo(true)}
			case 1:
				ep.Conditions = discoveryv1.EndpointConditions{Ready: ptrTo(false)}
			}
			es.Endpoints = append(es.Endpoints, ep)
		}
		out = append(out, es)
	}
	return out
}

// randLabSink receives the lab's changes (a Proxier).
type randLabSink interface {
	OnServiceAdd(*corev1.Service)
	OnServiceUpdate(old, svc *corev1.Service)
	OnServiceDelete(*corev1.Service)
	OnEndpointSliceAdd(*discoveryv1.EndpointSlice)
	OnEndpointSliceUpdate(old, slice *discoveryv1.EndpointSlice)
	OnEndpointSliceDelete(*discoveryv1.EndpointSlice)
}

// addService adds a new random Service with its slices.
func (l *randLab) addService(sink randLabSink) string {
	nn := types.NamespacedName{Namespace: []string{"a", "b"}[l.rng.IntN(2)], Name: fmt.Sprintf("svc-%d", l.next())}
	svc := l.service(nn)
	l.svcs[nn] = svc
	sink.OnServiceAdd(svc)
	l.slices[nn] = l.endpointSlices(svc)
	for _, es := range l.slices[nn] {
		sink.OnEndpointSliceAdd(es)
	}
	return "add " + nn.String()
}

// pick returns a random existing Service.
func (l *randLab) pick() (types.NamespacedName, bool) {
	if len(l.svcs) == 0 {
		return types.NamespacedName{}, false
	}
	keys := make([]types.NamespacedName, 0, len(l.svcs))
	for k := range l.svcs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	return keys[l.rng.IntN(len(keys))], true
}

// step applies one random change to sink and describes it.
func (l *randLab) step(sink randLabSink) string {
	nn, ok := l.pick()
	if !ok {
		return l.addService(sink)
	}
	switch l.rng.IntN(7) {
	case 0, 1:
		return l.addService(sink)
	case 2: // delete a Service and its slices
		sink.OnServiceDelete(l.svcs[nn])
		for _, es := range l.slices[nn] {
			sink.OnEndpointSliceDelete(es)
		}
		delete(l.svcs, nn)
		delete(l.slices, nn)
		return "delete " + nn.String()
	case 3: // the Service changes (and its slices follow its ports)
		old := l.svcs[nn]
		svc := l.service(nn)
		l.svcs[nn] = svc
		sink.OnServiceUpdate(old, svc)
		for _, es := range l.slices[nn] {
			sink.OnEndpointSliceDelete(es)
		}
		l.slices[nn] = l.endpointSlices(svc)
		for _, es := range l.slices[nn] {
			sink.OnEndpointSliceAdd(es)
		}
		return "update " + nn.String()
	case 4: // endpoints change
		sls := l.slices[nn]
		if len(sls) == 0 {
			l.slices[nn] = l.endpointSlices(l.svcs[nn])
			for _, es := range l.slices[nn] {
				sink.OnEndpointSliceAdd(es)
			}
			return "add slices of " + nn.String()
		}
		i := l.rng.IntN(len(sls))
		fresh := l.endpointSlices(l.svcs[nn])
		if len(fresh) == 0 {
			sink.OnEndpointSliceDelete(sls[i])
			l.slices[nn] = slices.Delete(slices.Clone(sls), i, i+1)
			return "delete a slice of " + nn.String()
		}
		upd := fresh[0]
		upd.Name = sls[i].Name
		sink.OnEndpointSliceUpdate(sls[i], upd)
		l.slices[nn] = slices.Clone(sls)
		l.slices[nn][i] = upd
		return "update a slice of " + nn.String()
	case 5: // the same Service again, as a new object (an informer relist)
		old := l.svcs[nn]
		svc := old.DeepCopy()
		svc.ResourceVersion = fmt.Sprint(l.next())
		l.svcs[nn] = svc
		sink.OnServiceUpdate(old, svc)
		return "touch " + nn.String()
	default: // all slices of a Service go
		for _, es := range l.slices[nn] {
			sink.OnEndpointSliceDelete(es)
		}
		l.slices[nn] = nil
		return "drop endpoints of " + nn.String()
	}
}

// objects returns the lab's current Services and EndpointSlices.
func (l *randLab) objects() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	var svcs []*corev1.Service
	var sls []*discoveryv1.EndpointSlice
	for nn, s := range l.svcs {
		svcs = append(svcs, s)
		sls = append(sls, l.slices[nn]...)
	}
	return svcs, sls
}

// normalizedTables returns r's filter and nat tables as iptables-save prints
// them, without counters, chains sorted by name, with the rules of
// KUBE-SERVICES and KUBE-NODEPORTS (both tables) sorted: their order is a Go
// map's in kube-proxy. It fails the test when nat KUBE-SERVICES' nodeports
// jump is not its last rule.
func normalizedTables(t testing.TB, r Runner) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []Table{TableFilter, TableNAT} {
		out, err := r.SaveCounters(context.Background(), table)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := ParseSave(out)
		if err != nil {
			t.Fatalf("parse %s: %v", table, err)
		}
		tbl := rs.Table(table)
		names := slices.Sorted(slices.Values(tbl.ChainNames()))
		fmt.Fprintf(&b, "*%s\n", table)
		for _, n := range names {
			fmt.Fprintf(&b, ":%s\n", n)
		}
		for _, n := range names {
			var rules []string
			for _, rule := range tbl.Chain(n).Rules {
				rules = append(rules, rule.Text)
			}
			if n == ChainServices || n == ChainNodePorts {
				if table == TableNAT && n == ChainServices {
					if len(rules) == 0 || !strings.Contains(rules[len(rules)-1], "-j "+ChainNodePorts) {
						t.Errorf("nat %s does not end with the jump to %s: %q", n, ChainNodePorts, rules)
					}
				}
				slices.Sort(rules)
			}
			for _, rule := range rules {
				b.WriteString(rule + "\n")
			}
		}
	}
	return b.String()
}

// freshFullSync programs a new FakeRunner with a Proxier's first (full) sync
// of svcs and sls and returns it.
func freshFullSync(t *testing.T, svcs []*corev1.Service, sls []*discoveryv1.EndpointSlice) *FakeRunner {
	t.Helper()
	h := pxStart(t, func(c *ProxierConfig) { c.Node, c.Config = randLabNode, randLabConfig })
	h.load(svcs, sls)
	h.waitSync(t)
	return h.fake
}

// TestIncrementalSyncsMatchFullSync replays random changes through a
// Proxier on a FakeRunner, for both backends' transaction shapes, and checks
// after every sync that the tables are exactly what a fresh full sync of the
// same objects produces (order aside where kube-proxy's order is a map's).
func TestIncrementalSyncsMatchFullSync(t *testing.T) {
	for _, c := range []struct {
		backend IPTablesBackend
		initial int // Services before the first sync
	}{
		{BackendNFT, 5},
		{BackendNFT, 300}, // with batches of 200 chains: batched full syncs
		{BackendLegacy, 5},
	} {
		t.Run(fmt.Sprintf("%s/%d", c.backend, c.initial), func(t *testing.T) {
			lab := newRandLab(uint64(c.initial) + 1)
			h := pxStartWith(t, func(pc *ProxierConfig) {
				pc.Node, pc.Config = randLabNode, randLabConfig
				pc.Runner.(*FakeRunner).SetBackend(c.backend)
			}, func(p *Proxier) { p.nftBatch = 200 })
			if got := h.p.Backend(); got != c.backend {
				t.Fatalf("Proxier backend %s, want %s", got, c.backend)
			}
			for range c.initial {
				lab.addService(h.p)
			}
			h.p.OnSynced()
			h.waitSync(t)
			if c.initial == 300 {
				if total, _ := h.fake.Restores(); total < 4 {
					t.Errorf("first sync of %d Services took %d transactions, want batches", c.initial, total)
				}
			}
			for i := range 50 {
				what := lab.step(h.p)
				h.waitSync(t)
				svcs, sls := lab.objects()
				want := normalizedTables(t, freshFullSync(t, svcs, sls))
				if diff := cmp.Diff(want, normalizedTables(t, h.fake)); diff != "" {
					ps := h.fake.Payloads()
					t.Fatalf("step %d (%s): tables differ from a fresh full sync (-full +incremental):\n%s\nlast payload:\n%s", i, what, diff, ps[len(ps)-1])
				}
			}
			st := h.p.Status()
			if st.FullSyncs != 1 || st.Failures != 0 || st.PartialSyncs == 0 {
				t.Errorf("status = %+v, want one full sync, then only incremental ones", st)
			}
			if n := pxValue(t, h.p.metrics.PartialRestoreFailure); n != 0 {
				t.Errorf("%v incremental transactions failed", n)
			}
		})
	}
}

// TestRendererMatchesRender checks that the caching renderer the Proxier
// uses gives exactly Render's Result, sync after sync, full and partial.
func TestRendererMatchesRender(t *testing.T) {
	lab := newRandLab(7)
	rec := &recordingSink{}
	for range 40 {
		lab.addService(rec)
	}
	var r renderer
	var last *Result
	var lastOut *renderOutput
	for i := range 60 {
		svcs, sls := lab.objects()
		in := Input{Node: randLabNode, Config: randLabConfig, Services: svcs, EndpointSlices: sls}
		if last != nil && i%5 != 0 {
			in.Changed = rec.take()
			in.Existing = last.Chains
		} else {
			rec.take()
		}
		want := Render(in)
		got, out := r.render(in, lastOut)
		if diff := cmp.Diff(string(want.Payload), string(got.Payload)); diff != "" {
			t.Fatalf("render %d: payload differs from Render (-Render +renderer):\n%s", i, diff)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("render %d: Result differs from Render (-Render +renderer):\n%s", i, diff)
		}
		last, lastOut = got, out
		lab.step(rec)
	}
}

// recordingSink records which Services changes touch, as a Proxier's
// Changed set.
type recordingSink struct{ changed map[types.NamespacedName]bool }

func (s *recordingSink) mark(ns, name string) {
	if s.changed == nil {
		s.changed = map[types.NamespacedName]bool{}
	}
	s.changed[types.NamespacedName{Namespace: ns, Name: name}] = true
}

func (s *recordingSink) take() map[types.NamespacedName]bool {
	c := s.changed
	s.changed = nil
	if c == nil {
		c = map[types.NamespacedName]bool{}
	}
	return c
}

func (s *recordingSink) OnServiceAdd(svc *corev1.Service)       { s.mark(svc.Namespace, svc.Name) }
func (s *recordingSink) OnServiceUpdate(_, svc *corev1.Service) { s.mark(svc.Namespace, svc.Name) }
func (s *recordingSink) OnServiceDelete(svc *corev1.Service)    { s.mark(svc.Namespace, svc.Name) }
func (s *recordingSink) OnEndpointSliceAdd(es *discoveryv1.EndpointSlice) {
	s.mark(es.Namespace, es.Labels[discoveryv1.LabelServiceName])
}
func (s *recordingSink) OnEndpointSliceUpdate(_, es *discoveryv1.EndpointSlice) {
	s.mark(es.Namespace, es.Labels[discoveryv1.LabelServiceName])
}
func (s *recordingSink) OnEndpointSliceDelete(es *discoveryv1.EndpointSlice) {
	s.mark(es.Namespace, es.Labels[discoveryv1.LabelServiceName])
}
