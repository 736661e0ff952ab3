package rest

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/mux"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/svclab/svclab/apiserver/store"
)

// obj is a decoded JSON object.
type obj = map[string]any

// jfield returns the value at a path of keys in a decoded JSON object (nil if absent).
func jfield(m obj, path ...string) any {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func str(m obj, path ...string) string {
	s, _ := jfield(m, path...).(string)
	return s
}

// TestResourcePaths drives every resource through every verb on
// kube-apiserver's paths: create, get, list (namespaced and cluster-wide),
// replace, merge patch, the status subresource (get, replace, patch; status
// changes through the main resource are ignored), delete, then 404.
func TestResourcePaths(t *testing.T) {
	cases := []struct {
		res    *store.Resource
		coll   string // collection to create in
		all    string // cluster-wide list of a namespaced resource
		body   obj
		status obj // a status to set through /status; nil = no status subresource
	}{
		{
			res: store.Namespaces, coll: "/api/v1/namespaces",
			body:   obj{"apiVersion": "v1", "kind": "Namespace", "metadata": obj{"name": "team-a"}},
			status: obj{"phase": "Terminating"},
		},
		{
			res: store.Nodes, coll: "/api/v1/nodes",
			body:   obj{"metadata": obj{"name": "node-1"}, "spec": obj{"podCIDR": "10.244.1.0/24"}},
			status: obj{"addresses": []any{obj{"type": "InternalIP", "address": "172.29.0.2"}}},
		},
		{
			res: store.Services, coll: "/api/v1/namespaces/default/services", all: "/api/v1/services",
			body: obj{"apiVersion": "v1", "kind": "Service", "metadata": obj{"name": "web"},
				"spec": obj{"selector": obj{"app": "web"}, "ports": []any{obj{"port": 80}}}},
			status: obj{"loadBalancer": obj{"ingress": []any{obj{"ip": "172.29.255.1"}}}},
		},
		{
			res: store.Pods, coll: "/api/v1/namespaces/default/pods", all: "/api/v1/pods",
			body: obj{"metadata": obj{"name": "web-0", "labels": obj{"app": "web"}},
				"spec": obj{"containers": []any{obj{"name": "web", "image": "web"}}}},
			status: obj{"phase": "Running", "podIP": "10.244.1.2"},
		},
		{
			res: store.Endpoints, coll: "/api/v1/namespaces/default/endpoints", all: "/api/v1/endpoints",
			body: obj{"metadata": obj{"name": "web"},
				"subsets": []any{obj{"addresses": []any{obj{"ip": "10.244.1.2"}}, "ports": []any{obj{"port": 80}}}}},
		},
		{
			res: store.EndpointSlices, coll: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
			all: "/apis/discovery.k8s.io/v1/endpointslices",
			body: obj{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": obj{"name": "web-abc"},
				"addressType": "IPv4", "endpoints": []any{obj{"addresses": []any{"10.244.1.2"}}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.res.Name, func(t *testing.T) {
			a := newTestAPI(t, store.Options{}, Options{})
			name := str(tc.body, "metadata", "name")
			item := tc.coll + "/" + name
			checkKind := func(m obj, what string) {
				t.Helper()
				if str(m, "apiVersion") != tc.res.APIVersion() || str(m, "kind") != tc.res.Kind {
					t.Errorf("%s: apiVersion/kind = %q/%q, want %q/%q", what, str(m, "apiVersion"), str(m, "kind"),
						tc.res.APIVersion(), tc.res.Kind)
				}
			}

			var created obj
			a.do("POST", tc.coll, mustJSON(t, tc.body)).expect(t, http.StatusCreated).into(t, &created)
			checkKind(created, "create")
			if str(created, "metadata", "uid") == "" || str(created, "metadata", "resourceVersion") == "" {
				t.Fatalf("created object lacks uid/resourceVersion: %v", created)
			}

			var got obj
			a.do("GET", item, nil).expect(t, http.StatusOK).into(t, &got)
			checkKind(got, "get")
			if diff := cmp.Diff(created, got); diff != "" {
				t.Errorf("get differs from create (-create +get):\n%s", diff)
			}

			lists := []string{tc.coll}
			if tc.all != "" {
				lists = append(lists, tc.all)
				a.do("POST", tc.all, mustJSON(t, tc.body)).expect(t, http.StatusMethodNotAllowed)
			}
			for _, path := range lists {
				var list obj
				a.do("GET", path, nil).expect(t, http.StatusOK).into(t, &list)
				if str(list, "kind") != tc.res.ListKind || str(list, "apiVersion") != tc.res.APIVersion() {
					t.Errorf("list %s: kind %q apiVersion %q", path, str(list, "kind"), str(list, "apiVersion"))
				}
				if str(list, "metadata", "resourceVersion") == "" {
					t.Errorf("list %s has no metadata.resourceVersion", path)
				}
				var names []string
				for _, it := range jfield(list, "items").([]any) {
					checkKind(it.(obj), "list item")
					names = append(names, str(it.(obj), "metadata", "name"))
				}
				if !slices.Contains(names, name) {
					t.Errorf("list %s = %v, want it to contain %s", path, names, name)
				}
			}

			// Replace with the current resourceVersion.
			upd := got
			upd["metadata"].(obj)["labels"] = obj{"updated": "yes"}
			var replaced obj
			a.do("PUT", item, mustJSON(t, upd)).expect(t, http.StatusOK).into(t, &replaced)
			checkKind(replaced, "replace")
			if str(replaced, "metadata", "labels", "updated") != "yes" ||
				str(replaced, "metadata", "resourceVersion") == str(got, "metadata", "resourceVersion") {
				t.Errorf("replace did not take: %v", replaced["metadata"])
			}

			var patched obj
			a.do("PATCH", item, []byte(`{"metadata":{"labels":{"patched":"yes"}}}`),
				"Content-Type", "application/merge-patch+json").expect(t, http.StatusOK).into(t, &patched)
			if diff := cmp.Diff(obj{"updated": "yes", "patched": "yes"}, jfield(patched, "metadata", "labels")); diff != "" {
				t.Errorf("merge patch labels (-want +got):\n%s", diff)
			}

			if tc.status != nil {
				// Status through the main resource is ignored…
				patched["status"] = tc.status
				var viaMain obj
				a.do("PUT", item, mustJSON(t, patched)).expect(t, http.StatusOK).into(t, &viaMain)
				for k, v := range tc.status {
					if cmp.Equal(jfield(viaMain, "status", k), v) {
						t.Errorf("PUT of the main resource changed status.%s to %v", k, v)
					}
				}
				// …and taken through /status.
				viaMain["status"] = tc.status
				var st obj
				a.do("PUT", item+"/status", mustJSON(t, viaMain)).expect(t, http.StatusOK).into(t, &st)
				checkKind(st, "status replace")
				gotSt := obj{}
				for k := range tc.status { // typed zero values (Node's nodeInfo) come back too
					gotSt[k] = jfield(st, "status", k)
				}
				if diff := cmp.Diff(tc.status, gotSt); diff != "" {
					t.Errorf("status after PUT /status (-want +got):\n%s", diff)
				}
				var gotStatus obj
				a.do("GET", item+"/status", nil).expect(t, http.StatusOK).into(t, &gotStatus)
				if diff := cmp.Diff(st, gotStatus); diff != "" {
					t.Errorf("GET /status (-put +get):\n%s", diff)
				}
				var sp obj
				a.do("PATCH", item+"/status", []byte(`{"metadata":{"labels":{"ignored":"yes"}},"status":{"conditions":[]}}`),
					"Content-Type", "application/merge-patch+json").expect(t, http.StatusOK).into(t, &sp)
				if str(sp, "metadata", "labels", "ignored") != "" {
					t.Errorf("PATCH /status changed labels: %v", jfield(sp, "metadata", "labels"))
				}
				a.do("DELETE", item+"/status", nil).expect(t, http.StatusMethodNotAllowed)
			}

			var deleted obj
			a.do("DELETE", item, nil).expect(t, http.StatusOK).into(t, &deleted)
			checkKind(deleted, "delete")
			st := a.do("GET", item, nil).expect(t, http.StatusNotFound).status(t)
			if st.Reason != metav1.StatusReasonNotFound || st.Details == nil || st.Details.Name != name {
				t.Errorf("GET after delete: %+v", st)
			}
		})
	}
}

// TestExampleManifests sends the seed's example manifests exactly as the
// examples README shows (curl -X POST -H 'Content-Type: application/yaml'
// --data-binary @file …/namespaces/default/services); the multi-document
// 10-pods.yaml goes through /lab/v1/apply.
func TestExampleManifests(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "examples")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Skipf("no example manifests in %s", dir)
	}
	a := newTestAPI(t, store.Options{}, Options{})
	want := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "\n---") {
			var ar ApplyResponse
			a.do("POST", "/lab/v1/apply", data, "Content-Type", "application/yaml").expect(t, http.StatusOK).into(t, &ar)
			for _, r := range ar.Results {
				if r.Action != ActionCreated {
					t.Errorf("%s: %+v", f, r)
				}
				want[r.Kind+"/"+r.Name] = true
			}
			continue
		}
		var m obj
		if err := yaml.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		kind := str(m, "kind")
		path := "/api/v1/namespaces/default/" + strings.ToLower(kind) + "s"
		var created obj
		a.do("POST", path, data, "Content-Type", "application/yaml").expect(t, http.StatusCreated).into(t, &created)
		if diff := cmp.Diff(jfield(m, "spec"), jfield(created, "spec")); diff != "" {
			t.Errorf("%s: stored spec differs from the manifest (-manifest +stored):\n%s", f, diff)
		}
		want[kind+"/"+str(m, "metadata", "name")] = true
	}
	got := map[string]bool{}
	for _, path := range []string{"/api/v1/services", "/api/v1/pods"} {
		var list obj
		a.do("GET", path, nil).expect(t, http.StatusOK).into(t, &list)
		for _, it := range jfield(list, "items").([]any) {
			got[str(it.(obj), "kind")+"/"+str(it.(obj), "metadata", "name")] = true
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects in the store (-sent +listed):\n%s", diff)
	}
	if len(got) != 5+12 {
		t.Errorf("got %d objects, want 5 Services and 12 Pods", len(got))
	}
}

