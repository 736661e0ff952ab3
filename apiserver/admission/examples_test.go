package admission

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/apiserver/store"
)

// TestExamplesAreTheSeedCopies keeps the project's examples/ identical to the
// seed's shared examples they copy (when the shared tree is present).
func TestExamplesAreTheSeedCopies(t *testing.T) {
	const shared = "../../../shared/examples"
	entries, err := os.ReadDir(shared)
	if os.IsNotExist(err) {
		t.Skip("shared examples not present in this checkout")
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".yaml" {
			continue
		}
		want, err := os.ReadFile(filepath.Join(shared, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "..", "examples", e.Name()))
		if err != nil {
			t.Fatalf("examples/ copy of %s: %v", e.Name(), err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("examples/%s differs from %s", e.Name(), shared)
		}
	}
}

// dynamicClusterIP checks that a randomly allocated clusterIP came from the
// upper (dynamic) band of 10.96.0.0/12 and is not reserved, then replaces it
// (and clusterIPs) with a placeholder so that the object can be compared
// with a golden one.
func dynamicClusterIP(t *testing.T, svc *corev1.Service) {
	t.Helper()
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		t.Fatalf("%s: clusterIP %q: %v", svc.Name, svc.Spec.ClusterIP, err)
	}
	lo, hi := netip.MustParseAddr("10.96.1.1"), netip.MustParseAddr("10.111.255.254")
	if ip.Compare(lo) < 0 || ip.Compare(hi) > 0 {
		t.Errorf("%s: dynamic clusterIP %s outside the upper band %s-%s", svc.Name, ip, lo, hi)
	}
	if len(svc.Spec.ClusterIPs) != 1 || svc.Spec.ClusterIPs[0] != svc.Spec.ClusterIP {
		t.Errorf("%s: clusterIPs %v do not mirror clusterIP %s", svc.Name, svc.Spec.ClusterIPs, ip)
	}
	svc.Spec.ClusterIP = "DYNAMIC"
	svc.Spec.ClusterIPs = []string{"DYNAMIC"}
}

// TestExampleServices admits the seed's Service manifests unchanged and
// compares every admitted object, defaults and allocations included, with
// what kube-apiserver would store.
func TestExampleServices(t *testing.T) {
	a := newAdmission(t, Config{})
	tests := []struct {
		file    string
		dynamic bool // clusterIP allocated at random
		want    string
	}{
		{file: "01-redis-clusterip.yaml", want: `
apiVersion: v1
kind: Service
metadata: {name: redis, namespace: default}
spec:
  selector: {app: redis, role: logstor}
  type: ClusterIP
  clusterIP: 10.96.0.100
  clusterIPs: [10.96.0.100]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  internalTrafficPolicy: Cluster
  sessionAffinity: None
  ports:
  - {port: 6379, targetPort: 6379, protocol: TCP}
`},
		{file: "02-myapp-nohead.yaml", want: `
apiVersion: v1
kind: Service
metadata: {name: myapp-nohead, namespace: default}
spec:
  selector: {app: myapp-nohead, release: canary}
  type: ClusterIP
  clusterIP: None
  clusterIPs: [None]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  internalTrafficPolicy: Cluster
  sessionAffinity: None
  ports:
  - {port: 80, targetPort: 80, protocol: TCP}
`},
		{file: "03-myapp-nodeport.yaml", dynamic: true, want: `
apiVersion: v1
kind: Service
metadata: {name: myapp, namespace: default}
spec:
  selector: {app: myapp, release: canary}
  type: NodePort
  clusterIP: DYNAMIC
  clusterIPs: [DYNAMIC]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  internalTrafficPolicy: Cluster
  externalTrafficPolicy: Cluster
  sessionAffinity: None
  ports:
  - {port: 80, targetPort: 80, nodePort: 30080, protocol: TCP}
`},
		{file: "04-external-name.yaml", want: `
apiVersion: v1
kind: Service
metadata: {name: search, namespace: default}
spec:
  type: ExternalName
  externalName: www.example.com
  sessionAffinity: None
`},
		{file: "05-testsvc-loadbalancer.yaml", dynamic: true, want: `
apiVersion: v1
kind: Service
metadata: {name: testsvc, namespace: default}
spec:
  selector: {app: testsvc}
  type: LoadBalancer
  clusterIP: DYNAMIC
  clusterIPs: [DYNAMIC]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  internalTrafficPolicy: Cluster
  externalTrafficPolicy: Cluster
  allocateLoadBalancerNodePorts: true
  sessionAffinity: None
  ports:
  - {port: 443, targetPort: 80, nodePort: 30031, protocol: TCP}
status:
  loadBalancer:
    ingress:
    - {ip: 172.29.255.1, ipMode: VIP}
`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			objs := loadExamples(t, tt.file)
			if len(objs) != 1 {
				t.Fatalf("%d objects, want 1", len(objs))
			}
			got := mustCreate(t, a, objs[0].(*corev1.Service))
			if tt.dynamic {
				dynamicClusterIP(t, got)
			}
			// System metadata is the store's business; compare the rest.
			got.ObjectMeta = metav1.ObjectMeta{Name: got.Name, Namespace: got.Namespace}
			want := mustYAML[corev1.Service](t, tt.want)
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("admitted %s (-want +got):\n%s", tt.file, diff)
			}
		})
	}
	st := snapshot(a)
	if st.NodePorts[30080] != 1 || st.NodePorts[30031] != 1 || len(st.NodePorts) != 2 {
		t.Errorf("node ports held: %v, want exactly 30080 and 30031", st.NodePorts)
	}
	if st.ClusterIPs["10.96.0.100"] != 1 || len(st.ClusterIPs) != 3 {
		t.Errorf("cluster IPs held: %v, want 10.96.0.100 and two dynamic ones", st.ClusterIPs)
	}
	if diff := cmp.Diff(map[string]int{"172.29.255.1": 1}, st.LBIPs); diff != "" {
		t.Errorf("LB IPs (-want +got):\n%s", diff)
	}
}

// TestExamplePods admits the seed's backend pods unchanged and checks the
// defaults of one of them against kube's.
func TestExamplePods(t *testing.T) {
	a := newAdmission(t, Config{})
	objs := loadExamples(t, "10-pods.yaml")
	if len(objs) != 12 {
		t.Fatalf("%d pods in 10-pods.yaml, want 12", len(objs))
	}
	var first store.Object
	for _, o := range objs {
		got := mustCreate(t, a, o.(*corev1.Pod))
		if first == nil {
			first = got
		}
	}
	got := first.(*corev1.Pod)
	got.ObjectMeta = metav1.ObjectMeta{Name: got.Name, Namespace: got.Namespace, Labels: got.Labels}
	want := mustYAML[corev1.Pod](t, `
apiVersion: v1
kind: Pod
metadata:
  name: redis-0
  namespace: default
  labels: {app: redis, role: logstor}
spec:
  containers:
  - name: redis
    image: redis
    imagePullPolicy: Always
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    ports: [{containerPort: 6379, protocol: TCP}]
  restartPolicy: Always
  dnsPolicy: ClusterFirst
  schedulerName: default-scheduler
  terminationGracePeriodSeconds: 30
  enableServiceLinks: true
  securityContext: {}
status:
  phase: Pending
`)
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("admitted pod (-want +got):\n%s", diff)
	}
}
