package rest

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/svclab/svclab/apiserver/store"
)

// Server-side printing: the meta.k8s.io/v1 Table kubectl asks for with
// "Accept: application/json;as=Table;v=v1;g=meta.k8s.io", with the columns of
// kube-apiserver's printers (pkg/printers/internalversion) for the kinds
// svclab serves. Columns with Priority 1 are shown by `kubectl get -o wide`.

const none = "<none>"

var nameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name",
	Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]}

var ageColumn = metav1.TableColumnDefinition{Name: "Age", Type: "string",
	Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]}

func col(name, desc string, priority int32) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: "string", Description: desc, Priority: priority}
}

// printer is the table layout of one kind: its columns and a function that
// returns the cells of one object (all but Name and Age, which every kind has
// first and, except for Node, last).
type printer struct {
	columns []metav1.TableColumnDefinition
	cells   func(obj store.Object, age string) []any
}

var printers = map[string]printer{
	"Namespace": {
		columns: []metav1.TableColumnDefinition{nameColumn, col("Status", "The status of the namespace", 0), ageColumn},
		cells: func(obj store.Object, age string) []any {
			return []any{obj.GetName(), string(obj.(*corev1.Namespace).Status.Phase), age}
		},
	},
	"Node": {
		columns: []metav1.TableColumnDefinition{nameColumn, col("Status", "The status of the node", 0),
			col("Roles", "The roles of the node", 0), ageColumn, col("Version", "Kubelet Version reported by the node.", 0),
			col("Internal-IP", "List of internal IPs.", 1), col("External-IP", "List of external IPs.", 1),
			col("OS-Image", "OS image reported by the node.", 1), col("Kernel-Version", "Kernel version reported by the node.", 1),
			col("Container-Runtime", "Container runtime reported by the node.", 1)},
		cells: func(obj store.Object, age string) []any {
			n := obj.(*corev1.Node)
			return []any{n.Name, nodeStatus(n), nodeRoles(n), age, n.Status.NodeInfo.KubeletVersion,
				nodeAddress(n, corev1.NodeInternalIP), nodeAddress(n, corev1.NodeExternalIP),
				orUnknown(n.Status.NodeInfo.OSImage), orUnknown(n.Status.NodeInfo.KernelVersion),
				orUnknown(n.Status.NodeInfo.ContainerRuntimeVersion)}
		},
	},
	"Service": {
		columns: []metav1.TableColumnDefinition{nameColumn, col("Type", "The type of the service", 0),
			col("Cluster-IP", "The cluster IP of the service", 0), col("External-IP", "The external IPs of the service", 0),
			col("Port(s)", "The ports of the service", 0), ageColumn,
			col("Selector", "The label selector of the service", 1)},
		cells: func(obj store.Object, age string) []any {
			s := obj.(*corev1.Service)
			return []any{s.Name, string(s.Spec.Type), serviceClusterIP(s), serviceExternalIP(s), servicePorts(s), age,
				selectorString(s.Spec.Selector)}
		},
	},
	"Pod": {
		columns: []metav1.TableColumnDefinition{nameColumn, col("Ready", "The aggregate readiness state of this pod for accepting traffic.", 0),
			col("Status", "The aggregate status of the containers in this pod.", 0),
			col("Restarts", "The number of times the containers in this pod have been restarted.", 0), ageColumn,
			col("IP", "The IP address assigned to the pod", 1), col("Node", "The node that the pod is assigned to", 1),
			col("Nominated Node", "The node that the pod is nominated to run on", 1),
			col("Readiness Gates", "The readiness gates of the pod", 1)},
		cells: func(obj store.Object, age string) []any {
			p := obj.(*corev1.Pod)
			ready, restarts := 0, int32(0)
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Ready {
					ready++
				}
				restarts += cs.RestartCount
			}
			return []any{p.Name, fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), podStatus(p),
				strconv.Itoa(int(restarts)), age, orNone(p.Status.PodIP), orNone(p.Spec.NodeName),
				orNone(p.Status.NominatedNodeName), readinessGates(p)}
		},
	},
	"Endpoints": {
		columns: []metav1.TableColumnDefinition{nameColumn, col("Endpoints", "Endpoints of the endpoints", 0), ageColumn},
		cells: func(obj store.Object, age string) []any {
			return []any{obj.GetName(), endpointsString(obj.(*corev1.Endpoints)), age}
		},
	},
	"EndpointSlice": {
		columns: []metav1.TableColumnDefinition{nameColumn, col("AddressType", "The type of addresses in this slice", 0),
			col("Ports", "The ports of the slice", 0), col("Endpoints", "The addresses of the slice", 0), ageColumn},
		cells: func(obj store.Object, age string) []any {
			s := obj.(*discoveryv1.EndpointSlice)
			return []any{s.Name, string(s.AddressType), slicePorts(s), sliceEndpoints(s), age}
		},
	},
}

// includeObject returns the ?includeObject= policy of a Table request: None,
// Object, or Metadata (the default).
func includeObject(r *http.Request) string {
	switch v := r.URL.Query().Get("includeObject"); v {
	case "None", "Object":
		return v
	}
	return "Metadata"
}