// TestYAML sends a YAML body and reads YAML back (Accept: application/yaml),
// for an object, a list and an error.
func TestYAML(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	svc := testService("redis", map[string]string{"app": "redis"})
	r := a.do("POST", "/api/v1/namespaces/default/services", mustYAML(t, svc),
		"Content-Type", "application/yaml", "Accept", "application/yaml").expect(t, http.StatusCreated)
	if ct := r.header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q", ct)
	}
	var got corev1.Service
	if err := yaml.UnmarshalStrict(r.body, &got); err != nil {
		t.Fatalf("response is not a YAML Service: %v\n%s", err, r.body)
	}
	if got.Kind != "Service" || got.APIVersion != "v1" || got.Namespace != "default" ||
		!cmp.Equal(got.Spec.Ports, svc.Spec.Ports) {
		t.Errorf("YAML round trip: %+v", got)
	}

	r = a.do("GET", "/api/v1/namespaces/default/services", nil, "Accept", "application/yaml").expect(t, http.StatusOK)
	var list corev1.ServiceList
	if err := yaml.UnmarshalStrict(r.body, &list); err != nil {
		t.Fatalf("list is not YAML: %v", err)
	}
	if list.Kind != "ServiceList" || len(list.Items) != 1 || list.ResourceVersion == "" {
		t.Errorf("YAML list: kind %q, %d items, rv %q", list.Kind, len(list.Items), list.ResourceVersion)
	}

	r = a.do("GET", "/api/v1/namespaces/default/services/nope", nil, "Accept", "application/yaml").expect(t, http.StatusNotFound)
	var st metav1.Status
	if err := yaml.Unmarshal(r.body, &st); err != nil || st.Reason != metav1.StatusReasonNotFound || st.Kind != "Status" {
		t.Errorf("YAML status: %v %+v", err, st)
	}

	// A multi-document body is refused rather than half-used.
	two := append(append(mustYAML(t, testService("a", nil)), "---\n"...), mustYAML(t, testService("b", nil))...)
	st = a.do("POST", "/api/v1/namespaces/default/services", two, "Content-Type", "application/yaml").
		expect(t, http.StatusBadRequest).status(t)
	if !strings.Contains(st.Message, "/lab/v1/apply") {
		t.Errorf("multi-document message: %q", st.Message)
	}
}

