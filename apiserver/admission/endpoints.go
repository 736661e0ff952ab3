package admission

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultEndpoints sets protocol TCP on every port without one.
func DefaultEndpoints(ep *corev1.Endpoints) {
	for i := range ep.Subsets {
		for j := range ep.Subsets[i].Ports {
			if ep.Subsets[i].Ports[j].Protocol == "" {
				ep.Subsets[i].Ports[j].Protocol = corev1.ProtocolTCP
			}
		}
	}
}

// ValidateEndpoints is kube-apiserver's ValidateEndpoints: metadata, and per
// subset at least one address, valid non-special IPs, hostnames and node
// names, and valid ports (named when there are several).
func ValidateEndpoints(ep *corev1.Endpoints) field.ErrorList {
	allErrs := validateMetaCreate(&ep.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(allErrs, validateEndpointSubsets(ep.Subsets)...)
}

// validateEndpointSubsets is kube's validateEndpointSubsets.
func validateEndpointSubsets(subsets []corev1.EndpointSubset) field.ErrorList {
	var allErrs field.ErrorList
	subsetsPath := field.NewPath("subsets")
	for i := range subsets {
		ss := &subsets[i]
		idxPath := subsetsPath.Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			allErrs = append(allErrs, field.Required(idxPath, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j := range ss.Addresses {
			allErrs = append(allErrs, validateEndpointAddress(&ss.Addresses[j], idxPath.Child("addresses").Index(j))...)
		}
		for j := range ss.NotReadyAddresses {
			allErrs = append(allErrs, validateEndpointAddress(&ss.NotReadyAddresses[j], idxPath.Child("notReadyAddresses").Index(j))...)
		}
		for j := range ss.Ports {
			allErrs = append(allErrs, validateEndpointPort(&ss.Ports[j], len(ss.Ports) > 1, idxPath.Child("ports").Index(j))...)
		}
	}
	return allErrs
}

func validateEndpointAddress(a *corev1.EndpointAddress, fldPath *field.Path) field.ErrorList {
	allErrs := validateIP(fldPath.Child("ip"), a.IP, nil)
	if len(allErrs) == 0 {
		allErrs = append(allErrs, validateNonSpecialIP(a.IP, fldPath.Child("ip"))...)
	}
	if a.Hostname != "" {
		allErrs = append(allErrs, validateDNS1123Label(a.Hostname, fldPath.Child("hostname"))...)
	}
	if a.NodeName != nil {
		for _, msg := range apivalidation.NameIsDNSSubdomain(*a.NodeName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("nodeName"), *a.NodeName, msg))
		}
	}
	return allErrs
}

func validateEndpointPort(p *corev1.EndpointPort, requireName bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if requireName && p.Name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), ""))
	} else if p.Name != "" {
		allErrs = append(allErrs, validateDNS1123Label(p.Name, fldPath.Child("name"))...)
	}
	allErrs = append(allErrs, validatePortNum(p.Port, fldPath.Child("port"))...)
	allErrs = append(allErrs, validateProtocol(p.Protocol, fldPath.Child("protocol"))...)
	if p.AppProtocol != nil {
		allErrs = append(allErrs, validateQualifiedName(*p.AppProtocol, fldPath.Child("appProtocol"))...)
	}
	return allErrs
}

type endpointsAdmitter struct{}

func (endpointsAdmitter) create(ep *corev1.Endpoints) error {
	DefaultEndpoints(ep)
	return invalid(kindEndpoints, ep.Name, ValidateEndpoints(ep))
}

// update validates as kube's update strategy does: the common update checks,
// ValidateEndpoints (kube's ValidateEndpointsCreate), then
// ValidateEndpointsUpdate (metadata update rules and the subsets again).
func (endpointsAdmitter) update(ep, old *corev1.Endpoints) error {
	DefaultEndpoints(ep)
	allErrs := append(validateCommonFields(ep, old, true), ValidateEndpoints(ep)...)
	allErrs = append(allErrs, validateMetaUpdate(&ep.ObjectMeta, &old.ObjectMeta)...)
	return invalid(kindEndpoints, ep.Name, append(allErrs, validateEndpointSubsets(ep.Subsets)...))
}

var supportedAddressTypes = []discoveryv1.AddressType{discoveryv1.AddressTypeFQDN, discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}

// Limits of an EndpointSlice, as in kube.
const (
	maxSliceEndpoints = 1000
	maxSliceAddresses = 100
	maxSlicePorts     = 20000
)

// DefaultEndpointSlice applies the discovery/v1 defaults: every port gets a
// name ("") and protocol TCP when unset.
func DefaultEndpointSlice(es *discoveryv1.EndpointSlice) {
	for i := range es.Ports {
		p := &es.Ports[i]
		if p.Name == nil {
			empty := ""
			p.Name = &empty
		}
		if p.Protocol == nil {
			tcp := corev1.ProtocolTCP
			p.Protocol = &tcp
		}
	}
}

