package store

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Object is any stored Kubernetes object (all k8s.io/api types satisfy it).
type Object interface {
	metav1.Object
	runtime.Object
}

// Resource describes one stored resource type; one bbolt bucket per resource,
// named Resource.Name.
type Resource struct {
	Name       string // plural, e.g. "services", "endpointslices" (bucket name, URL segment)
	Kind       string // "Service"
	ListKind   string // "ServiceList"
	Group      string // "" for core, "discovery.k8s.io"
	Version    string // "v1"
	Namespaced bool
	New        func() Object         // new empty typed object, e.g. &corev1.Service{}
	NewList    func() runtime.Object // new empty typed list, e.g. &corev1.ServiceList{}

	// StatusSubresource reports whether the resource has a "status"
	// subresource (pods, services, nodes, namespaces): updates of the main
	// resource keep the stored status, updates of "status" take only the status.
	StatusSubresource bool
	// FieldLabels lists the field selector keys List accepts for this resource,
	// sorted. Any other key is refused with ErrInvalidSelector.
	FieldLabels []string

	// prepareForCreate resets what kube-apiserver's strategy resets on create
	// (e.g. a Service's status); nil = nothing.
	prepareForCreate func(obj Object)
	// prepareForUpdate restores what kube-apiserver's strategy does not let a
	// main-resource update change (a Namespace's spec.finalizers); nil = nothing.
	prepareForUpdate func(obj, old Object)
	// gracePeriod, when set, makes the kind's deletions graceful (see
	// DeleteWithOptions): it returns the grace period in seconds a delete
	// requesting requested (nil = the object's own) gets, as kube-apiserver's
	// CheckGracefulDelete of the kind's strategy does. nil = deleted at once.
	gracePeriod func(obj Object, requested *int64) int64
	// fields maps the resource-specific field selector keys to their values.
	fields map[string]func(obj Object) string
	// tracksGeneration says whether kube-apiserver's strategy for this kind
	// maintains metadata.generation: EndpointSlices do, and Pods since the
	// pod-generation feature (KEP-5067, 1.33); Services, Nodes, Namespaces
	// and Endpoints never get one (kubectl -o yaml shows none).
	tracksGeneration bool
	// labelsBumpGeneration makes a label change bump generation
	// (EndpointSlice, as kube-apiserver's strategy does).
	labelsBumpGeneration bool
	// specFields are the names of the top-level struct fields whose change
	// bumps metadata.generation: every field except TypeMeta, ObjectMeta and Status.
	specFields []string
}

// GroupVersionKind returns the resource's group, version and kind.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// APIVersion returns the apiVersion string of the resource's objects: "v1" for
// the core group, "discovery.k8s.io/v1" otherwise.
func (r *Resource) APIVersion() string {
	return r.GroupVersionKind().GroupVersion().String()
}

// String returns the resource's name, for messages.
func (r *Resource) String() string {
	if r == nil {
		return "<all resources>"
	}
	return r.Name
}

// The registered resources.
var (
	Namespaces = newResource(&Resource{
		Name: "namespaces", Kind: "Namespace", ListKind: "NamespaceList", Version: "v1",
		New:               func() Object { return &corev1.Namespace{} },
		NewList:           func() runtime.Object { return &corev1.NamespaceList{} },
		StatusSubresource: true,
		prepareForCreate: func(obj Object) {
			ns := obj.(*corev1.Namespace)
			ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
			ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		},
		prepareForUpdate: func(obj, old Object) {
			obj.(*corev1.Namespace).Spec.Finalizers = slices.Clone(old.(*corev1.Namespace).Spec.Finalizers)
		},
		fields: map[string]func(Object) string{
			"status.phase": func(o Object) string { return string(o.(*corev1.Namespace).Status.Phase) },
		},
	})
	Nodes = newResource(&Resource{
		Name: "nodes", Kind: "Node", ListKind: "NodeList", Version: "v1",
		New:               func() Object { return &corev1.Node{} },
		NewList:           func() runtime.Object { return &corev1.NodeList{} },
		StatusSubresource: true,
		fields: map[string]func(Object) string{
			"spec.unschedulable": func(o Object) string { return strconv.FormatBool(o.(*corev1.Node).Spec.Unschedulable) },
		},
	})
	Services = newResource(&Resource{
		Name: "services", Kind: "Service", ListKind: "ServiceList", Version: "v1", Namespaced: true,
		New:               func() Object { return &corev1.Service{} },
		NewList:           func() runtime.Object { return &corev1.ServiceList{} },
		StatusSubresource: true,
		prepareForCreate: func(obj Object) {
			obj.(*corev1.Service).Status = corev1.ServiceStatus{}
		},
		fields: map[string]func(Object) string{
			"spec.clusterIP": func(o Object) string { return o.(*corev1.Service).Spec.ClusterIP },
			"spec.type":      func(o Object) string { return string(o.(*corev1.Service).Spec.Type) },
		},
	})
	Pods = newResource(&Resource{
		Name: "pods", Kind: "Pod", ListKind: "PodList", Version: "v1", Namespaced: true,
		New:               func() Object { return &corev1.Pod{} },
		NewList:           func() runtime.Object { return &corev1.PodList{} },
		StatusSubresource: true,
		tracksGeneration:  true,
		prepareForCreate: func(obj Object) {
			obj.(*corev1.Pod).Status = corev1.PodStatus{Phase: corev1.PodPending}
		},
		gracePeriod: podGracePeriod,
		fields: map[string]func(Object) string{
			"spec.nodeName":            func(o Object) string { return o.(*corev1.Pod).Spec.NodeName },
			"spec.restartPolicy":       func(o Object) string { return string(o.(*corev1.Pod).Spec.RestartPolicy) },
			"spec.schedulerName":       func(o Object) string { return o.(*corev1.Pod).Spec.SchedulerName },
			"spec.serviceAccountName":  func(o Object) string { return o.(*corev1.Pod).Spec.ServiceAccountName },
			"spec.hostNetwork":         func(o Object) string { return strconv.FormatBool(o.(*corev1.Pod).Spec.HostNetwork) },
			"status.phase":             func(o Object) string { return string(o.(*corev1.Pod).Status.Phase) },
			"status.podIP":             func(o Object) string { return o.(*corev1.Pod).Status.PodIP },
			"status.nominatedNodeName": func(o Object) string { return o.(*corev1.Pod).Status.NominatedNodeName },
		},
	})
	Endpoints = newResource(&Resource{
		Name: "endpoints", Kind: "Endpoints", ListKind: "EndpointsList", Version: "v1", Namespaced: true,
		New:     func() Object { return &corev1.Endpoints{} },
		NewList: func() runtime.Object { return &corev1.EndpointsList{} },
	})
	EndpointSlices = newResource(&Resource{
		Name: "endpointslices", Kind: "EndpointSlice", ListKind: "EndpointSliceList",
		Group: "discovery.k8s.io", Version: "v1", Namespaced: true,
		New:                  func() Object { return &discoveryv1.EndpointSlice{} },
		NewList:              func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
		tracksGeneration:     true,
		labelsBumpGeneration: true,
	})
)

