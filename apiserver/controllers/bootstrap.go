package controllers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

// The namespaces every cluster has.
var bootstrapNamespaces = []string{
	metav1.NamespaceDefault, corev1.NamespaceNodeLease, metav1.NamespacePublic, metav1.NamespaceSystem,
}

// Names of the objects Bootstrap owns.
const (
	kubernetesServiceName = "kubernetes"
	dnsServiceName        = "kube-dns"
	dnsAppLabel           = "k8s-app"
	dnsAppValue           = "kube-dns"
	coreDNSImage          = "registry.k8s.io/coredns/coredns:v1.12.0"
	nodeNamePrefix        = "node-"
)

// Bootstrap creates what a freshly installed kubeadm cluster has, and is
// idempotent (it runs on every start): the namespaces default, kube-system,
// kube-public and kube-node-lease; the nodes node-1…node-N (Ready, with their
// pod CIDR and InternalIP); the default/kubernetes Service (and its
// endpoints when cfg.APIServerAddress is set); the kube-system/kube-dns
// Service and the CoreDNS pods behind it (annotated svclab.io/workload=dns).
//
// Existing objects are converged, not replaced: nodes get their pod CIDR,
// addresses, labels and Ready condition re-asserted (user labels, taints and
// spec.unschedulable are kept); the kubernetes Service gets its ports and
// type reset, as kube-apiserver's reconciler does; kube-dns is only created
// when missing (user edits stick). Bootstrap's own nodes beyond cfg.Nodes are
// deleted with their pods, and CoreDNS pods it no longer wants are deleted.
func Bootstrap(ctx context.Context, st *store.Store, cfg BootstrapConfig) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &bootstrapper{st: st, cfg: cfg, log: log.With("component", "controllers", "controller", "bootstrap"), now: time.Now().Truncate(time.Second)}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"namespaces", b.namespaces},
		{"nodes", b.nodes},
		{"kubernetes service", b.kubernetesService},
		{"kubernetes endpoints", b.kubernetesEndpoints},
		{"kube-dns service", b.dnsService},
		{"coredns pods", b.dnsPods},
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("bootstrap %s: %w", s.name, err)
		}
	}
	b.log.Info("bootstrap done", "nodes", cfg.Nodes, "dnsReplicas", cfg.DNSReplicas)
	return nil
}

type bootstrapper struct {
	st  *store.Store
	cfg BootstrapConfig
	log *slog.Logger
	now time.Time
}

// ensure creates obj, or when it exists, converges the stored object with
// converge (main resource) and convergeStatus (status subresource); either
// may be nil. A converge function returns its argument unchanged (or the
// same content) when nothing needs to change, and the store then writes
// nothing.
func (b *bootstrapper) ensure(ctx context.Context, res *store.Resource, obj store.Object,
	converge, convergeStatus func(cur store.Object) (store.Object, error)) error {
	created, err := b.st.Create(ctx, res, obj)
	switch {
	case err == nil:
		b.log.Info("created", "resource", res.Name, "namespace", obj.GetNamespace(), "name", obj.GetName())
		if convergeStatus != nil { // Create resets status (as kube-apiserver does); write it now
			_, err = b.st.GuaranteedUpdate(ctx, res, created.GetNamespace(), created.GetName(),
				store.UpdateOptions{Subresource: "status"}, convergeStatus)
			if err != nil {
				return fmt.Errorf("write status of %s %q: %w", res.Name, obj.GetName(), err)
			}
		}
		return nil
	case !errors.Is(err, store.ErrAlreadyExists):
		return fmt.Errorf("create %s %q: %w", res.Name, obj.GetName(), err)
	}
	if converge != nil {
		if _, err := b.st.GuaranteedUpdate(ctx, res, obj.GetNamespace(), obj.GetName(), store.UpdateOptions{}, converge); err != nil {
			return fmt.Errorf("converge %s %q: %w", res.Name, obj.GetName(), err)
		}
	}
	if convergeStatus != nil {
		if _, err := b.st.GuaranteedUpdate(ctx, res, obj.GetNamespace(), obj.GetName(),
			store.UpdateOptions{Subresource: "status"}, convergeStatus); err != nil {
			return fmt.Errorf("converge status of %s %q: %w", res.Name, obj.GetName(), err)
		}
	}
	return nil
}

