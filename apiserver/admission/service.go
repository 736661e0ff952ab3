package admission

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svclab/svclab/apiserver/alloc"
)

// serviceAdmitter defaults, validates and allocates for Services. Its
// methods are safe for concurrent use (one Admit at a time; undo steps may run
// concurrently with nothing else touching the same Service).
type serviceAdmitter struct {
	log    *slog.Logger
	family corev1.IPFamily      // the cluster's only IP family
	ips    *alloc.IPRange       // cluster IPs
	ports  *alloc.PortAllocator // node ports and health-check node ports
	lb     *alloc.IPRange       // LoadBalancer ingress IPs

	mu sync.Mutex // serializes admit and rebuild
}

// plan is one admission in progress: allocations done so far (undone on
// failure) and releases to carry out once everything else succeeded (kube's
// deferred release), so that a refused write never frees anything.
type plan struct {
	t            txn
	releaseIPs   []netip.Addr
	releasePorts []int
	releaseLB    []netip.Addr
}

// commit carries out the deferred releases, registering undo steps that
// re-take exactly what was released.
func (s *serviceAdmitter) commit(p *plan) func() {
	// Each value is released once: a hold is a count, and one Service holds a
	// value once.
	p.releaseIPs, p.releasePorts, p.releaseLB = unique(p.releaseIPs), unique(p.releasePorts), unique(p.releaseLB)
	for _, ip := range p.releaseIPs {
		if s.ips.Release(ip) {
			p.t.add(func() { _ = s.ips.Retain(ip) })
		}
	}
	for _, port := range p.releasePorts {
		if s.ports.Release(port) {
			p.t.add(func() { _ = s.ports.Retain(port) })
		}
	}
	for _, ip := range p.releaseLB {
		if s.lb.Release(ip) {
			p.t.add(func() { _ = s.lb.Retain(ip) })
		}
	}
	return p.t.undoFunc()
}

// create admits a new Service: defaults, IP family fields, cluster IP and
// node ports, validation, then the LoadBalancer IP.
func (s *serviceAdmitter) create(svc *corev1.Service) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc.Status = corev1.ServiceStatus{} // kube's PrepareForCreate
	DefaultService(svc)
	normalizeClusterIPs(svc, nil)
	p := &plan{}
	if err := s.initIPFamilyFields(svc, nil); err != nil {
		return nil, err
	}
	if err := s.allocClusterIPs(p, svc); err != nil {
		p.t.revert()
		return nil, err
	}
	if err := s.allocNodePorts(p, svc); err != nil {
		p.t.revert()
		return nil, err
	}
	if err := invalid(kindService, svc.Name, ValidateService(svc)); err != nil {
		p.t.revert()
		return nil, err
	}
	if err := s.syncLoadBalancer(p, svc, nil); err != nil {
		p.t.revert()
		return nil, err
	}
	return s.commit(p), nil
}

// update admits a change of the main resource: the client's spec (status is
// the stored one, as kube's PrepareForUpdate sets it), with allocations
// following type changes in both directions.
func (s *serviceAdmitter) update(svc, old *corev1.Service) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc.Status = *old.Status.DeepCopy()
	DefaultService(svc)
	patchAllocatedValues(svc, old)
	normalizeClusterIPs(svc, old)
	p := &plan{}
	if err := s.initIPFamilyFields(svc, old); err != nil {
		return nil, err
	}
	if err := s.updateClusterIPs(p, svc, old); err != nil {
		p.t.revert()
		return nil, err
	}
	if err := s.updateNodePorts(p, svc, old); err != nil {
		p.t.revert()
		return nil, err
	}
	dropTypeDependentFields(svc, old)
	if err := invalid(kindService, svc.Name, append(validateCommonFields(svc, old, true), ValidateServiceUpdate(svc, old)...)); err != nil {
		p.t.revert()
		return nil, err
	}
	if err := s.syncLoadBalancer(p, svc, old); err != nil {
		p.t.revert()
		return nil, err
	}
	return s.commit(p), nil
}

