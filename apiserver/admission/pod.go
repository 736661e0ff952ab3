package admission

import (
	"fmt"
	"strings"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultPod applies kube-apiserver's v1 defaults for a Pod: restartPolicy
// Always, dnsPolicy ClusterFirst, schedulerName default-scheduler,
// terminationGracePeriodSeconds 30, an empty securityContext,
// enableServiceLinks true, and per container imagePullPolicy (Always for an
// untagged or :latest image, else IfNotPresent), terminationMessagePath
// /dev/termination-log, terminationMessagePolicy File and port protocol TCP.
func DefaultPod(pod *corev1.Pod) {
	spec := &pod.Spec
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		g := int64(corev1.DefaultTerminationGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &g
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = corev1.DefaultSchedulerName
	}
	if spec.EnableServiceLinks == nil {
		t := corev1.DefaultEnableServiceLinks
		spec.EnableServiceLinks = &t
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		if imageTag(c.Image) == "latest" {
			c.ImagePullPolicy = corev1.PullAlways
		} else {
			c.ImagePullPolicy = corev1.PullIfNotPresent
		}
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
}

// imageTag returns an image reference's tag as kube's parsers.ParseImageName
// sees it: "latest" when there is neither tag nor digest, "" with a digest.
func imageTag(image string) string {
	if strings.Contains(image, "@") {
		return ""
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(name, ":"); i >= 0 {
		return name[i+1:]
	}
	return "latest"
}

var (
	supportedRestartPolicies = []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}
	supportedDNSPolicies     = []corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone}
)

// ValidatePod is the subset of kube-apiserver's ValidatePodCreate that matters
// to svclab: metadata (DNS-1123 subdomain name), at least one container,
// container names (DNS-1123 labels, unique) and images, container ports,
// restartPolicy, dnsPolicy and nodeName.
func ValidatePod(pod *corev1.Pod) field.ErrorList {
	allErrs := validateMetaCreate(&pod.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(allErrs, validatePodSpec(&pod.Spec, field.NewPath("spec"))...)
}

func validatePodSpec(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := map[string]bool{}
	allErrs = append(allErrs, validateContainers(spec.InitContainers, names, fldPath.Child("initContainers"))...)
	if len(spec.Containers) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("containers"), ""))
	}
	allErrs = append(allErrs, validateContainers(spec.Containers, names, fldPath.Child("containers"))...)

	switch p := spec.RestartPolicy; {
	case p == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("restartPolicy"), ""))
	case !has(supportedRestartPolicies, p):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("restartPolicy"), p, supportedRestartPolicies))
	}
	switch p := spec.DNSPolicy; {
	case p == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("dnsPolicy"), ""))
	case !has(supportedDNSPolicies, p):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("dnsPolicy"), p, supportedDNSPolicies))
	case p == corev1.DNSNone && spec.DNSConfig == nil:
		allErrs = append(allErrs, field.Required(fldPath.Child("dnsConfig"), fmt.Sprintf("must provide `dnsConfig` when `dnsPolicy` is %s", corev1.DNSNone)))
	}
	if spec.NodeName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(spec.NodeName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("nodeName"), spec.NodeName, msg))
		}
	}
	if spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("terminationGracePeriodSeconds"), *spec.TerminationGracePeriodSeconds, "must be greater than or equal to 0"))
	}
	return allErrs
}

func validateContainers(ctrs []corev1.Container, names map[string]bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i := range ctrs {
		c := &ctrs[i]
		idxPath := fldPath.Index(i)
		namePath := idxPath.Child("name")
		if c.Name == "" {
			allErrs = append(allErrs, field.Required(namePath, ""))
		} else {
			allErrs = append(allErrs, validateDNS1123Label(c.Name, namePath)...)
		}
		if names[c.Name] {
			allErrs = append(allErrs, field.Duplicate(namePath, c.Name))
		} else {
			names[c.Name] = true
		}
		if c.Image == "" {
			allErrs = append(allErrs, field.Required(idxPath.Child("image"), ""))
		}
		allErrs = append(allErrs, validateContainerPorts(c.Ports, idxPath.Child("ports"))...)
	}
	return allErrs
}

