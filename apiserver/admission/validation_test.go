package admission

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// svc returns a valid ClusterIP Service named name, changed by muts.
func svc(name string, muts ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
	for _, m := range muts {
		m(s)
	}
	return s
}

func nodePort(s *corev1.Service)     { s.Spec.Type = corev1.ServiceTypeNodePort }
func loadBalancer(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }
func externalName(name string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ExternalName = name
		s.Spec.Selector = nil
		s.Spec.Ports = nil
	}
}

func pod(name string, muts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: "svclab/echo", Ports: []corev1.ContainerPort{{ContainerPort: 80}},
		}}},
	}
	for _, m := range muts {
		m(p)
	}
	return p
}

func slice(name string, muts ...func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.2"}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}},
	}
	for _, m := range muts {
		m(es)
	}
	return es
}

// seeded returns an Admission holding the seed's redis (10.96.0.100) and
// myapp (NodePort 30080) Services.
func seeded(t *testing.T) *Admission {
	a := newAdmission(t, Config{})
	mustCreate(t, a, loadExamples(t, "01-redis-clusterip.yaml")[0].(*corev1.Service))
	mustCreate(t, a, loadExamples(t, "03-myapp-nodeport.yaml")[0].(*corev1.Service))
	return a
}

// TestInvalid runs invalid objects through the admitters. Each must be
// refused with 422 Invalid, exactly the listed causes ("field|type" or
// "field|type|message"), and no change to the allocators.
func TestInvalid(t *testing.T) {
	const portRangeMsg = "Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
	tests := []struct {
		name string
		obj  store.Object
		old  store.Object // set: an update of old (which is created first)
		want []string
	}{
		{name: "service name not DNS-1035 (underscore)", obj: svc("redis_1"),
			want: []string{"metadata.name|FieldValueInvalid"}},
		{name: "service name starts with a digit", obj: svc("1redis"),
			want: []string{"metadata.name|FieldValueInvalid"}},
		// Metadata and spec both invalid: every cause, metadata first (kube's order).
		{name: "bad name and bad port", obj: svc("redis_1", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }),
			want: []string{"metadata.name|FieldValueInvalid", `spec.ports[0].protocol|FieldValueNotSupported|Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`}},
		{name: "no name and no ports", obj: svc("", func(s *corev1.Service) { s.Spec.Ports = nil }),
			want: []string{"metadata.name|FieldValueRequired|Required value: name or generateName is required", "spec.ports|FieldValueRequired|Required value"}},
		{name: "bad label and bad port on update", old: svc("web"),
			obj: svc("web", func(s *corev1.Service) {
				s.Labels = map[string]string{"app": "bad value"}
				s.Spec.Ports[0].Protocol = "ICMP"
			}),
			want: []string{"metadata.labels|FieldValueInvalid", "metadata.labels|FieldValueInvalid", "metadata.labels|FieldValueInvalid",
				"metadata.labels|FieldValueInvalid", "spec.ports[0].protocol|FieldValueNotSupported"}},
		{name: "pod bad name and no image", obj: pod("web_1", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }),
			want: []string{"metadata.name|FieldValueInvalid", "spec.containers[0].image|FieldValueRequired|Required value"}},
		{name: "pod bad label and no image on update", old: pod("web"),
			obj: pod("web", func(p *corev1.Pod) { p.Labels = map[string]string{"-bad": "x"}; p.Spec.Containers[0].Image = "" }),
			want: []string{"metadata.labels|FieldValueInvalid", "metadata.labels|FieldValueInvalid", "metadata.labels|FieldValueInvalid",
				"metadata.labels|FieldValueInvalid", "spec.containers[0].image|FieldValueRequired"}},
		{name: "endpointslice bad name and no addressType", obj: slice("Web_1", func(es *discoveryv1.EndpointSlice) { es.AddressType = "" }),
			want: []string{"metadata.name|FieldValueInvalid", "addressType|FieldValueRequired|Required value"}},
		{name: "endpoints bad name and port 0", obj: &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "Web_1", Namespace: "default"},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.244.1.2"}}, Ports: []corev1.EndpointPort{{Port: 0}}}}},
			want: []string{"metadata.name|FieldValueInvalid", "subsets[0].ports[0].port|FieldValueInvalid"}},
		{name: "node bad name and bad podCIDR", obj: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "Node_1"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.0.0/33"}},
			want: []string{"metadata.name|FieldValueInvalid", "spec.podCIDRs[0]|FieldValueInvalid"}},
		{name: "namespace bad name and bad label", obj: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "Team_1", Labels: map[string]string{"a": "b c"}}},
			want: []string{"metadata.name|FieldValueInvalid", "metadata.labels|FieldValueInvalid"}},
		{name: "invalid label key", obj: svc("web", func(s *corev1.Service) { s.Labels = map[string]string{"-bad": "x"} }),
			want: []string{"metadata.labels|FieldValueInvalid"}},
		{name: "invalid label value", obj: svc("web", func(s *corev1.Service) { s.Labels = map[string]string{"app": "bad value"} }),
			want: []string{"metadata.labels|FieldValueInvalid"}},
		{name: "invalid annotation key", obj: svc("web", func(s *corev1.Service) { s.Annotations = map[string]string{"a/b/c": "x"} }),
			want: []string{"metadata.annotations|FieldValueInvalid"}},
		{name: "no ports", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports = nil }),
			want: []string{"spec.ports|FieldValueRequired|Required value"}},
		{name: "port 0", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0; s.Spec.Ports[0].TargetPort = intstr.FromInt32(80) }),
			want: []string{"spec.ports[0].port|FieldValueInvalid|Invalid value: 0: must be between 1 and 65535, inclusive"}},
		{name: "port 70000", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports[0].Port = 70000 }),
			want: []string{
				"spec.ports[0].port|FieldValueInvalid|Invalid value: 70000: must be between 1 and 65535, inclusive",
				"spec.ports[0].targetPort|FieldValueInvalid|Invalid value: 70000: must be between 1 and 65535, inclusive",
			}},
		{name: "targetPort number out of range", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(65536) }),
			want: []string{"spec.ports[0].targetPort|FieldValueInvalid|Invalid value: 65536: must be between 1 and 65535, inclusive"}},
		{name: "targetPort name not IANA_SVC_NAME", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("http_port") }),
			want: []string{"spec.ports[0].targetPort|FieldValueInvalid"}},
		{name: "two ports without names", obj: svc("web", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Port: 80}, {Port: 443}}
		}), want: []string{"spec.ports[0].name|FieldValueRequired|Required value", "spec.ports[1].name|FieldValueRequired|Required value"}},
		{name: "duplicate port names", obj: svc("web", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "http", Port: 8080}}
		}), want: []string{`spec.ports[1].name|FieldValueDuplicate|Duplicate value: "http"`}},
		{name: "port name not DNS-1123 label", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports[0].Name = "HTTP" }),
			want: []string{"spec.ports[0].name|FieldValueInvalid"}},
		{name: "duplicate port and protocol", obj: svc("web", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80}, {Name: "b", Port: 80, TargetPort: intstr.FromInt32(8080)}}
		}), want: []string{"spec.ports[1]|FieldValueDuplicate"}},
		{name: "unsupported protocol", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }),
			want: []string{`spec.ports[0].protocol|FieldValueNotSupported|Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`}},
		{name: "nodePort on a ClusterIP service", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30100 }),
			want: []string{"spec.ports[0].nodePort|FieldValueForbidden|Forbidden: may not be used when `type` is 'ClusterIP'"}},
		{name: "nodePort outside the range", obj: svc("web", nodePort, func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 8080 }),
			want: []string{"spec.ports[0].nodePort|FieldValueInvalid|" + portRangeMsg}},
		{name: "nodePort already allocated", obj: svc("web", nodePort, func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }),
			want: []string{"spec.ports[0].nodePort|FieldValueInvalid|Invalid value: 30080: provided port is already allocated"}},
		{name: "unsupported sessionAffinity", obj: svc("web", func(s *corev1.Service) { s.Spec.SessionAffinity = "Sticky" }),
			want: []string{`spec.sessionAffinity|FieldValueNotSupported|Unsupported value: "Sticky": supported values: "ClientIP", "None"`}},
		{name: "ClientIP timeout 0", obj: svc("web", func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](0)}}
		}), want: []string{"spec.sessionAffinityConfig.clientIP.timeoutSeconds|FieldValueInvalid|Invalid value: 0: must be greater than 0 and less than 86400"}},
		{name: "ClientIP timeout above a day", obj: svc("web", func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](86401)}}
		}), want: []string{"spec.sessionAffinityConfig.clientIP.timeoutSeconds|FieldValueInvalid|Invalid value: 86401: must be greater than 0 and less than 86400"}},
		{name: "ExternalName without externalName", obj: svc("web", externalName("")),
			want: []string{"spec.externalName|FieldValueRequired|Required value"}},
		{name: "ExternalName not a DNS-1123 subdomain", obj: svc("web", externalName("bad_name.example.com")),
			want: []string{"spec.externalName|FieldValueInvalid"}},
		{name: "ExternalName with a clusterIP", obj: svc("web", externalName("www.example.com"), func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.5" }),
			want: []string{"spec.clusterIPs|FieldValueForbidden|Forbidden: may not be set for ExternalName services"}},
		{name: "clusterIP None on a NodePort service", obj: svc("web", nodePort, func(s *corev1.Service) { s.Spec.ClusterIP = "None" }),
			want: []string{`spec.clusterIPs[0]|FieldValueInvalid|Invalid value: "None": may not be set to 'None' for NodePort services`}},
		{name: "clusterIP None on a LoadBalancer service", obj: svc("web", loadBalancer, func(s *corev1.Service) { s.Spec.ClusterIP = "None" }),
			want: []string{`spec.clusterIPs[0]|FieldValueInvalid|Invalid value: "None": may not be set to 'None' for LoadBalancer services`}},
		{name: "clusterIP not an IP", obj: svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.300.1" }),
			want: []string{`spec.clusterIPs[0]|FieldValueInvalid|Invalid value: "10.96.300.1": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`}},
		{name: "clusterIP outside the service CIDR", obj: svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "192.168.0.10" }),
			want: []string{`spec.clusterIPs|FieldValueInvalid|Invalid value: ["192.168.0.10"]: failed to allocate IP 192.168.0.10: the provided IP (192.168.0.10) is not in the valid range. The range of valid IPs is 10.96.0.0/12`}},
		{name: "clusterIP is the network address", obj: svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.0" }),
			want: []string{`spec.clusterIPs|FieldValueInvalid|Invalid value: ["10.96.0.0"]: failed to allocate IP 10.96.0.0: the provided IP (10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/12`}},
		{name: "clusterIP already allocated", obj: svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.100" }),
			want: []string{`spec.clusterIPs|FieldValueInvalid|Invalid value: ["10.96.0.100"]: failed to allocate IP 10.96.0.100: provided IP is already allocated`}},
		{name: "IPv6 clusterIP on an IPv4 cluster", obj: svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "fd00::10" }),
			want: []string{`spec.clusterIPs[0]|FieldValueInvalid|Invalid value: ["fd00::10"]: IPv6 is not configured on this cluster`}},
		{name: "RequireDualStack on a single-stack cluster", obj: svc("web", func(s *corev1.Service) {
			s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		}), want: []string{`spec.ipFamilyPolicy|FieldValueInvalid|Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services`}},
		{name: "clusterIPs not matching clusterIP", obj: svc("web", func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.5.5"
			s.Spec.ClusterIPs = []string{"10.96.5.6"}
		}), want: []string{`spec.clusterIPs|FieldValueInvalid|Invalid value: ["10.96.5.6"]: first value must match ` + "`clusterIP`"}},
		{name: "invalid selector", obj: svc("web", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "my app"} }),
			want: []string{"spec.selector|FieldValueInvalid"}},
		{name: "externalTrafficPolicy on ClusterIP", obj: svc("web", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }),
			want: []string{`spec.externalTrafficPolicy|FieldValueInvalid|Invalid value: "Local": may only be set for externally-accessible services`}},
		{name: "unsupported externalTrafficPolicy", obj: svc("web", nodePort, func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = "Nearest" }),
			want: []string{`spec.externalTrafficPolicy|FieldValueNotSupported|Unsupported value: "Nearest": supported values: "Cluster", "Local"`}},
		{name: "unsupported internalTrafficPolicy", obj: svc("web", func(s *corev1.Service) {
			s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicy("Node"))
		}), want: []string{`spec.internalTrafficPolicy|FieldValueNotSupported|Unsupported value: "Node": supported values: "Cluster", "Local"`}},
		{name: "loadBalancerSourceRanges on ClusterIP", obj: svc("web", func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/8"} }),
			want: []string{"spec.LoadBalancerSourceRanges|FieldValueForbidden|Forbidden: may only be used when `type` is 'LoadBalancer'"}},
		{name: "invalid loadBalancerSourceRanges", obj: svc("web", loadBalancer, func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/33"} }),
			want: []string{"spec.LoadBalancerSourceRanges[0]|FieldValueInvalid"}},
		{name: "allocateLoadBalancerNodePorts on NodePort", obj: svc("web", nodePort, func(s *corev1.Service) { s.Spec.AllocateLoadBalancerNodePorts = ptr.To(false) }),
			want: []string{"spec.allocateLoadBalancerNodePorts|FieldValueForbidden|Forbidden: may only be used when `type` is 'LoadBalancer'"}},
		{name: "loadBalancerIP outside the pool", obj: svc("web", loadBalancer, func(s *corev1.Service) { s.Spec.LoadBalancerIP = "192.168.1.1" }),
			want: []string{`spec.loadBalancerIP|FieldValueInvalid|Invalid value: "192.168.1.1": failed to allocate IP 192.168.1.1: the provided IP (192.168.1.1) is not in the valid range. The range of valid IPs is 172.29.255.0/24`}},
		{name: "externalIP not an IP", obj: svc("web", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"example.com"} }),
			want: []string{"spec.externalIPs[0]|FieldValueInvalid"}},
		{name: "loopback externalIP", obj: svc("web", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"127.0.0.1"} }),
			want: []string{`spec.externalIPs[0]|FieldValueInvalid|Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)`}},
		{name: "unsupported type", obj: svc("web", func(s *corev1.Service) { s.Spec.Type = "Ingress" }),
			want: []string{`spec.type|FieldValueNotSupported|Unsupported value: "Ingress": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`}},
		{name: "healthCheckNodePort without Local LoadBalancer", obj: svc("web", nodePort, func(s *corev1.Service) { s.Spec.HealthCheckNodePort = 30500 }),
			want: []string{"spec.healthCheckNodePort|FieldValueInvalid|Invalid value: 30500: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"}},
		{name: "invalid appProtocol", obj: svc("web", func(s *corev1.Service) { s.Spec.Ports[0].AppProtocol = ptr.To("a/b/c") }),
			want: []string{"spec.ports[0].appProtocol|FieldValueInvalid"}},
		{name: "clusterIP changed on update", old: svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.7.7" }),
			obj:  svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.7.8" }),
			want: []string{`spec.clusterIPs[0]|FieldValueInvalid|Invalid value: ["10.96.7.8"]: may not change once set`}},
		{name: "clusterIP changed to None on update", old: svc("web"),
			obj:  svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "None" }),
			want: []string{`spec.clusterIPs[0]|FieldValueInvalid|Invalid value: ["None"]: may not change once set`}},

		{name: "pod name not a DNS subdomain", obj: pod("Web_0"),
			want: []string{"metadata.name|FieldValueInvalid"}},
		{name: "pod without containers", obj: pod("web-0", func(p *corev1.Pod) { p.Spec.Containers = nil }),
			want: []string{"spec.containers|FieldValueRequired|Required value"}},
		{name: "container without name", obj: pod("web-0", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }),
			want: []string{"spec.containers[0].name|FieldValueRequired|Required value"}},
		{name: "duplicate container names", obj: pod("web-0", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "web", Image: "x"})
		}), want: []string{`spec.containers[1].name|FieldValueDuplicate|Duplicate value: "web"`}},
		{name: "container without image", obj: pod("web-0", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }),
			want: []string{"spec.containers[0].image|FieldValueRequired|Required value"}},
		{name: "containerPort 0", obj: pod("web-0", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 0 }),
			want: []string{"spec.containers[0].ports[0].containerPort|FieldValueRequired|Required value"}},
		{name: "containerPort 70000", obj: pod("web-0", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 70000 }),
			want: []string{"spec.containers[0].ports[0].containerPort|FieldValueInvalid|Invalid value: 70000: must be between 1 and 65535, inclusive"}},
		{name: "unsupported restartPolicy", obj: pod("web-0", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }),
			want: []string{`spec.restartPolicy|FieldValueNotSupported|Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"`}},
		{name: "pod nodeName changed", old: pod("web-0", func(p *corev1.Pod) { p.Spec.NodeName = "node-1" }),
			obj:  pod("web-0", func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }),
			want: []string{"spec|FieldValueForbidden"}},
		{name: "pod container added", old: pod("web-0"),
			obj: pod("web-0", func(p *corev1.Pod) {
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "x"})
			}),
			want: []string{"spec.containers|FieldValueForbidden|Forbidden: pod updates may not add or remove containers"}},
		{name: "pod container port changed", old: pod("web-0"),
			obj:  pod("web-0", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 8080 }),
			want: []string{"spec|FieldValueForbidden"}},

		{name: "namespace name not a DNS-1123 label", obj: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team.a"}},
			want: []string{"metadata.name|FieldValueInvalid"}},
		{name: "node name not a DNS subdomain", obj: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "Node_1"}},
			want: []string{"metadata.name|FieldValueInvalid"}},
		{name: "node podCIDR invalid", obj: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/33"}},
			want: []string{"spec.podCIDRs[0]|FieldValueInvalid"}},
		{name: "node podCIDR changed", old: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24"}},
			obj:  &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.2.0/24"}},
			want: []string{`spec.podCIDRs|FieldValueForbidden|Forbidden: node updates may not change podCIDR except from "" to valid`}},

		{name: "endpoints loopback address", obj: &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "127.0.0.1"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}},
			want: []string{`subsets[0].addresses[0].ip|FieldValueInvalid|Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)`}},
		{name: "endpoints subset without addresses", obj: &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Subsets: []corev1.EndpointSubset{{Ports: []corev1.EndpointPort{{Port: 80}}}}},
			want: []string{"subsets[0]|FieldValueRequired|Required value: must specify `addresses` or `notReadyAddresses`"}},
		{name: "endpoints port 0", obj: &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.244.1.2"}}, Ports: []corev1.EndpointPort{{Port: 0}}}}},
			want: []string{"subsets[0].ports[0].port|FieldValueInvalid|Invalid value: 0: must be between 1 and 65535, inclusive"}},
		{name: "endpointslice without addressType", obj: slice("web-abc", func(es *discoveryv1.EndpointSlice) { es.AddressType = "" }),
			want: []string{"addressType|FieldValueRequired|Required value"}},
		{name: "endpointslice unsupported addressType", obj: slice("web-abc", func(es *discoveryv1.EndpointSlice) { es.AddressType = "MAC" }),
			want: []string{`addressType|FieldValueNotSupported|Unsupported value: "MAC": supported values: "FQDN", "IPv4", "IPv6"`}},
		{name: "endpointslice bad IPv4 address", obj: slice("web-abc", func(es *discoveryv1.EndpointSlice) { es.Endpoints[0].Addresses = []string{"10.244.1"} }),
			want: []string{`endpoints[0].addresses[0]|FieldValueInvalid|Invalid value: "10.244.1": must be a valid IPv4 address`}},
		{name: "endpointslice IPv6 address in an IPv4 slice", obj: slice("web-abc", func(es *discoveryv1.EndpointSlice) { es.Endpoints[0].Addresses = []string{"fd00::1"} }),
			want: []string{`endpoints[0].addresses[0]|FieldValueInvalid|Invalid value: "fd00::1": must be a valid IPv4 address`}},
		{name: "endpointslice endpoint without addresses", obj: slice("web-abc", func(es *discoveryv1.EndpointSlice) { es.Endpoints[0].Addresses = nil }),
			want: []string{"endpoints[0].addresses|FieldValueRequired|Required value: must contain at least 1 address"}},
		{name: "endpointslice port 0 and bad protocol", obj: slice("web-abc", func(es *discoveryv1.EndpointSlice) {
			es.Ports[0].Port = ptr.To[int32](0)
			es.Ports[0].Protocol = ptr.To(corev1.Protocol("ICMP"))
		}), want: []string{
			`ports[0].protocol|FieldValueNotSupported|Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`,
			"ports[0].port|FieldValueInvalid|Invalid value: 0: must be between 1 and 65535, inclusive",
		}},
		{name: "endpointslice duplicate port names", obj: slice("web-abc", func(es *discoveryv1.EndpointSlice) {
			es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptr.To("http"), Port: ptr.To[int32](81)})
		}), want: []string{`ports[1].name|FieldValueDuplicate|Duplicate value: "http"`}},
		{name: "endpointslice addressType changed", old: slice("web-abc"),
			obj: slice("web-abc", func(es *discoveryv1.EndpointSlice) {
				es.AddressType = discoveryv1.AddressTypeFQDN
				es.Endpoints[0].Addresses = []string{"web.example.com"}
			}),
			want: []string{`addressType|FieldValueInvalid|Invalid value: "FQDN": field is immutable`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := seeded(t)
			var err error
			before := snapshot(a)
			if tt.old != nil {
				old := mustCreate(t, a, tt.old)
				before = snapshot(a)
				_, _, err = doUpdate(t, a, old, tt.obj)
			} else {
				_, _, err = doCreate(t, a, tt.obj)
			}
			if err == nil {
				t.Fatal("admitted, want 422 Invalid")
			}
			se := statusOf(t, err)
			if se.ErrStatus.Code != http.StatusUnprocessableEntity || se.ErrStatus.Reason != metav1.StatusReasonInvalid {
				t.Fatalf("status %d %s (%v), want 422 Invalid", se.ErrStatus.Code, se.ErrStatus.Reason, err)
			}
			got := causeStrings(se)
			if len(got) != len(tt.want) {
				t.Fatalf("causes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i, w := range tt.want {
				g := got[i]
				if strings.Count(w, "|") == 1 { // no message given: compare field and type
					g = g[:strings.LastIndex(g, "|")]
				}
				if g != w {
					t.Errorf("cause %d:\n got %s\nwant %s", i, got[i], w)
				}
			}
			if diff := cmp.Diff(before, snapshot(a)); diff != "" {
				t.Errorf("a refused write changed the allocators (-before +after):\n%s", diff)
			}
		})
	}
}