// ValidateEndpointSlice is kube-apiserver's ValidateEndpointSlice: metadata,
// addressType required and supported, 1-100 addresses per endpoint that are
// valid for the address type (and not loopback, link-local or unspecified),
// valid node names and hostnames, unique valid port names and supported
// protocols. svclab also refuses a port number outside 1-65535, which kube
// does not check here.
func ValidateEndpointSlice(es *discoveryv1.EndpointSlice) field.ErrorList {
	allErrs := validateMetaCreate(&es.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	typePath := field.NewPath("addressType")
	switch {
	case es.AddressType == "":
		allErrs = append(allErrs, field.Required(typePath, ""))
	case !has(supportedAddressTypes, es.AddressType):
		allErrs = append(allErrs, field.NotSupported(typePath, es.AddressType, supportedAddressTypes))
	}

	epsPath := field.NewPath("endpoints")
	if len(es.Endpoints) > maxSliceEndpoints {
		allErrs = append(allErrs, field.TooMany(epsPath, len(es.Endpoints), maxSliceEndpoints))
	} else {
		for i := range es.Endpoints {
			allErrs = append(allErrs, validateSliceEndpoint(&es.Endpoints[i], es.AddressType, epsPath.Index(i))...)
		}
	}

	portsPath := field.NewPath("ports")
	if len(es.Ports) > maxSlicePorts {
		return append(allErrs, field.TooMany(portsPath, len(es.Ports), maxSlicePorts))
	}
	names := map[string]bool{}
	for i, p := range es.Ports {
		idxPath := portsPath.Index(i)
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if name != "" {
			allErrs = append(allErrs, validateDNS1123Label(name, idxPath.Child("name"))...)
		}
		if names[name] {
			allErrs = append(allErrs, field.Duplicate(idxPath.Child("name"), name))
		}
		names[name] = true
		if p.Protocol == nil {
			allErrs = append(allErrs, field.Required(idxPath.Child("protocol"), ""))
		} else if !validProtocol(*p.Protocol) {
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("protocol"), *p.Protocol, supportedPortProtocols))
		}
		if p.Port != nil {
			allErrs = append(allErrs, validatePortNum(*p.Port, idxPath.Child("port"))...)
		}
		if p.AppProtocol != nil {
			allErrs = append(allErrs, validateQualifiedName(*p.AppProtocol, idxPath.Child("appProtocol"))...)
		}
	}
	return allErrs
}

func validateSliceEndpoint(ep *discoveryv1.Endpoint, addrType discoveryv1.AddressType, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	addrPath := fldPath.Child("addresses")
	if len(ep.Addresses) == 0 {
		allErrs = append(allErrs, field.Required(addrPath, "must contain at least 1 address"))
	} else if len(ep.Addresses) > maxSliceAddresses {
		allErrs = append(allErrs, field.TooMany(addrPath, len(ep.Addresses), maxSliceAddresses))
	}
	for i, a := range ep.Addresses {
		p := addrPath.Index(i)
		switch addrType {
		case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
			ip, err := netip.ParseAddr(a)
			if err != nil || ip.Is4() != (addrType == discoveryv1.AddressTypeIPv4) {
				msg := "must be a valid IPv4 address"
				if addrType == discoveryv1.AddressTypeIPv6 {
					msg = "must be a valid IPv6 address"
				}
				allErrs = append(allErrs, field.Invalid(p, a, msg))
				continue
			}
			allErrs = append(allErrs, validateNonSpecialIP(a, p)...)
		case discoveryv1.AddressTypeFQDN:
			allErrs = append(allErrs, utilvalidation.IsFullyQualifiedDomainName(p, a)...)
		}
	}
	if ep.NodeName != nil {
		for _, msg := range apivalidation.NameIsDNSSubdomain(*ep.NodeName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("nodeName"), *ep.NodeName, msg))
		}
	}
	if ep.Hostname != nil {
		allErrs = append(allErrs, validateDNS1123Label(*ep.Hostname, fldPath.Child("hostname"))...)
	}
	if len(ep.DeprecatedTopology) > 0 {
		allErrs = append(allErrs, metav1validation.ValidateLabels(ep.DeprecatedTopology, fldPath.Child("deprecatedTopology"))...)
	}
	return allErrs
}

// ValidateEndpointSliceUpdate is kube's: the new slice must be valid
// (metadata, then the rest) and addressType is immutable. Like kube's, it
// leaves the metadata update rules to the common update checks.
func ValidateEndpointSliceUpdate(es, old *discoveryv1.EndpointSlice) field.ErrorList {
	allErrs := ValidateEndpointSlice(es)
	if es.AddressType != old.AddressType {
		allErrs = append(allErrs, field.Invalid(field.NewPath("addressType"), es.AddressType, fieldImmutableErrorMsg))
	}
	return allErrs
}

type endpointSliceAdmitter struct{}

func (endpointSliceAdmitter) create(es *discoveryv1.EndpointSlice) error {
	DefaultEndpointSlice(es)
	return invalid(kindEndpointSlice, es.Name, ValidateEndpointSlice(es))
}

func (endpointSliceAdmitter) update(es, old *discoveryv1.EndpointSlice) error {
	DefaultEndpointSlice(es)
	return invalid(kindEndpointSlice, es.Name, append(validateCommonFields(es, old, true), ValidateEndpointSliceUpdate(es, old)...))
}
