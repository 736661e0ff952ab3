package admission

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svclab/svclab/apiserver/alloc"
	"github.com/svclab/svclab/apiserver/store"
)

// Admission holds svclab's admitters and the allocators behind them.
type Admission struct {
	cfg      Config
	services *serviceAdmitter
}

// New validates cfg (after filling in defaults) and builds the admitters and
// allocators. It fails with a descriptive error for a service CIDR that is
// too small (no allocatable address) or too large (more than 20 host bits,
// kube's limit), an LB pool with the same problems or overlapping the service
// CIDR, an empty or out-of-bounds node-port range, or a reserved IP that is
// not an allocatable address of the service CIDR. logger may be nil.
func New(cfg Config, logger *slog.Logger) (*Admission, error) {
	if logger == nil {
		logger = slog.Default()
	}
	log := logger.With("component", "admission")
	defaultReserved := cfg.ReservedIPs == nil
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ips, err := alloc.NewIPRange(cfg.ServiceCIDR, alloc.IPOptions{Strategy: alloc.Random})
	if err != nil {
		return nil, fmt.Errorf("service CIDR: %w", err)
	}
	ports, err := alloc.NewPortAllocator(cfg.NodePortRange)
	if err != nil {
		return nil, fmt.Errorf("node port range: %w", err)
	}
	lb, err := alloc.NewIPRange(cfg.LBPool, alloc.IPOptions{Strategy: alloc.Lowest, AvoidDotZeroAndDot255: true})
	if err != nil {
		return nil, fmt.Errorf("LB pool: %w", err)
	}
	var reserved []netip.Addr
	for _, ip := range cfg.ReservedIPs {
		if defaultReserved && !ips.Contains(ip) {
			continue // a tiny service CIDR without a tenth address: nothing to reserve
		}
		if err := ips.Reserve(ip); err != nil {
			return nil, fmt.Errorf("reserved IP %s: %w", ip, err)
		}
		reserved = append(reserved, ip)
	}
	cfg.ReservedIPs = reserved
	family := corev1.IPv4Protocol
	if cfg.ServiceCIDR.Addr().Is6() {
		family = corev1.IPv6Protocol
	}
	a := &Admission{
		cfg: cfg,
		services: &serviceAdmitter{
			log:    log.With("resource", "services"),
			family: family,
			ips:    ips,
			ports:  ports,
			lb:     lb,
		},
	}
	first, last, _ := ips.StaticBand()
	pfirst, plast, _ := ports.StaticBand()
	log.Info("admission configured", "serviceCIDR", cfg.ServiceCIDR.String(), "staticBand", first.String()+"-"+last.String(),
		"reserved", fmt.Sprint(reserved), "nodePorts", cfg.NodePortRange.String(), "nodePortStaticBand", fmt.Sprintf("%d-%d", pfirst, plast),
		"lbPool", cfg.LBPool.String())
	return a, nil
}

// Config returns the effective configuration (defaults filled in; ReservedIPs
// lists the addresses actually reserved).
func (a *Admission) Config() Config { return a.cfg }

// Admitters returns one store.Admitter per resource, keyed by
// store.Resource.Name: services, pods, nodes, namespaces, endpoints,
// endpointslices. Pass it as store.Options.Admitters.
func (a *Admission) Admitters() map[string]store.Admitter {
	return map[string]store.Admitter{
		store.Services.Name:       serviceStoreAdmitter{a.services},
		store.Pods.Name:           typed[*corev1.Pod]{create: podAdmitter{}.create, update: podAdmitter{}.update},
		store.Nodes.Name:          typed[*corev1.Node]{create: nodeAdmitter{}.create, update: nodeAdmitter{}.update},
		store.Namespaces.Name:     typed[*corev1.Namespace]{create: namespaceAdmitter{}.create, update: namespaceAdmitter{}.update, delete: namespaceAdmitter{}.delete},
		store.Endpoints.Name:      typed[*corev1.Endpoints]{create: endpointsAdmitter{}.create, update: endpointsAdmitter{}.update},
		store.EndpointSlices.Name: typed[*discoveryv1.EndpointSlice]{create: endpointSliceAdmitter{}.create, update: endpointSliceAdmitter{}.update},
	}
}