// TestListSelectors filters lists by label and field selectors, within a
// namespace and across all, sorted by namespace/name.
func TestListSelectors(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	for _, s := range []struct{ ns, name, tier string }{
		{"default", "b", "web"}, {"default", "a", "db"}, {"kube-system", "c", "web"},
	} {
		a.do("POST", "/api/v1/namespaces/"+s.ns+"/services", mustJSON(t, testService(s.name, map[string]string{"tier": s.tier}))).
			expect(t, http.StatusCreated)
	}
	names := func(path string) []string {
		var list corev1.ServiceList
		a.do("GET", path, nil).expect(t, http.StatusOK).into(t, &list)
		out := []string{}
		for _, s := range list.Items {
			out = append(out, s.Namespace+"/"+s.Name)
		}
		return out
	}
	cases := []struct {
		path string
		want []string
	}{
		{"/api/v1/services", []string{"default/a", "default/b", "kube-system/c"}},
		{"/api/v1/namespaces/default/services", []string{"default/a", "default/b"}},
		{"/api/v1/services?labelSelector=tier%3Dweb", []string{"default/b", "kube-system/c"}},
		{"/api/v1/services?labelSelector=tier+in+(db)", []string{"default/a"}},
		{"/api/v1/services?fieldSelector=metadata.name%3Db", []string{"default/b"}},
		{"/api/v1/services?fieldSelector=metadata.namespace%21%3Ddefault", []string{"kube-system/c"}},
		{"/api/v1/namespaces/default/services?labelSelector=tier%3Dweb&fieldSelector=metadata.name%3Da", []string{}},
		{"/api/v1/namespaces/nope/services", []string{}},
		{"/api/v1/services?resourceVersion=1&limit=1", []string{"default/a", "default/b", "kube-system/c"}}, // ignored
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, names(tc.path)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", tc.path, diff)
		}
	}
}