func (b *bootstrapper) namespaces(ctx context.Context) error {
	for _, name := range bootstrapNamespaces {
		ns := &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelMetadataName: name}},
			Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		}
		if err := b.ensure(ctx, store.Namespaces, ns, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// NodeName is the name of the n-th node bootstrap makes (n from 1): node-n.
func NodeName(n int) string { return nodeNamePrefix + strconv.Itoa(n) }

// bootstrapNodeIndex returns n for a node named node-n, or 0.
func bootstrapNodeIndex(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, nodeNamePrefix))
	if err != nil || !strings.HasPrefix(name, nodeNamePrefix) || n <= 0 || NodeName(n) != name {
		return 0
	}
	return n
}

func (b *bootstrapper) nodes(ctx context.Context) error {
	for n := 1; n <= b.cfg.Nodes; n++ {
		want := b.node(n)
		converge := func(cur store.Object) (store.Object, error) {
			node := cur.(*corev1.Node)
			node.Spec.PodCIDR = want.Spec.PodCIDR
			node.Spec.PodCIDRs = want.Spec.PodCIDRs
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			for k, v := range want.Labels {
				node.Labels[k] = v
			}
			if node.Annotations == nil {
				node.Annotations = map[string]string{}
			}
			for k, v := range want.Annotations {
				node.Annotations[k] = v
			}
			return node, nil
		}
		convergeStatus := func(cur store.Object) (store.Object, error) {
			node := cur.(*corev1.Node)
			status := want.Status
			status.Conditions = keepConditionTimes(want.Status.Conditions, node.Status.Conditions)
			if equality.Semantic.DeepEqual(status, node.Status) {
				return node, nil
			}
			node.Status = status
			return node, nil
		}
		if err := b.ensure(ctx, store.Nodes, want, converge, convergeStatus); err != nil {
			return err
		}
	}
	// Remove bootstrap nodes beyond N, and their pods (kube's pod GC deletes
	// pods bound to a node that no longer exists).
	objs, _, err := b.st.List(ctx, store.Nodes, "", store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for _, o := range objs {
		node := o.(*corev1.Node)
		if node.Annotations[AnnotationBootstrap] != "true" || bootstrapNodeIndex(node.Name) <= b.cfg.Nodes {
			continue
		}
		pods, _, err := b.st.List(ctx, store.Pods, "", store.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node.Name)})
		if err != nil {
			return fmt.Errorf("list pods of node %q: %w", node.Name, err)
		}
		for _, p := range pods {
			if _, err := b.st.Delete(ctx, store.Pods, p.GetNamespace(), p.GetName(), ""); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete pod %s/%s of removed node %q: %w", p.GetNamespace(), p.GetName(), node.Name, err)
			}
			b.log.Info("deleted pod of removed node", "pod", p.GetNamespace()+"/"+p.GetName(), "node", node.Name)
		}
		if _, err := b.st.Delete(ctx, store.Nodes, "", node.Name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete node %q: %w", node.Name, err)
		}
		b.log.Info("deleted node beyond --nodes", "node", node.Name, "nodes", b.cfg.Nodes)
	}
	return nil
}

// node returns the desired node-n.
func (b *bootstrapper) node(n int) *corev1.Node {
	name := NodeName(n)
	cidr := nodePodCIDR(b.cfg.PodCIDR, b.cfg.NodeCIDRMaskSize, n).String()
	ip := NodeIP(b.cfg.Underlay, n).String()
	t := metav1.NewTime(b.now)
	cond := func(typ corev1.NodeConditionType, st corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: st, LastHeartbeatTime: t, LastTransitionTime: t, Reason: reason, Message: msg}
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:  *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourcePods: *resource.NewQuantity(110, resource.DecimalSI),
	}
	if mem, ok := hostMemory(); ok {
		capacity[corev1.ResourceMemory] = mem
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"beta.kubernetes.io/arch": runtime.GOARCH,
				"beta.kubernetes.io/os":   "linux",
				corev1.LabelArchStable:    runtime.GOARCH,
				corev1.LabelHostname:      name,
				corev1.LabelOSStable:      "linux",
			},
			Annotations: map[string]string{
				"node.alpha.kubernetes.io/ttl": "0",
				AnnotationBootstrap:            "true",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: ip},
				{Type: corev1.NodeHostName, Address: name},
			},
			NodeInfo: corev1.NodeSystemInfo{
				KernelVersion:           hostKernelVersion(),
				OSImage:                 hostOSImage(),
				ContainerRuntimeVersion: "svclab://netns",
				KubeletVersion:          b.cfg.KubeletVersion,
				OperatingSystem:         "linux",
				Architecture:            runtime.GOARCH,
			},
		},
	}
}

