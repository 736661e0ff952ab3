package dataplane

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigyaml "sigs.k8s.io/yaml"
)

// Defaults used by ManifestInput for objects that a real cluster would have
// filled in (allocated addresses and ports).
var (
	// DefaultServiceCIDR is where ManifestInput allocates cluster IPs for
	// Services that have none (kubeadm's default service CIDR).
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
	// DefaultPodCIDR is where ManifestInput allocates pod IPs when
	// Config.ClusterCIDR is unset.
	DefaultPodCIDR = netip.MustParsePrefix("10.244.0.0/16")
)

// firstAllocatedServiceOffset skips 10.96.0.1 (kubernetes) … 10.96.0.10
// (cluster DNS) in DefaultServiceCIDR.
const firstAllocatedServiceOffset = 11

// RenderManifests reads a multi-document YAML (or JSON) stream of Services,
// EndpointSlices and Pods (also inside "kind: List") and returns the
// iptables-restore payload kube-proxy would write on node (see ManifestInput
// for the defaults applied). It is what `svclab rules -f` prints.
func RenderManifests(r io.Reader, node Node, cfg Config) ([]byte, error) {
	in, err := ManifestInput(r, node, cfg)
	if err != nil {
		return nil, err
	}
	return Render(in).Payload, nil
}

// ManifestInput decodes manifests into a Render Input for node, filling in
// what the API server and controllers would have:
//   - Service defaults: type ClusterIP, protocol TCP, targetPort = port; a
//     cluster IP from DefaultServiceCIDR (sequentially from 10.96.0.11,
//     skipping addresses already used) when clusterIP is empty; node ports
//     from 30000 upwards (skipping used ones) for NodePort/LoadBalancer ports
//     without one, and a healthCheckNodePort for LoadBalancer Services with
//     externalTrafficPolicy Local. A LoadBalancer without status.loadBalancer
//     gets no ingress IP (as with no cloud provider).
//   - Pods without status.podIP get IPs from cfg.ClusterCIDR (DefaultPodCIDR
//     if unset), in document order starting at .2. Pods without a Ready
//     condition are ready; a deletionTimestamp makes them terminating.
//   - For each Service with a selector and no EndpointSlice in the input,
//     EndpointSlices are derived from the matching Pods of its namespace
//     (like the EndpointSlice controller, named targetPorts resolved per Pod).
//     Pods keep their spec.nodeName; Pods without one are on no node, so they
//     are never local endpoints.
//
// Objects of other kinds are ignored. A document that does not decode is an
// error naming its position.
func ManifestInput(r io.Reader, node Node, cfg Config) (Input, error) {
	in := Input{Node: node, Config: cfg}
	var pods []*corev1.Pod
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Input{}, fmt.Errorf("read manifest document %d: %w", doc, err)
		}
		jsonDoc, err := sigyaml.YAMLToJSON(raw)
		if err != nil {
			return Input{}, fmt.Errorf("parse manifest document %d: %w", doc, err)
		}
		if err := decodeObject(jsonDoc, &in, &pods); err != nil {
			return Input{}, fmt.Errorf("decode manifest document %d: %w", doc, err)
		}
	}
	defaultServices(in.Services)
	podCIDR := cfg.ClusterCIDR
	if !podCIDR.IsValid() {
		podCIDR = DefaultPodCIDR
	}
	if err := assignPodIPs(pods, podCIDR.Masked()); err != nil {
		return Input{}, err
	}
	in.EndpointSlices = append(in.EndpointSlices, deriveEndpointSlices(in.Services, in.EndpointSlices, pods)...)
	return in, nil
}

func decodeObject(jsonDoc []byte, in *Input, pods *[]*corev1.Pod) error {
	if len(strings.TrimSpace(string(jsonDoc))) == 0 || string(jsonDoc) == "null" {
		return nil
	}
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(jsonDoc, &head); err != nil {
		return err
	}
	switch head.Kind {
	case "List", "ServiceList", "EndpointSliceList", "PodList":
		for i, item := range head.Items {
			if err := decodeObject(item, in, pods); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
	case "Service":
		s := &corev1.Service{}
		if err := json.Unmarshal(jsonDoc, s); err != nil {
			return err
		}
		if s.Namespace == "" {
			s.Namespace = metav1.NamespaceDefault
		}
		in.Services = append(in.Services, s)
	case "EndpointSlice":
		es := &discoveryv1.EndpointSlice{}
		if err := json.Unmarshal(jsonDoc, es); err != nil {
			return err
		}
		if es.Namespace == "" {
			es.Namespace = metav1.NamespaceDefault
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	case "Pod":
		p := &corev1.Pod{}
		if err := json.Unmarshal(jsonDoc, p); err != nil {
			return err
		}
		if p.Namespace == "" {
			p.Namespace = metav1.NamespaceDefault
		}
		*pods = append(*pods, p)
	}
	return nil
}

// defaultServices applies the API server's defaults and allocations.
func defaultServices(svcs []*corev1.Service) {
	usedIPs := map[netip.Addr]bool{}
	usedPorts := map[int32]bool{}
	for _, s := range svcs {
		for _, ip := range append([]string{s.Spec.ClusterIP}, s.Spec.ClusterIPs...) {
			if a, err := netip.ParseAddr(ip); err == nil {
				usedIPs[a] = true
			}
		}
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				usedPorts[p.NodePort] = true
			}
		}
		if s.Spec.HealthCheckNodePort != 0 {
			usedPorts[s.Spec.HealthCheckNodePort] = true
		}
	}
	nextIP := DefaultServiceCIDR.Addr()
	for range firstAllocatedServiceOffset {
		nextIP = nextIP.Next()
	}
	allocIP := func() string {
		for usedIPs[nextIP] {
			nextIP = nextIP.Next()
		}
		ip := nextIP
		usedIPs[ip] = true
		return ip.String()
	}
	nextPort := int32(30000)
	allocPort := func() int32 {
		for usedPorts[nextPort] {
			nextPort++
		}
		usedPorts[nextPort] = true
		return nextPort
	}
	for _, s := range svcs {
		if s.Spec.Type == "" {
			s.Spec.Type = corev1.ServiceTypeClusterIP
		}
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		if s.Spec.ClusterIP == "" {
			s.Spec.ClusterIP = allocIP()
		}
		if s.Spec.ClusterIP != corev1.ClusterIPNone && len(s.Spec.ClusterIPs) == 0 {
			s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		}
		external := s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
		if external && s.Spec.ExternalTrafficPolicy == "" {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}
		if s.Spec.SessionAffinity == "" {
			s.Spec.SessionAffinity = corev1.ServiceAffinityNone
		}
		for i := range s.Spec.Ports {
			p := &s.Spec.Ports[i]
			if p.Protocol == "" {
				p.Protocol = corev1.ProtocolTCP
			}
			if p.TargetPort.IntVal == 0 && p.TargetPort.StrVal == "" {
				p.TargetPort.IntVal = p.Port
			}
			if external && p.NodePort == 0 {
				p.NodePort = allocPort()
			}
		}
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal && s.Spec.HealthCheckNodePort == 0 {
			s.Spec.HealthCheckNodePort = allocPort()
		}
	}
}

