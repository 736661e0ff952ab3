package admission

import (
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ImmortalNamespaces are the namespaces kube's NamespaceLifecycle admission
// plugin refuses to delete.
var ImmortalNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic}

// DefaultNamespace applies kube's defaults and canonicalization: the
// kubernetes.io/metadata.name label always equals the name, and a new
// Namespace gets the "kubernetes" finalizer and phase Active.
func DefaultNamespace(ns *corev1.Namespace, create bool) {
	if ns.Name != "" {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
	}
	if create {
		ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	}
	if ns.Status.Phase == "" {
		ns.Status.Phase = corev1.NamespaceActive
	}
}

// ValidateNamespace is kube-apiserver's ValidateNamespace: a DNS-1123 label
// name, no namespace, and standard or fully qualified finalizer names.
func ValidateNamespace(ns *corev1.Namespace) field.ErrorList {
	allErrs := validateMetaCreate(&ns.ObjectMeta, false, apivalidation.ValidateNamespaceName)
	for _, f := range ns.Spec.Finalizers {
		allErrs = append(allErrs, validateFinalizerName(string(f), field.NewPath("spec", "finalizers"))...)
	}
	return allErrs
}

func validateFinalizerName(name string, fldPath *field.Path) field.ErrorList {
	errs := validateQualifiedName(name, fldPath)
	if len(errs) == 0 && !strings.Contains(name, "/") && name != string(corev1.FinalizerKubernetes) {
		errs = append(errs, field.Invalid(fldPath, name, "name is neither a standard finalizer name nor is it fully qualified"))
	}
	return errs
}

type namespaceAdmitter struct{}

func (namespaceAdmitter) create(ns *corev1.Namespace) error {
	DefaultNamespace(ns, true)
	return invalid(kindNamespace, ns.Name, ValidateNamespace(ns))
}

// update keeps spec.finalizers (only the finalize subresource changes them in
// kube) and validates as kube's update strategy does: the common update
// checks, ValidateNamespace, then the metadata update rules.
func (namespaceAdmitter) update(ns, old *corev1.Namespace) error {
	ns.Spec.Finalizers = old.Spec.Finalizers
	DefaultNamespace(ns, false)
	allErrs := append(validateCommonFields(ns, old, false), ValidateNamespace(ns)...)
	return invalid(kindNamespace, ns.Name, append(allErrs, validateMetaUpdate(&ns.ObjectMeta, &old.ObjectMeta)...))
}

// delete refuses to delete default, kube-system and kube-public with kube's
// 403: namespaces "default" is forbidden: this namespace may not be deleted.
func (namespaceAdmitter) delete(old *corev1.Namespace) error {
	if has(ImmortalNamespaces, old.Name) {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, old.Name, errors.New("this namespace may not be deleted"))
	}
	return nil
}