// Usage is one allocator's fill level.
type Usage struct {
	Used int // allocated values
	Size int // allocatable values (reserved ones included)
}

// Stats is the fill level of the Service allocators, e.g. for /metrics.
type Stats struct {
	ClusterIPs Usage
	NodePorts  Usage // node ports and health-check node ports
	LBIPs      Usage
}

// Stats returns the allocators' current fill levels.
func (a *Admission) Stats() Stats {
	s := a.services
	return Stats{
		ClusterIPs: Usage{Used: s.ips.Used(), Size: s.ips.Size()},
		NodePorts:  Usage{Used: s.ports.Used(), Size: s.ports.Used() + s.ports.Free()},
		LBIPs:      Usage{Used: s.lb.Used(), Size: s.lb.Size()},
	}
}

// serviceStoreAdmitter adapts serviceAdmitter to store.Admitter.
type serviceStoreAdmitter struct{ s *serviceAdmitter }

var _ store.Admitter = serviceStoreAdmitter{}

// Admit implements store.Admitter. An Update whose status differs from the
// stored one is a write of the status subresource (the store applies the
// status rule before admission); any other Update is a main-resource update.
func (a serviceStoreAdmitter) Admit(_ context.Context, op store.Operation, old, obj store.Object) (func(), error) {
	switch op {
	case store.Create:
		svc, err := as[*corev1.Service](obj)
		if err != nil {
			return nil, err
		}
		return a.s.create(svc)
	case store.Update:
		svc, err := as[*corev1.Service](obj)
		if err != nil {
			return nil, err
		}
		prev, err := as[*corev1.Service](old)
		if err != nil {
			return nil, err
		}
		if statusChanged(svc, prev) {
			return a.s.updateStatus(svc, prev)
		}
		return a.s.update(svc, prev)
	case store.Delete:
		prev, err := as[*corev1.Service](old)
		if err != nil {
			return nil, err
		}
		return a.s.delete(prev), nil
	}
	return nil, fmt.Errorf("admit services: unknown operation %q", op)
}

// Rebuild implements store.Admitter: it re-marks every allocation of the
// stored Services.
func (a serviceStoreAdmitter) Rebuild(objs []store.Object) error {
	svcs := make([]*corev1.Service, 0, len(objs))
	for _, o := range objs {
		svc, err := as[*corev1.Service](o)
		if err != nil {
			return fmt.Errorf("rebuild services: %w", err)
		}
		svcs = append(svcs, svc)
	}
	a.s.rebuild(svcs)
	return nil
}

// typed adapts per-type functions without allocations to store.Admitter.
// Nil functions admit the write as it is.
type typed[T store.Object] struct {
	create func(obj T) error
	update func(obj, old T) error
	delete func(old T) error
}

// Admit implements store.Admitter.
func (t typed[T]) Admit(_ context.Context, op store.Operation, old, obj store.Object) (func(), error) {
	switch op {
	case store.Create:
		o, err := as[T](obj)
		if err != nil || t.create == nil {
			return nil, err
		}
		return nil, t.create(o)
	case store.Update:
		o, err := as[T](obj)
		if err != nil {
			return nil, err
		}
		p, err := as[T](old)
		if err != nil || t.update == nil {
			return nil, err
		}
		return nil, t.update(o, p)
	case store.Delete:
		p, err := as[T](old)
		if err != nil || t.delete == nil {
			return nil, err
		}
		return nil, t.delete(p)
	}
	return nil, fmt.Errorf("admit: unknown operation %q", op)
}

// Rebuild implements store.Admitter; these admitters keep no state.
func (typed[T]) Rebuild([]store.Object) error { return nil }

func as[T store.Object](o store.Object) (T, error) {
	t, ok := o.(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("admission: got %T, want %T", o, zero)
	}
	return t, nil
}