// newTable prints objs of res as a Table at time now; rv (if not 0) becomes
// the table's resourceVersion. It does not modify objs.
func newTable(res *store.Resource, objs []store.Object, rv uint64, include string, now time.Time) *metav1.Table {
	p := printers[res.Kind]
	t := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"},
		ColumnDefinitions: p.columns,
		Rows:              []metav1.TableRow{},
	}
	if rv != 0 {
		t.ResourceVersion = strconv.FormatUint(rv, 10)
	}
	for _, obj := range objs {
		row := metav1.TableRow{Cells: p.cells(obj, age(obj, now))}
		switch include {
		case "Object":
			if obj.GetObjectKind().GroupVersionKind() != res.GroupVersionKind() {
				obj = obj.DeepCopyObject().(store.Object)
				setTypeMeta(res, obj)
			}
			row.Object = runtime.RawExtension{Object: obj}
		case "Metadata":
			pom := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}}
			pom.ObjectMeta = *objectMeta(obj)
			row.Object = runtime.RawExtension{Object: pom}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// objectMeta returns a copy of obj's metadata.
func objectMeta(obj store.Object) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{
		Name: obj.GetName(), GenerateName: obj.GetGenerateName(), Namespace: obj.GetNamespace(),
		UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration(),
		CreationTimestamp: obj.GetCreationTimestamp(), DeletionTimestamp: obj.GetDeletionTimestamp(),
		Labels: obj.GetLabels(), Annotations: obj.GetAnnotations(), OwnerReferences: obj.GetOwnerReferences(),
		Finalizers: obj.GetFinalizers(),
	}
}

func age(obj store.Object, now time.Time) string {
	ts := obj.GetCreationTimestamp()
	if ts.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(ts.Time))
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

func selectorString(sel map[string]string) string {
	if len(sel) == 0 {
		return none
	}
	return labels.FormatLabels(sel)
}

func serviceClusterIP(s *corev1.Service) string {
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		return none
	}
	return orNone(s.Spec.ClusterIP)
}

func serviceExternalIP(s *corev1.Service) string {
	switch s.Spec.Type {
	case corev1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			switch {
			case in.IP != "":
				ips = append(ips, in.IP)
			case in.Hostname != "":
				ips = append(ips, in.Hostname)
			}
		}
		ips = append(ips, s.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	default:
		if len(s.Spec.ExternalIPs) == 0 {
			return none
		}
		return strings.Join(s.Spec.ExternalIPs, ",")
	}
}

func servicePorts(s *corev1.Service) string {
	if len(s.Spec.Ports) == 0 {
		return none
	}
	parts := make([]string, len(s.Spec.Ports))
	for i, p := range s.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if p.NodePort != 0 {
			parts[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, proto)
		} else {
			parts[i] = fmt.Sprintf("%d/%s", p.Port, proto)
		}
	}
	return strings.Join(parts, ",")
}

func podStatus(p *corev1.Pod) string {
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	if reason == "" {
		reason = "Unknown"
	}
	return reason
}

func readinessGates(p *corev1.Pod) string {
	if len(p.Spec.ReadinessGates) == 0 {
		return none
	}
	ok := 0
	for _, g := range p.Spec.ReadinessGates {
		for _, c := range p.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				ok++
			}
		}
	}
	return fmt.Sprintf("%d/%d", ok, len(p.Spec.ReadinessGates))
}

func nodeStatus(n *corev1.Node) string {
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			} else {
				status = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	return status
}

func nodeRoles(n *corev1.Node) string {
	var roles []string
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, "node-role.kubernetes.io/"):
			if r := strings.TrimPrefix(k, "node-role.kubernetes.io/"); r != "" {
				roles = append(roles, r)
			}
		case k == "kubernetes.io/role" && v != "":
			roles = append(roles, v)
		}
	}
	if len(roles) == 0 {
		return none
	}
	slices.Sort(roles)
	return strings.Join(slices.Compact(roles), ",")
}

func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	var out []string
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			out = append(out, a.Address)
		}
	}
	if len(out) == 0 {
		return none
	}
	return strings.Join(out, ",")
}

// moreList joins the first three items and counts the rest, like kube's
// printers ("a,b,c + 2 more...").
func moreList(items []string) string {
	if len(items) == 0 {
		return none
	}
	if len(items) <= 3 {
		return strings.Join(items, ",")
	}
	return strings.Join(items[:3], ",") + fmt.Sprintf(" + %d more...", len(items)-3)
}

func endpointsString(e *corev1.Endpoints) string {
	var items []string
	for _, ss := range e.Subsets {
		for _, a := range ss.Addresses {
			if len(ss.Ports) == 0 {
				items = append(items, a.IP)
				continue
			}
			for _, p := range ss.Ports {
				items = append(items, fmt.Sprintf("%s:%d", a.IP, p.Port))
			}
		}
	}
	return moreList(items)
}

func slicePorts(s *discoveryv1.EndpointSlice) string {
	if len(s.Ports) == 0 {
		return "<unset>"
	}
	var items []string
	for _, p := range s.Ports {
		if p.Port != nil {
			items = append(items, strconv.Itoa(int(*p.Port)))
		}
	}
	if len(items) == 0 {
		return "<unset>"
	}
	return moreList(items)
}

func sliceEndpoints(s *discoveryv1.EndpointSlice) string {
	var items []string
	for _, e := range s.Endpoints {
		items = append(items, e.Addresses...)
	}
	if len(items) == 0 {
		return "<unset>"
	}
	return moreList(items)
}