func assignPodIPs(pods []*corev1.Pod, cidr netip.Prefix) error {
	used := map[netip.Addr]bool{}
	for _, p := range pods {
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			used[a] = true
		}
	}
	next := cidr.Addr().Next().Next()
	for _, p := range pods {
		if p.Status.PodIP != "" {
			continue
		}
		for used[next] {
			next = next.Next()
		}
		if !cidr.Contains(next) {
			return fmt.Errorf("pod CIDR %s exhausted at pod %s/%s", cidr, p.Namespace, p.Name)
		}
		p.Status.PodIP = next.String()
		p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
		used[next] = true
		next = next.Next()
	}
	return nil
}

// podReady is the Pod's Ready condition (true when the Pod reports none).
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return true
}

// resolvePort finds the container port a Service targetPort refers to.
func resolvePort(p *corev1.Pod, sp corev1.ServicePort) (int32, bool) {
	if sp.TargetPort.StrVal == "" {
		return sp.TargetPort.IntVal, sp.TargetPort.IntVal != 0
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if cp.Name == sp.TargetPort.StrVal && proto == sp.Protocol {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// deriveEndpointSlices builds EndpointSlices for selector Services that have
// none in the input, grouping endpoints by their resolved port set as the
// EndpointSlice controller does.
func deriveEndpointSlices(svcs []*corev1.Service, existing []*discoveryv1.EndpointSlice, pods []*corev1.Pod) []*discoveryv1.EndpointSlice {
	has := map[string]bool{}
	for _, es := range existing {
		has[es.Namespace+"/"+es.Labels[discoveryv1.LabelServiceName]] = true
	}
	var out []*discoveryv1.EndpointSlice
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 || s.Spec.Type == corev1.ServiceTypeExternalName || has[s.Namespace+"/"+s.Name] {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		type group struct {
			ports     []discoveryv1.EndpointPort
			endpoints []discoveryv1.Endpoint
		}
		var groups []*group
		keyOf := map[string]*group{}
		for _, p := range pods {
			if p.Namespace != s.Namespace || !sel.Matches(labels.Set(p.Labels)) || p.Status.PodIP == "" {
				continue
			}
			var ports []discoveryv1.EndpointPort
			var key []string
			for _, sp := range s.Spec.Ports {
				n, ok := resolvePort(p, sp)
				if !ok {
					continue
				}
				ports = append(ports, discoveryv1.EndpointPort{Name: ptrTo(sp.Name), Port: ptrTo(n), Protocol: ptrTo(sp.Protocol)})
				key = append(key, fmt.Sprintf("%s/%s/%d", sp.Name, sp.Protocol, n))
			}
			k := strings.Join(key, ",")
			g := keyOf[k]
			if g == nil {
				g = &group{ports: ports}
				keyOf[k] = g
				groups = append(groups, g)
			}
			ready := podReady(p)
			terminating := p.DeletionTimestamp != nil
			ep := discoveryv1.Endpoint{
				Addresses: []string{p.Status.PodIP},
				Conditions: discoveryv1.EndpointConditions{
					Ready:       ptrTo(ready && !terminating),
					Serving:     ptrTo(ready),
					Terminating: ptrTo(terminating),
				},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
			}
			if p.Spec.NodeName != "" {
				ep.NodeName = ptrTo(p.Spec.NodeName)
			}
			g.endpoints = append(g.endpoints, ep)
		}
		for i, g := range groups {
			slices.SortFunc(g.endpoints, func(a, b discoveryv1.Endpoint) int { return strings.Compare(a.Addresses[0], b.Addresses[0]) })
			out = append(out, &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: s.Namespace,
					Name:      fmt.Sprintf("%s-derived-%d", s.Name, i),
					Labels: map[string]string{
						discoveryv1.LabelServiceName: s.Name,
						discoveryv1.LabelManagedBy:   "svclab-rules",
					},
				},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints:   g.endpoints,
				Ports:       g.ports,
			})
		}
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }
