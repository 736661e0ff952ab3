package rest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/apiserver/store"
)

// applyResults posts a manifest to /lab/v1/apply and returns the HTTP status
// and the results without their Status details (compared separately).
func (a *testAPI) apply(t *testing.T, query, contentType, manifest string) (int, ApplyResponse) {
	t.Helper()
	r := a.do("POST", "/lab/v1/apply"+query, []byte(manifest), "Content-Type", contentType)
	var ar ApplyResponse
	if r.code == http.StatusOK || r.code == http.StatusMultiStatus {
		r.into(t, &ar)
	}
	return r.code, ar
}

const applyManifest = `# a namespace, a service in it, and a pod in the default namespace
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels: {app: web, owner: me}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
# comment-only documents are skipped
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  labels: {app: web}
spec:
  containers: [{name: web, image: web}]
`

// TestApply runs a manifest through apply three times: created, unchanged,
// then configured with a three-way merge that keeps server-set and
// foreign fields and removes what the manifest dropped.
func TestApply(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	code, ar := a.apply(t, "", "application/yaml", applyManifest)
	want := []ApplyResult{
		{Index: 0, APIVersion: "v1", Kind: "Namespace", Name: "shop", Action: ActionCreated},
		{Index: 1, APIVersion: "v1", Kind: "Service", Namespace: "shop", Name: "web", Action: ActionCreated},
		{Index: 2, APIVersion: "v1", Kind: "Pod", Namespace: "default", Name: "web-0", Action: ActionCreated},
	}
	if code != http.StatusOK {
		t.Errorf("first apply: status %d", code)
	}
	if diff := cmp.Diff(want, ar.Results); diff != "" {
		t.Fatalf("first apply (-want +got):\n%s", diff)
	}
	var svc corev1.Service
	a.do("GET", "/api/v1/namespaces/shop/services/web", nil).expect(t, http.StatusOK).into(t, &svc)
	wantLast := `{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"labels":{"app":"web","owner":"me"},"name":"web","namespace":"shop"},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}],"selector":{"app":"web"}}}` + "\n" // kubectl's json.Encoder ends it with a newline
	if got := svc.Annotations[LastAppliedAnnotation]; got != wantLast {
		t.Errorf("last-applied annotation:\n got %s\nwant %s", got, wantLast)
	}

	code, ar = a.apply(t, "", "application/yaml", applyManifest)
	for i := range want {
		want[i].Action = ActionUnchanged
	}
	if diff := cmp.Diff(want, ar.Results); diff != "" || code != http.StatusOK {
		t.Errorf("second apply: %d (-want +got):\n%s", code, diff)
	}
	rvBefore := a.st.ResourceVersion()
	if rvBefore != mustUint(t, svc.ResourceVersion)+1 { // only the pod came after the service
		t.Errorf("unchanged apply wrote: store at %d", rvBefore)
	}

	// The server (or another client) sets fields the manifest does not own.
	a.do("PATCH", "/api/v1/namespaces/shop/services/web",
		[]byte(`{"metadata":{"labels":{"team":"blue"}},"spec":{"clusterIP":"10.96.0.42","ports":[{"port":80,"nodePort":30080}]}}`),
		"Content-Type", strategicPatchType).expect(t, http.StatusOK)

	// Drop the "owner" label, change the targetPort, add a port.
	changed := strings.Replace(applyManifest, "labels: {app: web, owner: me}", "labels: {app: web}", 1)
	changed = strings.Replace(changed, "- {name: http, port: 80, targetPort: 8080}",
		"- {name: http, port: 80, targetPort: 9090}\n  - {name: https, port: 443}", 1)
	code, ar = a.apply(t, "", "application/yaml", changed)
	want[1].Action = ActionConfigured
	if diff := cmp.Diff(want, ar.Results); diff != "" || code != http.StatusOK {
		t.Errorf("third apply: %d (-want +got):\n%s", code, diff)
	}
	var got corev1.Service
	a.do("GET", "/api/v1/namespaces/shop/services/web", nil).expect(t, http.StatusOK).into(t, &got)
	if diff := cmp.Diff(map[string]string{"app": "web", "team": "blue"}, got.Labels); diff != "" {
		t.Errorf("labels after apply (-want +got):\n%s", diff)
	}
	wantPorts := []corev1.ServicePort{
		{Name: "http", Port: 80, NodePort: 30080, TargetPort: intOrString(9090)},
		{Name: "https", Port: 443},
	}
	if diff := cmp.Diff(wantPorts, got.Spec.Ports); diff != "" {
		t.Errorf("ports after apply (-want +got):\n%s", diff)
	}
	if got.Spec.ClusterIP != "10.96.0.42" || got.UID != svc.UID || got.CreationTimestamp != svc.CreationTimestamp {
		t.Errorf("server-set fields lost: clusterIP %q uid %s", got.Spec.ClusterIP, got.UID)
	}
	if !strings.Contains(got.Annotations[LastAppliedAnnotation], `"targetPort":9090`) {
		t.Errorf("last-applied not updated: %s", got.Annotations[LastAppliedAnnotation])
	}
}