// TestPatch applies each patch type through GuaranteedUpdate and checks the
// result, the no-op case (no write) and the patch-specific refusals.
func TestPatch(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	svc := testService("web", map[string]string{"app": "web"})
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc.Spec.Ports = []corev1.ServicePort{
		{Name: "http", Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP},
		{Name: "https", Port: 443, NodePort: 30443, Protocol: corev1.ProtocolTCP},
	}
	var created corev1.Service
	a.do("POST", "/api/v1/namespaces/default/services", mustJSON(t, svc)).expect(t, http.StatusCreated).into(t, &created)
	path := "/api/v1/namespaces/default/services/web"

	patch := func(ct, body string, code int) corev1.Service {
		t.Helper()
		var out corev1.Service
		r := a.do("PATCH", path, []byte(body), "Content-Type", ct).expect(t, code)
		if code == http.StatusOK {
			r.into(t, &out)
		}
		return out
	}

	// Strategic merge: ports merge by port, keeping the other port and nodePorts.
	out := patch(strategicPatchType, `{"spec":{"ports":[{"port":443,"targetPort":8443}]}}`, http.StatusOK)
	wantPorts := []corev1.ServicePort{
		{Name: "http", Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP},
		{Name: "https", Port: 443, NodePort: 30443, Protocol: corev1.ProtocolTCP, TargetPort: intOrString(8443)},
	}
	if diff := cmp.Diff(wantPorts, out.Spec.Ports); diff != "" {
		t.Errorf("strategic merge ports (-want +got):\n%s", diff)
	}
	// Merge patch: lists are replaced wholesale.
	out = patch(mergePatchType, `{"spec":{"ports":[{"name":"http","port":80,"protocol":"TCP"}]},"metadata":{"labels":{"app":null,"tier":"web"}}}`, http.StatusOK)
	if len(out.Spec.Ports) != 1 || !cmp.Equal(out.Labels, map[string]string{"tier": "web"}) {
		t.Errorf("merge patch: ports %v labels %v", out.Spec.Ports, out.Labels)
	}
	// JSON patch.
	out = patch(jsonPatchType, `[{"op":"replace","path":"/spec/ports/0/port","value":8080},{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]`, http.StatusOK)
	if out.Spec.Ports[0].Port != 8080 || out.Annotations["a"] != "b" {
		t.Errorf("json patch: %+v %v", out.Spec.Ports, out.Annotations)
	}
	// A patch that changes nothing writes nothing.
	rv := out.ResourceVersion
	out = patch(mergePatchType, `{"metadata":{"labels":{"tier":"web"}}}`, http.StatusOK)
	if out.ResourceVersion != rv || a.st.ResourceVersion() != mustUint(t, rv) {
		t.Errorf("no-op patch wrote: rv %s → %s, store at %d", rv, out.ResourceVersion, a.st.ResourceVersion())
	}

	for _, tc := range []struct {
		name, ct, body string
		code           int
		reason         metav1.StatusReason
	}{
		{"json patch test fails", jsonPatchType, `[{"op":"test","path":"/spec/type","value":"ClusterIP"}]`, 422, metav1.StatusReasonInvalid},
		{"json patch undecodable", jsonPatchType, `{"op":"add"}`, 400, metav1.StatusReasonBadRequest},
		{"merge patch not JSON", mergePatchType, `spec: {}`, 400, metav1.StatusReasonBadRequest},
		{"rename", mergePatchType, `{"metadata":{"name":"other"}}`, 400, metav1.StatusReasonBadRequest},
		{"move namespace", mergePatchType, `{"metadata":{"namespace":"kube-system"}}`, 400, metav1.StatusReasonBadRequest},
		{"stale resourceVersion", mergePatchType, `{"metadata":{"resourceVersion":"1"}}`, 409, metav1.StatusReasonConflict},
		{"change kind", mergePatchType, `{"kind":"Pod"}`, 400, metav1.StatusReasonBadRequest},
		{"server-side apply", applyPatchType, `{}`, 415, metav1.StatusReasonUnsupportedMediaType},
		{"unknown type", "application/json", `{}`, 415, metav1.StatusReasonUnsupportedMediaType},
	} {
		r := a.do("PATCH", path, []byte(tc.body), "Content-Type", tc.ct)
		if r.code != tc.code || r.status(t).Reason != tc.reason {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.code, r.body, tc.code, tc.reason)
		}
	}
	if got := a.st.ResourceVersion(); got != mustUint(t, rv) {
		t.Errorf("refused patches wrote: store at %d, want %s", got, rv)
	}
	a.do("PATCH", "/api/v1/namespaces/default/services/nope", []byte(`{}`), "Content-Type", mergePatchType).
		expect(t, http.StatusNotFound)
}