var allResources = []*Resource{Namespaces, Nodes, Services, Pods, Endpoints, EndpointSlices}

// Resources returns the registered resources, namespaces first (a fresh slice
// the caller may modify).
func Resources() []*Resource { return slices.Clone(allResources) }

// ResourceByName returns the registered resource with the given plural name, or
// nil if there is none.
func ResourceByName(name string) *Resource {
	for _, r := range allResources {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// newResource fills the derived fields of r: the field selector keys and the
// fields whose change bumps generation.
func newResource(r *Resource) *Resource {
	r.FieldLabels = []string{"metadata.name"}
	if r.Namespaced {
		r.FieldLabels = append(r.FieldLabels, "metadata.namespace")
	}
	for k := range r.fields {
		r.FieldLabels = append(r.FieldLabels, k)
	}
	slices.Sort(r.FieldLabels)
	t := reflect.TypeOf(r.New()).Elem()
	for i := range t.NumField() {
		switch n := t.Field(i).Name; n {
		case "TypeMeta", "ObjectMeta", "Status":
		default:
			if r.tracksGeneration {
				r.specFields = append(r.specFields, n)
			}
		}
	}
	if _, ok := t.FieldByName("Status"); ok != r.StatusSubresource {
		panic(fmt.Sprintf("store: resource %s: StatusSubresource=%v but Status field present=%v", r.Name, r.StatusSubresource, ok))
	}
	return r
}

// objectFields presents an object's field selector values as fields.Fields,
// computed on demand (no map is built per object).
type objectFields struct {
	res *Resource
	obj Object
}

var _ fields.Fields = objectFields{}

// Has reports whether the field is a selector key of the resource.
func (f objectFields) Has(field string) bool {
	_, ok := slices.BinarySearch(f.res.FieldLabels, field)
	return ok
}

// Get returns the field's value, "" for an unsupported key.
func (f objectFields) Get(field string) string {
	switch field {
	case "metadata.name":
		return f.obj.GetName()
	case "metadata.namespace":
		if f.res.Namespaced {
			return f.obj.GetNamespace()
		}
		return ""
	}
	if get := f.res.fields[field]; get != nil {
		return get(f.obj)
	}
	return ""
}

// BuildList returns a new typed list (res.NewList) holding objs as its items,
// with apiVersion, kind (ListKind) and metadata.resourceVersion set, ready to
// be encoded as the body of a List response. objs must be objects of r.
func (r *Resource) BuildList(objs []Object, rv uint64) (runtime.Object, error) {
	list := r.NewList()
	items := make([]runtime.Object, len(objs))
	for i, o := range objs {
		items[i] = o
	}
	if err := meta.SetList(list, items); err != nil {
		return nil, fmt.Errorf("build %s: %w", r.ListKind, err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", r.ListKind, err)
	}
	lm.SetResourceVersion(strconv.FormatUint(rv, 10))
	list.GetObjectKind().SetGroupVersionKind(r.GroupVersionKind().GroupVersion().WithKind(r.ListKind))
	return list, nil
}

// setTypeMeta sets apiVersion and kind of obj from r.
func (r *Resource) setTypeMeta(obj Object) {
	obj.GetObjectKind().SetGroupVersionKind(r.GroupVersionKind())
}

// copyStatus sets dst's status to a deep copy of src's. Both must be objects
// of r, and r must have a status subresource.
func (r *Resource) copyStatus(dst, src Object) {
	c := src.DeepCopyObject()
	reflect.ValueOf(dst).Elem().FieldByName("Status").Set(reflect.ValueOf(c).Elem().FieldByName("Status"))
}

// specChanged reports whether the change from old to cur bumps
// metadata.generation: a change of any top-level field but metadata and
// status (for EndpointSlices, also of labels), compared semantically (nil and
// empty are equal). It is always false for kinds without generation.
func (r *Resource) specChanged(old, cur Object) bool {
	if !r.tracksGeneration {
		return false
	}
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(cur).Elem()
	for _, f := range r.specFields {
		if !equality.Semantic.DeepEqual(ov.FieldByName(f).Interface(), nv.FieldByName(f).Interface()) {
			return true
		}
	}
	return r.labelsBumpGeneration && !equality.Semantic.DeepEqual(old.GetLabels(), cur.GetLabels())
}
