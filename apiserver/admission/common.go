package admission

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The GroupKinds named in 422 Invalid errors.
var (
	kindService       = schema.GroupKind{Kind: "Service"}
	kindPod           = schema.GroupKind{Kind: "Pod"}
	kindNode          = schema.GroupKind{Kind: "Node"}
	kindNamespace     = schema.GroupKind{Kind: "Namespace"}
	kindEndpoints     = schema.GroupKind{Kind: "Endpoints"}
	kindEndpointSlice = schema.GroupKind{Group: "discovery.k8s.io", Kind: "EndpointSlice"}
)

// invalid returns nil for an empty list, else kube-apiserver's 422 Invalid
// StatusError with one cause per error.
func invalid(kind schema.GroupKind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(kind, name, errs)
}

// fieldImmutableErrorMsg is kube's message for changed immutable fields.
const fieldImmutableErrorMsg = "field is immutable"

// supportedPortProtocols is kube's set of Service/container/endpoint port
// protocols, sorted as field.NotSupported lists them.
var supportedPortProtocols = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}

func validProtocol(p corev1.Protocol) bool {
	return p == corev1.ProtocolTCP || p == corev1.ProtocolUDP || p == corev1.ProtocolSCTP
}

// validateProtocol is kube's protocol check: required, then one of TCP/UDP/SCTP.
func validateProtocol(p corev1.Protocol, fldPath *field.Path) field.ErrorList {
	if p == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	if !validProtocol(p) {
		return field.ErrorList{field.NotSupported(fldPath, p, supportedPortProtocols)}
	}
	return nil
}

// validateMetaCreate is kube's ValidateObjectMeta for a new object.
func validateMetaCreate(meta *metav1.ObjectMeta, namespaced bool, nameFn apivalidation.ValidateNameFunc) field.ErrorList {
	return apivalidation.ValidateObjectMeta(meta, namespaced, nameFn, field.NewPath("metadata"))
}

// validateMetaUpdate is kube's ValidateObjectMetaUpdate (name, namespace,
// uid, creationTimestamp immutable; labels, annotations valid).
func validateMetaUpdate(meta, old *metav1.ObjectMeta) field.ErrorList {
	return apivalidation.ValidateObjectMetaUpdate(meta, old, field.NewPath("metadata"))
}

// validateCommonFields is the check kube-apiserver's generic registry runs on
// every update (main resource and status) before the kind's own
// ValidateXUpdate (rest.BeforeUpdate's validateCommonFields), both into one
// list: the generic metadata rules (a path-segment name, namespace for the
// scope, labels, annotations, finalizers, owner references), then the
// metadata update rules (resourceVersion set; name, namespace, uid,
// creationTimestamp unchanged; labels and annotations valid). As in kube, an
// invalid label is then listed in several causes (the Status message lists
// it once: field.ErrorList.ToAggregate drops repeats).
func validateCommonFields(meta, old metav1.Object, namespaced bool) field.ErrorList {
	errs := apivalidation.ValidateObjectMetaAccessor(meta, namespaced, path.ValidatePathSegmentName, field.NewPath("metadata"))
	return append(errs, apivalidation.ValidateObjectMetaAccessorUpdate(meta, old, field.NewPath("metadata"))...)
}

// validateDNS1123Label is kube's ValidateDNS1123Label.
func validateDNS1123Label(value string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsDNS1123Label(value) {
		errs = append(errs, field.Invalid(fldPath, value, msg))
	}
	return errs
}

// validateDNS1123Subdomain is kube's ValidateDNS1123Subdomain.
func validateDNS1123Subdomain(value string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsDNS1123Subdomain(value) {
		errs = append(errs, field.Invalid(fldPath, value, msg))
	}
	return errs
}

// validateQualifiedName is kube's ValidateQualifiedName (a label-key shaped value).
func validateQualifiedName(value string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsQualifiedName(value) {
		errs = append(errs, field.Invalid(fldPath, value, msg))
	}
	return errs
}

// validatePortNumOrName is kube's ValidatePortNumOrName (a targetPort or
// probe port): a number 1-65535 or an IANA_SVC_NAME.
func validatePortNumOrName(port intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch port.Type {
	case intstr.Int:
		for _, msg := range utilvalidation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(fldPath, port.IntValue(), msg))
		}
	case intstr.String:
		for _, msg := range utilvalidation.IsValidPortName(port.StrVal) {
			errs = append(errs, field.Invalid(fldPath, port.StrVal, msg))
		}
	default:
		errs = append(errs, field.InternalError(fldPath, fmt.Errorf("unknown type: %v", port.Type)))
	}
	return errs
}

// validatePortNum reports an invalid port number on fldPath (kube's
// IsValidPortNum wrapped in field.Invalid).
func validatePortNum(port int32, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsValidPortNum(int(port)) {
		errs = append(errs, field.Invalid(fldPath, port, msg))
	}
	return errs
}

// validateIP is kube's IsValidIPForLegacyField with strict validation (the
// StrictIPCIDRValidation default), accepting unchanged old values.
func validateIP(fldPath *field.Path, value string, oldValues []string) field.ErrorList {
	return utilvalidation.IsValidIPForLegacyField(fldPath, value, true, oldValues)
}

// validateCIDR is kube's IsValidCIDRForLegacyField with strict validation.
func validateCIDR(fldPath *field.Path, value string, oldValues []string) field.ErrorList {
	return utilvalidation.IsValidCIDRForLegacyField(fldPath, value, true, oldValues)
}

// validateNonSpecialIP is kube's ValidateNonSpecialIP: the IP must not be
// unspecified, loopback or link-local (used for endpoints and externalIPs).
func validateNonSpecialIP(value string, fldPath *field.Path) field.ErrorList {
	ip, err := netip.ParseAddr(value)
	if err != nil {
		return field.ErrorList{field.Invalid(fldPath, value, "must be a valid IP address")}
	}
	ip = ip.Unmap()
	var errs field.ErrorList
	if ip.IsUnspecified() {
		errs = append(errs, field.Invalid(fldPath, value, fmt.Sprintf("may not be unspecified (%v)", value)))
	}
	if ip.IsLoopback() {
		errs = append(errs, field.Invalid(fldPath, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if ip.IsLinkLocalUnicast() {
		errs = append(errs, field.Invalid(fldPath, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if ip.IsLinkLocalMulticast() {
		errs = append(errs, field.Invalid(fldPath, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return errs
}

// txn collects the undo steps of one Admit call, run in reverse order.
type txn struct{ undos []func() }

func (t *txn) add(f func()) { t.undos = append(t.undos, f) }

// revert runs the undo steps in reverse and forgets them.
func (t *txn) revert() {
	for i := len(t.undos) - 1; i >= 0; i-- {
		t.undos[i]()
	}
	t.undos = nil
}

// undoFunc returns the function handed to the store, or nil when there is
// nothing to undo.
func (t *txn) undoFunc() func() {
	if len(t.undos) == 0 {
		return nil
	}
	return t.revert
}

// validatePortName reports a port name that is not an IANA_SVC_NAME.
func validatePortName(name string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsValidPortName(name) {
		errs = append(errs, field.Invalid(fldPath, name, msg))
	}
	return errs
}
