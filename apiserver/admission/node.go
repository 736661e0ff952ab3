package admission

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var supportedTaintEffects = []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}

// DefaultNode keeps spec.podCIDR and spec.podCIDRs in sync the way kube's
// v1 conversion does (podCIDR is podCIDRs[0]).
func DefaultNode(node *corev1.Node) {
	spec := &node.Spec
	if spec.PodCIDR != "" && len(spec.PodCIDRs) == 0 {
		spec.PodCIDRs = []string{spec.PodCIDR}
	}
	if spec.PodCIDR == "" && len(spec.PodCIDRs) > 0 {
		spec.PodCIDR = spec.PodCIDRs[0]
	}
}

// ValidateNode is kube-apiserver's ValidateNode minus resource quantities:
// metadata (DNS-1123 subdomain name, no namespace), podCIDRs (valid, at most
// one per family, no duplicates) and taints. As in kube, taint errors are
// reported under metadata.taints.
func ValidateNode(node *corev1.Node) field.ErrorList {
	allErrs := validateMetaCreate(&node.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	return append(allErrs, validateNodeSpec(node)...)
}

func validateNodeSpec(node *corev1.Node) field.ErrorList {
	var allErrs field.ErrorList
	if len(node.Spec.Taints) > 0 {
		allErrs = append(allErrs, validateNodeTaints(node.Spec.Taints, field.NewPath("metadata", "taints"))...)
	}
	podCIDRsPath := field.NewPath("spec", "podCIDRs")
	valid := true
	for i, value := range node.Spec.PodCIDRs {
		if errs := validateCIDR(podCIDRsPath.Index(i), value, nil); len(errs) > 0 {
			allErrs = append(allErrs, errs...)
			valid = false
		}
	}
	if valid && len(node.Spec.PodCIDRs) > 1 {
		a := netip.MustParsePrefix(node.Spec.PodCIDRs[0])
		b := netip.MustParsePrefix(node.Spec.PodCIDRs[1])
		if len(node.Spec.PodCIDRs) > 2 || a.Addr().Is4() == b.Addr().Is4() {
			allErrs = append(allErrs, field.Invalid(podCIDRsPath, node.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
		}
		seen := map[string]bool{}
		for i, value := range node.Spec.PodCIDRs {
			if seen[value] {
				allErrs = append(allErrs, field.Duplicate(podCIDRsPath.Index(i), value))
			}
			seen[value] = true
		}
	}
	return allErrs
}

// validateNodeTaints is kube's validateNodeTaints.
func validateNodeTaints(taints []corev1.Taint, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	unique := map[corev1.TaintEffect]map[string]bool{}
	for i, t := range taints {
		idxPath := fldPath.Index(i)
		allErrs = append(allErrs, metav1validation.ValidateLabelName(t.Key, idxPath.Child("key"))...)
		for _, msg := range utilvalidation.IsValidLabelValue(t.Value) {
			allErrs = append(allErrs, field.Invalid(idxPath.Child("value"), t.Value, msg))
		}
		switch {
		case t.Effect == "":
			allErrs = append(allErrs, field.Required(idxPath.Child("effect"), ""))
		case !has(supportedTaintEffects, t.Effect):
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("effect"), t.Effect, supportedTaintEffects))
		}
		if unique[t.Effect][t.Key] {
			dup := field.Duplicate(idxPath, t)
			dup.Detail = "taints must be unique by key and effect pair"
			allErrs = append(allErrs, dup)
			continue
		}
		if unique[t.Effect] == nil {
			unique[t.Effect] = map[string]bool{}
		}
		unique[t.Effect][t.Key] = true
	}
	return allErrs
}

// ValidateNodeUpdate is kube-apiserver's ValidateNodeUpdate minus resources:
// metadata update rules, no duplicate status addresses, podCIDRs and
// providerID that may only go from unset to set. As in kube, it does not
// check that the new Node is valid: kube's update strategy runs ValidateNode
// first, and so does the admitter.
func ValidateNodeUpdate(node, old *corev1.Node) field.ErrorList {
	allErrs := validateMetaUpdate(&node.ObjectMeta, &old.ObjectMeta)
	seen := map[corev1.NodeAddress]bool{}
	for i, a := range node.Status.Addresses {
		if seen[a] {
			allErrs = append(allErrs, field.Duplicate(field.NewPath("status", "addresses").Index(i), a))
		}
		seen[a] = true
	}
	if len(old.Spec.PodCIDRs) > 0 {
		changed := len(old.Spec.PodCIDRs) != len(node.Spec.PodCIDRs)
		for i := 0; !changed && i < len(old.Spec.PodCIDRs); i++ {
			changed = old.Spec.PodCIDRs[i] != node.Spec.PodCIDRs[i]
		}
		if changed {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "podCIDRs"), `node updates may not change podCIDR except from "" to valid`))
		}
	}
	if old.Spec.ProviderID != "" && old.Spec.ProviderID != node.Spec.ProviderID {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "providerID"), `node updates may not change providerID except from "" to valid`))
	}
	return allErrs
}

type nodeAdmitter struct{}

func (nodeAdmitter) create(node *corev1.Node) error {
	DefaultNode(node)
	return invalid(kindNode, node.Name, ValidateNode(node))
}

func (nodeAdmitter) update(node, old *corev1.Node) error {
	DefaultNode(node)
	allErrs := append(validateCommonFields(node, old, false), ValidateNode(node)...)
	return invalid(kindNode, node.Name, append(allErrs, ValidateNodeUpdate(node, old)...))
}
