package admission

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svclab/svclab/apiserver/store"
)

// ValidateNew returns what kube-apiserver's create validation reports for
// obj after v1 defaulting (its kind's ValidateX: metadata first, then the
// rest, in one list), working on a copy: obj is not changed and nothing is
// allocated.
//
// It is for new objects the store refuses before their Admitter can run, above
// all one with neither name nor generateName, which kube validates in full
// ("metadata.name: Required value: name or generateName is required" followed
// by the spec's errors). Every other create is validated by the Admitters.
// Because nothing is allocated, a Service's requested cluster IPs, node ports
// and IP families are not checked against the cluster (kube would refuse an
// unavailable one before validating, with that error alone). A type svclab
// does not admit gives nil.
func ValidateNew(obj store.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Service:
		svc := o.DeepCopy()
		svc.Status = corev1.ServiceStatus{}
		DefaultService(svc)
		normalizeClusterIPs(svc, nil)
		return ValidateService(svc)
	case *corev1.Pod:
		pod := o.DeepCopy()
		DefaultPod(pod)
		return ValidatePod(pod)
	case *corev1.Node:
		node := o.DeepCopy()
		DefaultNode(node)
		return ValidateNode(node)
	case *corev1.Namespace:
		ns := o.DeepCopy()
		DefaultNamespace(ns, true)
		return ValidateNamespace(ns)
	case *corev1.Endpoints:
		ep := o.DeepCopy()
		DefaultEndpoints(ep)
		return ValidateEndpoints(ep)
	case *discoveryv1.EndpointSlice:
		es := o.DeepCopy()
		DefaultEndpointSlice(es)
		return ValidateEndpointSlice(es)
	}
	return nil
}