// TestApplyExistingWithoutAnnotation: an object created by POST is updated
// by a first apply (two-way: nothing deleted) and gets the annotation.
func TestApplyExistingWithoutAnnotation(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	a.create(t, "default", testService("web", map[string]string{"keep": "me"}))
	manifest := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","labels":{"app":"web"}},"spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80}]}}`
	code, ar := a.apply(t, "", "application/json", manifest)
	want := []ApplyResult{{Index: 0, APIVersion: "v1", Kind: "Service", Namespace: "default", Name: "web", Action: ActionConfigured}}
	if diff := cmp.Diff(want, ar.Results); diff != "" || code != http.StatusOK {
		t.Fatalf("apply: %d (-want +got):\n%s", code, diff)
	}
	var got corev1.Service
	a.do("GET", "/api/v1/namespaces/default/services/web", nil).expect(t, http.StatusOK).into(t, &got)
	if diff := cmp.Diff(map[string]string{"app": "web", "keep": "me"}, got.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got.Annotations[LastAppliedAnnotation] == "" {
		t.Error("no last-applied annotation after apply")
	}
}

// TestApplyList applies a v1 List (JSON) with ?namespace=.
func TestApplyList(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	list := map[string]any{"apiVersion": "v1", "kind": "List", "items": []any{
		testService("a", nil), testService("b", nil),
		map[string]any{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
			"metadata": map[string]any{"name": "a-1"}, "addressType": "IPv4", "endpoints": []any{}},
	}}
	code, ar := a.apply(t, "?namespace=kube-system", "application/json", string(mustJSON(t, list)))
	want := []ApplyResult{
		{Index: 0, APIVersion: "v1", Kind: "Service", Namespace: "kube-system", Name: "a", Action: ActionCreated},
		{Index: 1, APIVersion: "v1", Kind: "Service", Namespace: "kube-system", Name: "b", Action: ActionCreated},
		{Index: 2, APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice", Namespace: "kube-system", Name: "a-1", Action: ActionCreated},
	}
	if diff := cmp.Diff(want, ar.Results); diff != "" || code != http.StatusOK {
		t.Errorf("apply List: %d (-want +got):\n%s", code, diff)
	}
	a.do("GET", "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/a-1", nil).expect(t, http.StatusOK)
}

// TestApplyErrors: a failing object does not stop the others; the answer is
// 207 with one error result per failure, each with a Status.
func TestApplyErrors(t *testing.T) {
	a := newTestAPI(t, store.Options{Admitters: map[string]store.Admitter{"services": rejectAdmitter{next: realAdmitters(t)["services"]}}}, Options{})
	manifest := `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
