package dataplane

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readExamples(t *testing.T, names ...string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "examples", n))
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteString("\n---\n")
	}
	return &buf
}

var examplesNode = Node{Name: "node-1"}
var examplesConfig = Config{ClusterCIDR: mustPrefix("10.244.0.0/16")}

// TestRenderExamplesGolden renders every seed example Service together with
// the example Pods (the project's examples/, the manifests up --demo applies).
func TestRenderExamplesGolden(t *testing.T) {
	for _, ex := range []string{"01-redis-clusterip.yaml", "02-myapp-nohead.yaml", "03-myapp-nodeport.yaml", "04-external-name.yaml", "05-testsvc-loadbalancer.yaml"} {
		t.Run(ex, func(t *testing.T) {
			out, err := RenderManifests(readExamples(t, ex, "10-pods.yaml"), examplesNode, examplesConfig)
			if err != nil {
				t.Fatal(err)
			}
			assertGolden(t, "example-"+strings.TrimSuffix(ex, ".yaml")+".golden", string(out))
		})
	}
	t.Run("all", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range files {
			names = append(names, filepath.Base(f))
		}
		out, err := RenderManifests(readExamples(t, names...), examplesNode, examplesConfig)
		if err != nil {
			t.Fatal(err)
		}
		assertGolden(t, "examples-all.golden", string(out))
	})
}

func TestManifestInputDefaultsAndDerivedSlices(t *testing.T) {
	in, err := ManifestInput(readExamples(t, "01-redis-clusterip.yaml", "02-myapp-nohead.yaml", "03-myapp-nodeport.yaml", "04-external-name.yaml", "05-testsvc-loadbalancer.yaml", "10-pods.yaml"), examplesNode, examplesConfig)
	if err != nil {
		t.Fatal(err)
	}
	var svcs []string
	for _, s := range in.Services {
		svcs = append(svcs, s.Namespace+"/"+s.Name+" "+string(s.Spec.Type)+" "+s.Spec.ClusterIP)
	}
	wantSvcs := []string{
		"default/redis ClusterIP 10.96.0.100",
		"default/myapp-nohead ClusterIP None",
		"default/myapp NodePort 10.96.0.11",
		"default/search ExternalName ",
		"default/testsvc LoadBalancer 10.96.0.12",
	}
	if diff := cmp.Diff(wantSvcs, svcs); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	var slices []string
	for _, es := range in.EndpointSlices {
		var eps []string
		for _, e := range es.Endpoints {
			eps = append(eps, e.Addresses[0])
		}
		slices = append(slices, es.Name+": "+strings.Join(eps, ","))
	}
	wantSlices := []string{
		"redis-derived-0: 10.244.0.2",
		"myapp-nohead-derived-0: 10.244.0.3,10.244.0.4",
		"myapp-derived-0: 10.244.0.5,10.244.0.6",
		"testsvc-derived-0: 10.244.0.10,10.244.0.11,10.244.0.12,10.244.0.13,10.244.0.7,10.244.0.8,10.244.0.9",
	}
	if diff := cmp.Diff(wantSlices, slices); diff != "" {
		t.Errorf("derived slices (-want +got):\n%s", diff)
	}
}

func TestManifestInputExplicitSlicesNamedPortsAndLists(t *testing.T) {
	const manifests = `
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
  spec:
    selector: {app: web}
    clusterIP: 10.96.5.5
    ports: [{name: http, port: 80, targetPort: web-port}]
- apiVersion: v1
  kind: Pod
  metadata: {name: web-0, namespace: shop, labels: {app: web}}
  spec:
    nodeName: node-1
    containers: [{name: c, image: x, ports: [{name: web-port, containerPort: 8080}]}]
  status: {podIP: 10.244.7.7}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-1, namespace: shop, labels: {app: web}}
  spec:
    containers: [{name: c, image: x, ports: [{name: web-port, containerPort: 9090}]}]
  status:
    podIP: 10.244.8.8
    conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Service
metadata: {name: pinned, namespace: shop}
spec:
  selector: {app: web}
  clusterIP: 10.96.5.6
  ports: [{port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: pinned-1
  namespace: shop
  labels: {kubernetes.io/service-name: pinned}
addressType: IPv4
endpoints: [{addresses: [10.244.9.9]}]
ports: [{name: "", port: 7000, protocol: TCP}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
`
	in, err := ManifestInput(strings.NewReader(manifests), examplesNode, examplesConfig)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, es := range in.EndpointSlices {
		for _, e := range es.Endpoints {
			node := ""
			if e.NodeName != nil {
				node = *e.NodeName
			}
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			got = append(got, es.Name+" "+e.Addresses[0]+":"+itoa(*es.Ports[0].Port)+" node="+node+" ready="+map[bool]string{true: "y", false: "n"}[ready])
		}
	}
	want := []string{
		"pinned-1 10.244.9.9:7000 node= ready=y",
		"web-derived-0 10.244.7.7:8080 node=node-1 ready=y",
		"web-derived-1 10.244.8.8:9090 node= ready=n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	payload := string(Render(in).Payload)
	for _, s := range []string{"--to-destination 10.244.7.7:8080", "--to-destination 10.244.9.9:7000"} {
		if !strings.Contains(payload, s) {
			t.Errorf("payload lacks %q", s)
		}
	}
	if strings.Contains(payload, "10.244.8.8") {
		t.Errorf("payload uses the not-ready pod 10.244.8.8")
	}
}

func TestRenderManifestsErrors(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"bad yaml", "kind: Service\nmetadata: [unclosed\n"},
		{"bad field type", "kind: Service\nmetadata: {name: x}\nspec: {ports: 5}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RenderManifests(strings.NewReader(tc.in), examplesNode, examplesConfig)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "document 1") {
				t.Errorf("error %q does not name the document", err)
			}
		})
	}
	out, err := RenderManifests(strings.NewReader(""), examplesNode, examplesConfig)
	if err != nil || !bytes.Equal(out, Render(Input{Node: examplesNode, Config: examplesConfig}).Payload) {
		t.Errorf("empty input: err %v, payload %q", err, out)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