// keepConditionTimes returns want with the timestamps of the conditions in
// cur that have the same type and status (a restart is not a transition).
func keepConditionTimes(want, cur []corev1.NodeCondition) []corev1.NodeCondition {
	out := make([]corev1.NodeCondition, len(want))
	for i, w := range want {
		out[i] = w
		for _, c := range cur {
			if c.Type == w.Type && c.Status == w.Status {
				out[i].LastTransitionTime = c.LastTransitionTime
				out[i].LastHeartbeatTime = c.LastHeartbeatTime
			}
		}
	}
	return out
}

// hostMemory returns MemTotal from /proc/meminfo (the lab's nodes share the
// host's memory).
func hostMemory() (resource.Quantity, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return resource.Quantity{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return resource.Quantity{}, false
			}
			return *resource.NewQuantity(kb*1024, resource.BinarySI), true
		}
	}
	return resource.Quantity{}, false
}

func hostKernelVersion() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func hostOSImage() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func (b *bootstrapper) kubernetesService(ctx context.Context) error {
	ip := b.cfg.KubernetesServiceIP.String()
	ports := []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(b.cfg.APIServerPort)}}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: kubernetesServiceName, Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"},
		},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			ClusterIP:             ip,
			ClusterIPs:            []string{ip},
			IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
			IPFamilyPolicy:        ptr.To(corev1.IPFamilyPolicySingleStack),
			SessionAffinity:       corev1.ServiceAffinityNone,
			InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
			Ports:                 ports,
		},
	}
	return b.ensure(ctx, store.Services, svc, func(cur store.Object) (store.Object, error) {
		s := cur.(*corev1.Service)
		if s.Spec.Type != corev1.ServiceTypeClusterIP || !equality.Semantic.DeepEqual(s.Spec.Ports, ports) {
			s.Spec.Type = corev1.ServiceTypeClusterIP
			s.Spec.Ports = ports
		}
		return s, nil
	}, nil)
}

// kubernetesEndpoints writes (or removes) the kubernetes Service's Endpoints
// and EndpointSlice as kube-apiserver's endpoint reconciler does: labels
// endpointslice.kubernetes.io/skip-mirror=true on the Endpoints and only
// kubernetes.io/service-name on the slice (no managed-by label), one ready
// endpoint per API server.
func (b *bootstrapper) kubernetesEndpoints(ctx context.Context) error {
	ns, name := metav1.NamespaceDefault, kubernetesServiceName
	if !b.cfg.APIServerAddress.IsValid() {
		for _, res := range []*store.Resource{store.Endpoints, store.EndpointSlices} {
			if _, err := b.st.Delete(ctx, res, ns, name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete %s %q: %w", res.Name, name, err)
			}
		}
		return nil
	}
	ip := b.cfg.APIServerAddress.String()
	port := b.cfg.APIServerPort
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: ip}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}},
	}
	err := b.ensure(ctx, store.Endpoints, ep, func(cur store.Object) (store.Object, error) {
		e := cur.(*corev1.Endpoints)
		e.Labels, e.Subsets = ep.Labels, ep.Subsets
		return e, nil
	}, nil)
	if err != nil {
		return err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	return b.ensure(ctx, store.EndpointSlices, slice, func(cur store.Object) (store.Object, error) {
		s := cur.(*discoveryv1.EndpointSlice)
		s.Labels, s.AddressType, s.Endpoints, s.Ports = slice.Labels, slice.AddressType, slice.Endpoints, slice.Ports
		return s, nil
	}, nil)
}