// TestDeletePreconditions deletes with a DeleteOptions body.
func TestDeletePreconditions(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	var svc corev1.Service
	a.do("POST", "/api/v1/namespaces/default/services", mustJSON(t, testService("web", nil))).
		expect(t, http.StatusCreated).into(t, &svc)
	path := "/api/v1/namespaces/default/services/web"
	body := func(uid, rv string) []byte {
		return []byte(fmt.Sprintf(`{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":%q,"resourceVersion":%q}}`, uid, rv))
	}
	// kube-apiserver's rest.BeforeDelete messages (which name the kind).
	st := a.do("DELETE", path, body("wrong-uid", svc.ResourceVersion)).expect(t, http.StatusConflict).status(t)
	want := fmt.Sprintf(`Operation cannot be fulfilled on Service "web": the UID in the precondition (wrong-uid) does not match `+
		`the UID in record (%s). The object might have been deleted and then recreated`, svc.UID)
	if st.Reason != metav1.StatusReasonConflict || st.Message != want {
		t.Errorf("uid precondition: %s %q, want Conflict %q", st.Reason, st.Message, want)
	}
	st = a.do("DELETE", path, []byte(`{"preconditions":{"resourceVersion":"1"}}`)).expect(t, http.StatusConflict).status(t)
	want = fmt.Sprintf(`Operation cannot be fulfilled on Service "web": the ResourceVersion in the precondition (1) does not match `+
		`the ResourceVersion in record (%s). The object might have been modified`, svc.ResourceVersion)
	if st.Message != want {
		t.Errorf("rv precondition message %q, want %q", st.Message, want)
	}
	var deleted corev1.Service
	a.do("DELETE", path, body(string(svc.UID), svc.ResourceVersion)).expect(t, http.StatusOK).into(t, &deleted)
	if deleted.Name != "web" || deleted.Kind != "Service" {
		t.Errorf("deleted: %+v", deleted)
	}
	a.do("DELETE", path, nil).expect(t, http.StatusNotFound)
}

// TestGenerateName creates with metadata.generateName only.
func TestGenerateName(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	svc := testService("", nil)
	svc.GenerateName = "web-"
	var out corev1.Service
	a.do("POST", "/api/v1/namespaces/default/services", mustJSON(t, svc)).expect(t, http.StatusCreated).into(t, &out)
	if !strings.HasPrefix(out.Name, "web-") || len(out.Name) != len("web-")+5 {
		t.Errorf("generated name %q", out.Name)
	}
}

// TestFieldValidation: unknown fields are a Warning header by default,
// ignored with Ignore, and 400 with Strict.
func TestFieldValidation(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	body := []byte(`{"metadata":{"name":"%s"},"spec":{"ports":[{"port":80}],"bogus":1}}`)
	mk := func(name string) []byte { return []byte(fmt.Sprintf(string(body), name)) }
	r := a.do("POST", "/api/v1/namespaces/default/services", mk("a")).expect(t, http.StatusCreated)
	if diff := cmp.Diff([]string{`299 - "unknown field \"spec.bogus\""`}, r.header.Values("Warning")); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	r = a.do("POST", "/api/v1/namespaces/default/services?fieldValidation=Ignore", mk("b")).expect(t, http.StatusCreated)
	if w := r.header.Values("Warning"); len(w) != 0 {
		t.Errorf("Ignore still warned: %v", w)
	}
	st := a.do("POST", "/api/v1/namespaces/default/services?fieldValidation=Strict", mk("c")).expect(t, http.StatusBadRequest).status(t)
	if st.Message != `strict decoding error: unknown field "spec.bogus"` {
		t.Errorf("strict: %q", st.Message)
	}
	a.do("POST", "/api/v1/namespaces/default/services?fieldValidation=Maybe", mk("d")).expect(t, http.StatusBadRequest)
}

// TestExtraRoutes mounts a route through Options.Extra beside the API.
func TestExtraRoutes(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{Extra: func(r *mux.Router) {
		r.HandleFunc("/lab/v1/hello", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hi")) })
	}})
	if r := a.do("GET", "/lab/v1/hello", nil).expect(t, http.StatusOK); string(r.body) != "hi" {
		t.Errorf("extra route body %q", r.body)
	}
	a.do("GET", "/api/v1/namespaces", nil).expect(t, http.StatusOK)
	st := a.do("GET", "/lab/v1/nothing", nil).expect(t, http.StatusNotFound).status(t)
	if st.Kind != "Status" || st.Reason != metav1.StatusReasonNotFound {
		t.Errorf("unknown path: %+v", st)
	}
}