// updateStatus admits a write of the status subresource (spec unchanged):
// the load-balancer status is validated and pool IPs follow the ingress list.
func (s *serviceAdmitter) updateStatus(svc, old *corev1.Service) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defaultIngressIPMode(svc)
	if err := invalid(kindService, svc.Name, append(validateCommonFields(svc, old, true), ValidateServiceStatusUpdate(svc, old)...)); err != nil {
		return nil, err
	}
	p := &plan{}
	had := map[netip.Addr]bool{}
	for _, ip := range s.poolIPs(old) {
		had[ip] = true
	}
	keep := map[netip.Addr]bool{}
	for i, ing := range svc.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(ing.IP)
		if err != nil || !s.lb.Contains(ip) {
			continue // a hostname, or an address svclab does not manage
		}
		keep[ip] = true
		if had[ip] {
			continue
		}
		if err := s.lb.Allocate(ip); err != nil {
			p.t.revert()
			return nil, invalid(kindService, svc.Name, field.ErrorList{field.Invalid(
				field.NewPath("status", "loadBalancer", "ingress").Index(i).Child("ip"), ing.IP,
				fmt.Sprintf("failed to allocate IP %v: %v", ing.IP, err))})
		}
		p.t.add(func() { s.lb.Release(ip) })
		had[ip] = true
	}
	for ip := range had {
		if !keep[ip] {
			p.releaseLB = append(p.releaseLB, ip)
		}
	}
	return s.commit(p), nil
}

// delete releases everything the Service holds.
func (s *serviceAdmitter) delete(old *corev1.Service) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &plan{
		releaseIPs:   s.clusterIPsOf(old),
		releasePorts: nodePortsOf(old),
		releaseLB:    s.poolIPs(old),
	}
	if hc := old.Spec.HealthCheckNodePort; needsHealthCheck(old) && hc != 0 {
		p.releasePorts = append(p.releasePorts, int(hc))
	}
	return s.commit(p)
}

// rebuild marks every cluster IP, node port, health-check node port and LB
// pool IP of the stored Services. Values outside today's ranges (flags
// changed since they were stored) and values held by two Services are logged,
// as kube's repair controllers do, and do not fail the rebuild.
func (s *serviceAdmitter) rebuild(svcs []*corev1.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ips.Reset()
	s.ports.Reset()
	s.lb.Reset()
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		for _, ip := range s.clusterIPsOf(svc) {
			s.retain(key, "clusterIP", ip.String(), s.ips.Retain(ip), s.ips.Holds(ip))
		}
		ports := nodePortsOf(svc)
		if hc := svc.Spec.HealthCheckNodePort; needsHealthCheck(svc) && hc != 0 {
			ports = append(ports, int(hc))
		}
		for _, port := range ports {
			s.retain(key, "nodePort", fmt.Sprint(port), s.ports.Retain(port), s.ports.Holds(port))
		}
		for _, ip := range s.poolIPs(svc) {
			s.retain(key, "loadBalancer IP", ip.String(), s.lb.Retain(ip), s.lb.Holds(ip))
		}
	}
	s.log.Info("service allocators rebuilt", "services", len(svcs),
		"clusterIPs", s.ips.Used(), "nodePorts", s.ports.Used(), "lbIPs", s.lb.Used())
}

func (s *serviceAdmitter) retain(svc, what, value string, err error, holds int) {
	switch {
	case err != nil:
		s.log.Warn("stored service holds a value outside the configured range; recreate it", "service", svc, "field", what, "value", value, "error", err)
	case holds > 1:
		s.log.Error("value assigned to more than one service; recreate one of them", "service", svc, "field", what, "value", value)
	}
}