---
apiVersion: v1
kind: Service
metadata: {name: ok}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: "key: [unclosed"
---
apiVersion: v1
kind: Service
metadata: {name: Bad_Name}
---
apiVersion: v1
kind: Service
metadata: {name: rejected, labels: {reject: "yes"}}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere, namespace: kube-system}
---
apiVersion: v1
kind: Service
metadata: {name: nons, namespace: missing}
---
kind: Service
metadata: {name: noversion}
`
	code, ar := a.apply(t, "?namespace=default", "application/yaml", manifest)
	if code != http.StatusMultiStatus {
		t.Errorf("status %d, want 207", code)
	}
	type brief struct {
		Index  int
		Name   string
		Action string
		Code   int32
		Reason metav1.StatusReason
	}
	var got []brief
	for _, r := range ar.Results {
		b := brief{Index: r.Index, Name: r.Name, Action: r.Action}
		if r.Status != nil {
			b.Code, b.Reason = r.Status.Code, r.Status.Reason
		}
		got = append(got, b)
	}
	want := []brief{
		{0, "", ActionError, 400, metav1.StatusReasonBadRequest}, // no matches for kind Deployment
		{1, "ok", ActionCreated, 0, ""},
		{2, "", ActionError, 400, metav1.StatusReasonBadRequest}, // YAML syntax
		{3, "Bad_Name", ActionError, 422, metav1.StatusReasonInvalid},
		{4, "rejected", ActionError, 422, metav1.StatusReasonInvalid},     // admission
		{5, "elsewhere", ActionError, 400, metav1.StatusReasonBadRequest}, // namespace differs from ?namespace=
		{6, "nons", ActionError, 400, metav1.StatusReasonBadRequest},
		{7, "", ActionError, 400, metav1.StatusReasonBadRequest}, // apiVersion missing
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if m := ar.Results[0].Status.Message; m != `no matches for kind "Deployment" in version "apps/v1"` {
		t.Errorf("unknown kind message %q", m)
	}
	if causes := ar.Results[4].Status.Details.Causes; len(causes) != 2 {
		t.Errorf("admission causes: %+v", causes)
	}

	// Without ?namespace=, a missing namespace is a 404 for that object.
	_, ar = a.apply(t, "", "application/yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: missing}\n")
	if r := ar.Results[0]; r.Action != ActionError || r.Status.Code != 404 || r.Status.Message != `namespaces "missing" not found` {
		t.Errorf("missing namespace: %+v", r.Status)
	}
}

// TestApplyRefusals: bodies with no object are 400, other methods 405,
// unknown content types 415.
func TestApplyRefusals(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	for _, tc := range []struct {
		name, method, ct, body string
		code                   int
	}{
		{"empty", "POST", "application/yaml", "", 400},
		{"comments only", "POST", "application/yaml", "# nothing\n---\n", 400},
		{"broken JSON", "POST", "application/json", `{"apiVersion":`, 400},
		{"broken YAML", "POST", "application/yaml", "a: [b\n", 400},
		{"GET", "GET", "", "", 405},
		{"form", "POST", "application/x-www-form-urlencoded", "a=b", 415},
		{"bad namespace", "POST", "application/yaml", "x: y", 400},
	} {
		path := "/lab/v1/apply"
		if tc.name == "bad namespace" {
			path += "?namespace=Not_Valid"
		}
		var body []byte
		if tc.body != "" || tc.method == "POST" {
			body = []byte(tc.body)
		}
		r := a.do(tc.method, path, body, "Content-Type", tc.ct)
		if r.code != tc.code {
			t.Errorf("%s: status %d, want %d: %s", tc.name, r.code, tc.code, r.body)
			continue
		}
		if st := r.status(t); st.Kind != "Status" || st.Code != int32(tc.code) {
			t.Errorf("%s: not a Status: %s", tc.name, r.body)
		}
	}
}

// TestSplitManifest checks document splitting: YAML with empty documents and
// a List, a JSON stream, and a YAML syntax error in the middle.
func TestSplitManifest(t *testing.T) {
	docs := func(body string) []string {
		var out []string
		for _, d := range splitManifest([]byte(body)) {
			if d.err != nil {
				out = append(out, "error")
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(d.raw, &m); err != nil {
				t.Fatalf("doc is not JSON: %s", d.raw)
			}
			out = append(out, str(m, "metadata", "name"))
		}
		return out
	}
	cases := []struct {
		name, body string
		want       []string
	}{
		{"yaml", "metadata: {name: a}\n---\n---\n# c\nmetadata: {name: b}\n", []string{"a", "b"}},
		{"list", "apiVersion: v1\nkind: List\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n---\nmetadata: {name: c}\n", []string{"a", "b", "c"}},
		{"json stream", `{"metadata":{"name":"a"}} {"metadata":{"name":"b"}}`, []string{"a", "b"}},
		{"yaml error in the middle", "metadata: {name: a}\n---\nmetadata: {name: [\n---\nmetadata: {name: c}\n", []string{"a", "error", "c"}},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, docs(tc.body), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