// validateContainerPorts is kube's validateContainerPorts.
func validateContainerPorts(ports []corev1.ContainerPort, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := map[string]bool{}
	for i, port := range ports {
		idxPath := fldPath.Index(i)
		if port.Name != "" {
			if errs := validatePortName(port.Name, idxPath.Child("name")); len(errs) != 0 {
				allErrs = append(allErrs, errs...)
			} else if names[port.Name] {
				allErrs = append(allErrs, field.Duplicate(idxPath.Child("name"), port.Name))
			} else {
				names[port.Name] = true
			}
		}
		if port.ContainerPort == 0 {
			allErrs = append(allErrs, field.Required(idxPath.Child("containerPort"), ""))
		} else {
			allErrs = append(allErrs, validatePortNum(port.ContainerPort, idxPath.Child("containerPort"))...)
		}
		if port.HostPort != 0 {
			allErrs = append(allErrs, validatePortNum(port.HostPort, idxPath.Child("hostPort"))...)
		}
		allErrs = append(allErrs, validateProtocol(port.Protocol, idxPath.Child("protocol"))...)
	}
	return allErrs
}

// podUpdatableFields is kube's list in the "pod updates may not change" message.
const podUpdatableFields = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`," +
	"`spec.tolerations` (only additions to existing tolerations)," +
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"

// ValidatePodUpdate is kube-apiserver's ValidatePodUpdate, reduced to what
// svclab's pods have: metadata update rules, the new pod's validity
// (ValidatePod: metadata, then spec), and
// spec immutability except container images, activeDeadlineSeconds,
// tolerations (additions only) and, as svclab's stand-in for the pods/binding
// subresource, spec.nodeName going from "" to a node (once set it is
// immutable like the rest).
func ValidatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	allErrs := validateMetaUpdate(&pod.ObjectMeta, &old.ObjectMeta)
	specPath := field.NewPath("spec")
	allErrs = append(allErrs, ValidatePod(pod)...)
	if len(pod.Spec.Containers) != len(old.Spec.Containers) {
		return append(allErrs, field.Forbidden(specPath.Child("containers"), "pod updates may not add or remove containers"))
	}
	if len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) {
		return append(allErrs, field.Forbidden(specPath.Child("initContainers"), "pod updates may not add or remove containers"))
	}
	munged := pod.Spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = old.Spec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = old.Spec.ActiveDeadlineSeconds
	munged.Tolerations = old.Spec.Tolerations
	if old.Spec.NodeName == "" {
		munged.NodeName = ""
	}
	if g := old.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 && munged.TerminationGracePeriodSeconds != nil && *munged.TerminationGracePeriodSeconds == 1 {
		munged.TerminationGracePeriodSeconds = old.Spec.TerminationGracePeriodSeconds
	}
	if !equality.Semantic.DeepEqual(*munged, old.Spec) {
		diff := cmp.Diff(old.Spec, *munged)
		allErrs = append(allErrs, field.Forbidden(specPath, fmt.Sprintf("pod updates may not change fields other than %s\n%v", podUpdatableFields, diff)))
	}
	for i, t := range old.Spec.Tolerations {
		if i >= len(pod.Spec.Tolerations) || !equality.Semantic.DeepEqual(t, pod.Spec.Tolerations[i]) {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("tolerations"), "existing toleration can not be modified except its tolerationSeconds"))
			break
		}
	}
	return allErrs
}

// podAdmitter admits Pods.
type podAdmitter struct{}

func (podAdmitter) create(pod *corev1.Pod) error {
	DefaultPod(pod)
	return invalid(kindPod, pod.Name, ValidatePod(pod))
}

func (podAdmitter) update(pod, old *corev1.Pod) error {
	DefaultPod(pod)
	return invalid(kindPod, pod.Name, append(validateCommonFields(pod, old, true), ValidatePodUpdate(pod, old)...))
}