func (b *bootstrapper) dnsService(ctx context.Context) error {
	ip := b.cfg.DNSServiceIP.String()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: dnsServiceName, Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{
				dnsAppLabel:                     dnsAppValue,
				"kubernetes.io/cluster-service": "true",
				"kubernetes.io/name":            "CoreDNS",
			},
			Annotations: map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
		},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			Selector:              map[string]string{dnsAppLabel: dnsAppValue},
			ClusterIP:             ip,
			ClusterIPs:            []string{ip},
			IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
			IPFamilyPolicy:        ptr.To(corev1.IPFamilyPolicySingleStack),
			SessionAffinity:       corev1.ServiceAffinityNone,
			InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
			Ports: []corev1.ServicePort{
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53)},
				{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9153, TargetPort: intstr.FromInt32(9153)},
			},
		},
	}
	return b.ensure(ctx, store.Services, svc, nil, nil)
}

// dnsPodTemplate returns the CoreDNS pod template of kubeadm's coredns
// Deployment (the parts that matter here) and its pod-template-hash.
func dnsPodTemplate() (corev1.PodTemplateSpec, string) {
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      map[string]string{dnsAppLabel: dnsAppValue},
			Annotations: map[string]string{AnnotationWorkload: WorkloadDNS},
		},
		Spec: corev1.PodSpec{
			PriorityClassName:  "system-cluster-critical",
			ServiceAccountName: "coredns",
			DNSPolicy:          corev1.DNSDefault,
			RestartPolicy:      corev1.RestartPolicyAlways,
			SchedulerName:      corev1.DefaultSchedulerName,
			NodeSelector:       map[string]string{corev1.LabelOSStable: "linux"},
			Tolerations: []corev1.Toleration{
				{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
				{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
			},
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Containers: []corev1.Container{{
				Name:            "coredns",
				Image:           coreDNSImage,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            []string{"-conf", "/etc/coredns/Corefile"},
				Ports: []corev1.ContainerPort{
					{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
					{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
					{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP},
				},
				Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("100m"),
						corev1.ResourceMemory: resource.MustParse("70Mi"),
					},
				},
				TerminationMessagePath:   corev1.TerminationMessagePathDefault,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}},
		},
	}
	// Like the Deployment controller: fnv32a of the template, safe-encoded.
	data, _ := json.Marshal(tmpl) // a plain struct: cannot fail
	h := fnv.New32a()
	h.Write(data)
	return tmpl, utilrand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// dnsPodNames returns the deterministic names of the CoreDNS pods,
// coredns-<template hash>-<5 chars>, shaped like a Deployment's pods.
func dnsPodNames(hash string, replicas int) []string {
	names := make([]string, replicas)
	for i := range names {
		h := fnv.New32a()
		fmt.Fprintf(h, "%s/%d", hash, i)
		suffix := utilrand.SafeEncodeString(fmt.Sprintf("%010d", h.Sum32()))[:5]
		names[i] = "coredns-" + hash + "-" + suffix
	}
	return names
}

func (b *bootstrapper) dnsPods(ctx context.Context) error {
	tmpl, hash := dnsPodTemplate()
	want := map[string]bool{}
	for _, name := range dnsPodNames(hash, b.cfg.DNSReplicas) {
		want[name] = true
		pod := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
		pod.Name, pod.Namespace = name, metav1.NamespaceSystem
		pod.Labels["pod-template-hash"] = hash
		pod.Annotations[AnnotationBootstrap] = "true"
		if err := b.ensure(ctx, store.Pods, pod, nil, nil); err != nil {
			return err
		}
	}
	pods, _, err := b.st.List(ctx, store.Pods, metav1.NamespaceSystem, store.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{dnsAppLabel: dnsAppValue}),
	})
	if err != nil {
		return fmt.Errorf("list coredns pods: %w", err)
	}
	for _, p := range pods {
		if p.GetAnnotations()[AnnotationBootstrap] != "true" || want[p.GetName()] {
			continue
		}
		if _, err := b.st.Delete(ctx, store.Pods, p.GetNamespace(), p.GetName(), ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete old coredns pod %q: %w", p.GetName(), err)
		}
		b.log.Info("deleted coredns pod no longer wanted", "pod", p.GetName())
	}
	return nil
}