// clusterIPsOf returns the cluster IPs svc holds in the cluster's family
// (none for ExternalName and headless Services, or unparsable values).
func (s *serviceAdmitter) clusterIPsOf(svc *corev1.Service) []netip.Addr {
	if !needsClusterIP(svc) || isHeadless(svc) {
		return nil
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, ip := range ips {
		if familyOf(ip) != s.family {
			continue
		}
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// nodePortsOf returns svc's distinct node ports (a TCP and a UDP port of the
// same service port share one).
func nodePortsOf(svc *corev1.Service) []int {
	var out []int
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 && !slices.Contains(out, int(p.NodePort)) {
			out = append(out, int(p.NodePort))
		}
	}
	return out
}

// poolIPs returns the distinct ingress IPs of a LoadBalancer svc that lie in the pool.
func (s *serviceAdmitter) poolIPs(svc *corev1.Service) []netip.Addr {
	if svc == nil || svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return nil
	}
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil && s.lb.Contains(a) && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// initIPFamilyFields is kube's initIPFamilyFields for a single-stack
// cluster: it defaults ipFamilyPolicy (SingleStack; RequireDualStack for a
// headless Service without selector, as kube does) and ipFamilies, and
// refuses families the cluster does not have.
func (s *serviceAdmitter) initIPFamilyFields(svc, old *corev1.Service) error {
	spec := &svc.Spec
	if spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	if spec.IPFamilyPolicy == nil {
		var p corev1.IPFamilyPolicy
		switch {
		case old != nil && old.Spec.IPFamilyPolicy != nil:
			p = *old.Spec.IPFamilyPolicy
		case spec.ClusterIP == corev1.ClusterIPNone && len(spec.Selector) == 0:
			p = corev1.IPFamilyPolicyRequireDualStack
		default:
			p = corev1.IPFamilyPolicySingleStack
		}
		spec.IPFamilyPolicy = &p
	}
	var oldIPs []string
	if old != nil {
		oldIPs = old.Spec.ClusterIPs
	}
	if el := validateClusterIPsRelatedFields(svc, oldIPs); len(el) != 0 {
		return invalid(kindService, svc.Name, el)
	}

	var el field.ErrorList
	policyPath := field.NewPath("spec", "ipFamilyPolicy")
	policy := *spec.IPFamilyPolicy
	if old != nil {
		if policy == corev1.IPFamilyPolicySingleStack {
			if slices.Equal(old.Spec.ClusterIPs, spec.ClusterIPs) && len(spec.ClusterIPs) > 1 {
				spec.ClusterIPs = spec.ClusterIPs[:1]
			}
			if slices.Equal(old.Spec.IPFamilies, spec.IPFamilies) && len(spec.IPFamilies) > 1 {
				spec.IPFamilies = spec.IPFamilies[:1]
			}
		} else {
			if len(spec.ClusterIPs) > 0 && len(spec.ClusterIPs) < len(old.Spec.ClusterIPs) {
				el = append(el, field.Invalid(policyPath, spec.IPFamilyPolicy, "must be 'SingleStack' to release the secondary cluster IP"))
			}
			if len(spec.IPFamilies) > 0 && len(spec.IPFamilies) < len(old.Spec.IPFamilies) {
				el = append(el, field.Invalid(policyPath, spec.IPFamilyPolicy, "must be 'SingleStack' to release the secondary IP family"))
			}
		}
	}
	if policy == corev1.IPFamilyPolicySingleStack {
		if len(spec.ClusterIPs) == 2 {
			el = append(el, field.Invalid(policyPath, spec.IPFamilyPolicy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"))
		}
		if len(spec.IPFamilies) == 2 {
			el = append(el, field.Invalid(policyPath, spec.IPFamilyPolicy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"))
		}
	}
	for i, ip := range spec.ClusterIPs {
		if ip == corev1.ClusterIPNone {
			break
		}
		if i >= len(spec.IPFamilies) {
			if fam := familyOf(ip); fam != s.family {
				el = append(el, field.Invalid(field.NewPath("spec", "clusterIPs").Index(i), spec.ClusterIPs,
					fmt.Sprintf("%s is not configured on this cluster", fam)))
			} else {
				spec.IPFamilies = append(spec.IPFamilies, fam)
			}
		}
	}
	if len(el) > 0 {
		return invalid(kindService, svc.Name, el)
	}

	if spec.ClusterIP == corev1.ClusterIPNone && len(spec.Selector) == 0 {
		// Headless and selectorless: families are informational, even dual on a single-stack cluster.
		if len(spec.IPFamilies) == 0 {
			spec.IPFamilies = []corev1.IPFamily{s.family}
		}
		if len(spec.IPFamilies) < 2 && policy != corev1.IPFamilyPolicySingleStack {
			spec.IPFamilies = append(spec.IPFamilies, otherFamily(spec.IPFamilies[0]))
		}
		return nil
	}
	if policy == corev1.IPFamilyPolicyRequireDualStack {
		el = append(el, field.Invalid(policyPath, spec.IPFamilyPolicy, "this cluster is not configured for dual-stack services"))
	}
	for i, fam := range spec.IPFamilies {
		if fam != s.family {
			el = append(el, field.Invalid(field.NewPath("spec", "ipFamilies").Index(i), fam, "not configured on this cluster"))
		}
	}
	if len(el) > 0 {
		return invalid(kindService, svc.Name, el)
	}
	if len(spec.IPFamilies) == 0 {
		spec.IPFamilies = []corev1.IPFamily{s.family}
	}
	return nil
}

func otherFamily(f corev1.IPFamily) corev1.IPFamily {
	if f == corev1.IPv4Protocol {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

// allocClusterIPs is kube's allocClusterIPs for the cluster's one family: a
// requested clusterIP is taken (422 when outside the range or taken), an
// empty one is allocated at random (500 "range is full" when exhausted, as
// kube answers).
func (s *serviceAdmitter) allocClusterIPs(p *plan, svc *corev1.Service) error {
	spec := &svc.Spec
	if !needsClusterIP(svc) || isHeadless(svc) {
		return nil
	}
	if len(spec.ClusterIPs) == 0 {
		spec.ClusterIPs = []string{""}
	}
	if req := spec.ClusterIPs[0]; req != "" {
		ip, err := netip.ParseAddr(req)
		if err != nil {
			return apierrors.NewInternalError(fmt.Errorf("failed to parse service IP %q", req))
		}
		if err := s.ips.Allocate(ip); err != nil {
			return invalid(kindService, svc.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"),
				spec.ClusterIPs, fmt.Sprintf("failed to allocate IP %v: %v", req, err))})
		}
		p.t.add(func() { s.ips.Release(ip) })
		spec.ClusterIP = req
		return nil
	}
	ip, err := s.ips.AllocateNext()
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: %v", err))
	}
	p.t.add(func() { s.ips.Release(ip) })
	spec.ClusterIPs[0] = ip.String()
	spec.ClusterIP = ip.String()
	return nil
}

// updateClusterIPs is kube's updateClusterIPs for a single-stack cluster:
// ExternalName -> other allocates, other -> ExternalName releases (deferred).
func (s *serviceAdmitter) updateClusterIPs(p *plan, svc, old *corev1.Service) error {
	if !needsClusterIP(old) && needsClusterIP(svc) {
		return s.allocClusterIPs(p, svc)
	}
	if isHeadless(old) {
		return nil
	}
	if needsClusterIP(old) && !needsClusterIP(svc) {
		p.releaseIPs = append(p.releaseIPs, s.clusterIPsOf(old)...)
	}
	return nil
}

// allocNodePorts is kube's initNodePorts plus the health-check node port of
// a LoadBalancer with externalTrafficPolicy Local. Ports with the same
// service port number (e.g. DNS over TCP and UDP) share one node port.
func (s *serviceAdmitter) allocNodePorts(p *plan, svc *corev1.Service) error {
	if needsNodePort(svc) {
		byPort := map[int32]int32{}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			if sp.NodePort == 0 && !shouldAllocateNodePorts(svc) {
				continue // don't allocate, but do respect explicit requests
			}
			path := field.NewPath("spec", "ports").Index(i).Child("nodePort")
			shared := byPort[sp.Port]
			switch {
			case shared == 0:
				np := findRequestedNodePort(sp.Port, svc.Spec.Ports)
				if np != 0 {
					if err := s.takePort(p, int(np)); err != nil {
						return invalid(kindService, svc.Name, field.ErrorList{field.Invalid(path, np, err.Error())})
					}
				} else {
					n, err := s.nextPort(p)
					if err != nil {
						return apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %v", err))
					}
					np = int32(n)
				}
				sp.NodePort = np
				byPort[sp.Port] = np
			case sp.NodePort == 0:
				sp.NodePort = shared
			case sp.NodePort != shared:
				if err := s.takePort(p, int(sp.NodePort)); err != nil {
					return invalid(kindService, svc.Name, field.ErrorList{field.Invalid(path, sp.NodePort, err.Error())})
				}
			}
		}
	}
	if needsHealthCheck(svc) {
		return s.allocHealthCheckNodePort(p, svc)
	}
	return nil
}

// findRequestedNodePort returns the first explicit nodePort among the ports
// with service port number port, or 0.
func findRequestedNodePort(port int32, ports []corev1.ServicePort) int32 {
	for _, sp := range ports {
		if sp.Port == port && sp.NodePort != 0 {
			return sp.NodePort
		}
	}
	return 0
}

func (s *serviceAdmitter) takePort(p *plan, port int) error {
	if err := s.ports.Allocate(port); err != nil {
		return err
	}
	p.t.add(func() { s.ports.Release(port) })
	return nil
}

func (s *serviceAdmitter) nextPort(p *plan) (int, error) {
	port, err := s.ports.AllocateNext()
	if err != nil {
		return 0, err
	}
	p.t.add(func() { s.ports.Release(port) })
	return port, nil
}

// allocHealthCheckNodePort is kube's: a requested port is taken, else one is
// allocated; failures are 500 Internal errors, as in kube.
func (s *serviceAdmitter) allocHealthCheckNodePort(p *plan, svc *corev1.Service) error {
	if hc := svc.Spec.HealthCheckNodePort; hc != 0 {
		if err := s.takePort(p, int(hc)); err != nil {
			return apierrors.NewInternalError(fmt.Errorf("failed to allocate requested HealthCheck NodePort %v: %v", hc, err))
		}
		return nil
	}
	hc, err := s.nextPort(p)
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("failed to allocate a HealthCheck NodePort %v: %v", hc, err))
	}
	svc.Spec.HealthCheckNodePort = int32(hc)
	return nil
}

// updateNodePorts is kube's txnUpdateNodePorts: node ports of a Service
// leaving NodePort/LoadBalancer are released, new ones allocated, ones that
// disappeared released, and the health-check node port follows
// type/externalTrafficPolicy changes.
func (s *serviceAdmitter) updateNodePorts(p *plan, svc, old *corev1.Service) error {
	oldPorts := nodePortsOf(old)
	if needsNodePort(old) && !needsNodePort(svc) {
		p.releasePorts = append(p.releasePorts, oldPorts...)
	}
	if needsNodePort(svc) {
		type protoPort struct {
			proto corev1.Protocol
			port  int32
		}
		var seen []protoPort
		taken := map[int32]bool{}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			if sp.NodePort == 0 && !shouldAllocateNodePorts(svc) {
				continue
			}
			if sp.NodePort != 0 {
				if !slices.Contains(oldPorts, int(sp.NodePort)) && !taken[sp.NodePort] {
					if err := s.takePort(p, int(sp.NodePort)); err != nil {
						return invalid(kindService, svc.Name, field.ErrorList{field.Invalid(
							field.NewPath("spec", "ports").Index(i).Child("nodePort"), sp.NodePort, err.Error())})
					}
					taken[sp.NodePort] = true
				}
			} else {
				n, err := s.nextPort(p)
				if err != nil {
					return apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %v", err))
				}
				sp.NodePort = int32(n)
			}
			pp := protoPort{sp.Protocol, sp.NodePort}
			if slices.Contains(seen, pp) {
				return apierrors.NewInternalError(fmt.Errorf("duplicate nodePort: %v", corev1.ServicePort{Protocol: pp.proto, NodePort: pp.port}))
			}
			seen = append(seen, pp)
		}
		newPorts := nodePortsOf(svc)
		for _, port := range oldPorts {
			if !slices.Contains(newPorts, port) {
				p.releasePorts = append(p.releasePorts, port)
			}
		}
	}
	switch needed, needs := needsHealthCheck(old), needsHealthCheck(svc); {
	case !needed && needs:
		return s.allocHealthCheckNodePort(p, svc)
	case needed && !needs && old.Spec.HealthCheckNodePort != 0:
		p.releasePorts = append(p.releasePorts, int(old.Spec.HealthCheckNodePort))
	}
	return nil
}

// syncLoadBalancer gives a LoadBalancer Service its ingress IP from the pool,
// as a cloud controller (or MetalLB) would, and releases the IP of a Service
// that stopped being one. spec.loadBalancerIP is honoured when set (422 when it
// is outside the pool or taken). When the pool is exhausted the Service is
// admitted with an empty status ("<pending>"), and the next write of the
// Service tries again.
func (s *serviceAdmitter) syncLoadBalancer(p *plan, svc, old *corev1.Service) error {
	oldIPs := s.poolIPs(old)
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		svc.Status.LoadBalancer = corev1.LoadBalancerStatus{}
		p.releaseLB = append(p.releaseLB, oldIPs...)
		return nil
	}
	cur := ""
	if ing := svc.Status.LoadBalancer.Ingress; len(ing) > 0 {
		cur = ing[0].IP
	}
	want := svc.Spec.LoadBalancerIP
	if want == "" && cur != "" {
		return nil // keep what the Service has
	}
	if want != "" && sameIP(want, cur) {
		return nil
	}
	var ip netip.Addr
	if want != "" {
		req, err := netip.ParseAddr(want)
		if err == nil {
			err = s.lb.Allocate(req)
		}
		if err != nil && !(errors.Is(err, alloc.ErrIPAllocated) && slices.Contains(oldIPs, req.Unmap())) {
			return invalid(kindService, svc.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "loadBalancerIP"),
				want, fmt.Sprintf("failed to allocate IP %v: %v", want, err))})
		}
		if err == nil {
			p.t.add(func() { s.lb.Release(req) })
		}
		ip = req.Unmap()
	} else {
		next, err := s.lb.AllocateNext()
		if err != nil {
			s.log.Warn("no LoadBalancer IP available; the service stays pending",
				"service", svc.Namespace+"/"+svc.Name, "pool", s.lb.Prefix().String(), "error", err)
			return nil
		}
		p.t.add(func() { s.lb.Release(next) })
		ip = next
	}
	vip := corev1.LoadBalancerIPModeVIP
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: &vip}}
	for _, o := range oldIPs {
		if o != ip {
			p.releaseLB = append(p.releaseLB, o)
		}
	}
	return nil
}

func unique[T comparable](list []T) []T {
	var out []T
	for _, v := range list {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func sameIP(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && x.Unmap() == y.Unmap()
}

// statusChanged reports whether a Service update changes only the status
// (the store applies the status subresource rule before admission: a main
// update carries the stored status, a status update the stored spec).
func statusChanged(svc, old *corev1.Service) bool {
	return !equality.Semantic.DeepEqual(svc.Status, old.Status)
}
