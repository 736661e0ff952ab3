package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/svclab/svclab/apiserver/store"
)

// TestDiscovery compares the discovery documents kubectl reads with the
// expected documents in full.
func TestDiscovery(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})

	var versions metav1.APIVersions
	a.do("GET", "/api", nil).expect(t, http.StatusOK).into(t, &versions)
	wantVersions := metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
			{ClientCIDR: "0.0.0.0/0", ServerAddress: strings.TrimPrefix(a.srv.URL, "http://")},
		},
	}
	if diff := cmp.Diff(wantVersions, versions); diff != "" {
		t.Errorf("/api (-want +got):\n%s", diff)
	}

	all := metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"}
	st := metav1.Verbs{"get", "patch", "update"}
	var core metav1.APIResourceList
	a.do("GET", "/api/v1", nil).expect(t, http.StatusOK).into(t, &core)
	wantCore := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: "v1",
		// By name, as kube-apiserver lists them (kubectl get all: pods, then services).
		APIResources: []metav1.APIResource{
			{Name: "endpoints", SingularName: "endpoints", Namespaced: true, Kind: "Endpoints", Verbs: all, ShortNames: []string{"ep"}},
			{Name: "namespaces", SingularName: "namespace", Kind: "Namespace", Verbs: all, ShortNames: []string{"ns"}},
			{Name: "namespaces/status", Kind: "Namespace", Verbs: st},
			{Name: "nodes", SingularName: "node", Kind: "Node", Verbs: all, ShortNames: []string{"no"}},
			{Name: "nodes/status", Kind: "Node", Verbs: st},
			{Name: "pods", SingularName: "pod", Namespaced: true, Kind: "Pod", Verbs: all,
				ShortNames: []string{"po"}, Categories: []string{"all"}},
			{Name: "pods/status", Namespaced: true, Kind: "Pod", Verbs: st},
			{Name: "services", SingularName: "service", Namespaced: true, Kind: "Service", Verbs: all,
				ShortNames: []string{"svc"}, Categories: []string{"all"}},
			{Name: "services/status", Namespaced: true, Kind: "Service", Verbs: st},
		},
	}
	if diff := cmp.Diff(wantCore, core); diff != "" {
		t.Errorf("/api/v1 (-want +got):\n%s", diff)
	}

	gv := metav1.GroupVersionForDiscovery{GroupVersion: "discovery.k8s.io/v1", Version: "v1"}
	var groups metav1.APIGroupList
	a.do("GET", "/apis", nil).expect(t, http.StatusOK).into(t, &groups)
	wantGroups := metav1.APIGroupList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
		Groups:   []metav1.APIGroup{{Name: "discovery.k8s.io", Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}},
	}
	if diff := cmp.Diff(wantGroups, groups); diff != "" {
		t.Errorf("/apis (-want +got):\n%s", diff)
	}
	var group metav1.APIGroup
	a.do("GET", "/apis/discovery.k8s.io", nil).expect(t, http.StatusOK).into(t, &group)
	wantGroup := wantGroups.Groups[0]
	wantGroup.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
	if diff := cmp.Diff(wantGroup, group); diff != "" {
		t.Errorf("/apis/discovery.k8s.io (-want +got):\n%s", diff)
	}
	var disc metav1.APIResourceList
	a.do("GET", "/apis/discovery.k8s.io/v1", nil).expect(t, http.StatusOK).into(t, &disc)
	wantDisc := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: "discovery.k8s.io/v1",
		APIResources: []metav1.APIResource{
			{Name: "endpointslices", SingularName: "endpointslice", Namespaced: true, Kind: "EndpointSlice", Verbs: all},
		},
	}
	if diff := cmp.Diff(wantDisc, disc); diff != "" {
		t.Errorf("/apis/discovery.k8s.io/v1 (-want +got):\n%s", diff)
	}

	// kubectl asks for aggregated discovery first; plain JSON is its fallback.
	r := a.do("GET", "/api", nil, "Accept",
		"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
	if r.expect(t, http.StatusOK); r.header.Get("Content-Type") != "application/json" {
		t.Errorf("aggregated discovery request answered with %q", r.header.Get("Content-Type"))
	}

	var v version.Info
	a.do("GET", "/version", nil).expect(t, http.StatusOK).into(t, &v)
	if diff := cmp.Diff(DefaultVersion(), v); diff != "" {
		t.Errorf("/version (-want +got):\n%s", diff)
	}
	if v.Major != "1" || !strings.HasPrefix(v.GitVersion, "v1.") || !strings.HasSuffix(v.GitVersion, "-svclab") {
		t.Errorf("version %+v", v)
	}
}

// TestHealth checks /healthz, /livez and /readyz (with a failing Ready).
func TestHealth(t *testing.T) {
	var notReady error
	a := newTestAPI(t, store.Options{}, Options{Ready: func() error { return notReady }})
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		if r := a.do("GET", p, nil).expect(t, http.StatusOK); string(r.body) != "ok" {
			t.Errorf("%s: %q", p, r.body)
		}
	}
	notReady = errors.New("dataplane not synced")
	r := a.do("GET", "/readyz", nil).expect(t, http.StatusServiceUnavailable)
	if !strings.Contains(string(r.body), "dataplane not synced") {
		t.Errorf("/readyz body %q", r.body)
	}
	a.do("GET", "/healthz", nil).expect(t, http.StatusOK)
}

// TestOpenAPI: /openapi/v3 lists the group versions, and each document has a
// PATCH operation per kind carrying x-kubernetes-group-version-kind and the
// fieldValidation parameter (what kubectl checks); /openapi/v2 is 404.
func TestOpenAPI(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	a.do("GET", "/openapi/v3", nil).expect(t, http.StatusOK).into(t, &index)
	if diff := cmp.Diff([]string{"api/v1", "apis/discovery.k8s.io/v1"}, slices.Sorted(maps.Keys(index.Paths))); diff != "" {
		t.Errorf("openapi index (-want +got):\n%s", diff)
	}
	patchable := map[string]bool{}
	for _, e := range index.Paths {
		var doc oaDocument
		a.do("GET", e.ServerRelativeURL, nil).expect(t, http.StatusOK).into(t, &doc)
		for path, p := range doc.Paths {
			if p.Patch == nil {
				continue
			}
			hasFV := false
			for _, prm := range p.Patch.Parameters {
				hasFV = hasFV || (prm.Name == "fieldValidation" && prm.In == "query")
			}
			if !hasFV {
				t.Errorf("%s PATCH lacks fieldValidation", path)
			}
			patchable[p.Patch.GVK["kind"].(string)+" "+path] = true
		}
	}
	want := map[string]bool{
		"Namespace /api/v1/namespaces/{name}": true, "Namespace /api/v1/namespaces/{name}/status": true,
		"Node /api/v1/nodes/{name}": true, "Node /api/v1/nodes/{name}/status": true,
		"Service /api/v1/namespaces/{namespace}/services/{name}": true, "Service /api/v1/namespaces/{namespace}/services/{name}/status": true,
		"Pod /api/v1/namespaces/{namespace}/pods/{name}": true, "Pod /api/v1/namespaces/{namespace}/pods/{name}/status": true,
		"Endpoints /api/v1/namespaces/{namespace}/endpoints/{name}":                            true,
		"EndpointSlice /apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}": true,
	}
	if diff := cmp.Diff(want, patchable); diff != "" {
		t.Errorf("PATCH operations (-want +got):\n%s", diff)
	}
	a.do("GET", "/openapi/v2", nil).expect(t, http.StatusNotFound)
}

// TestMetrics counts requests per verb, resource, scope and code, as
// kube-apiserver's apiserver_request_total does.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newTestAPI(t, store.Options{}, Options{Registerer: reg})
	a.create(t, "default", testService("web", nil))
	a.do("POST", "/api/v1/namespaces/default/services", mustJSON(t, testService("web", nil))).expect(t, http.StatusConflict)
	a.do("GET", "/api/v1/namespaces/default/services/web", nil).expect(t, http.StatusOK)
	a.do("GET", "/api/v1/namespaces/default/services/nope", nil).expect(t, http.StatusNotFound)
	a.do("GET", "/api/v1/services", nil).expect(t, http.StatusOK)
	a.do("PATCH", "/api/v1/namespaces/default/services/web/status", []byte(`{}`), "Content-Type", mergePatchType).expect(t, http.StatusOK)
	a.do("DELETE", "/api/v1/namespaces/default/services/web", nil).expect(t, http.StatusOK)
	a.do("GET", "/apis/discovery.k8s.io/v1/endpointslices", nil).expect(t, http.StatusOK)
	a.do("GET", "/healthz", nil).expect(t, http.StatusOK)

	want := `code=200 component=apiserver group= resource= scope= subresource= verb=GET version= 1
code=200 component=apiserver group= resource=services scope=cluster subresource= verb=LIST version=v1 1
code=200 component=apiserver group= resource=services scope=resource subresource= verb=DELETE version=v1 1
code=200 component=apiserver group= resource=services scope=resource subresource= verb=GET version=v1 1
code=200 component=apiserver group= resource=services scope=resource subresource=status verb=PATCH version=v1 1
code=200 component=apiserver group=discovery.k8s.io resource=endpointslices scope=cluster subresource= verb=LIST version=v1 1
code=201 component=apiserver group= resource=services scope=namespace subresource= verb=POST version=v1 1
code=404 component=apiserver group= resource=services scope=resource subresource= verb=GET version=v1 1
code=409 component=apiserver group= resource=services scope=namespace subresource= verb=POST version=v1 1
`
	if diff := cmp.Diff(want, gatherText(t, reg, "apiserver_request_total")); diff != "" {
		t.Errorf("apiserver_request_total (-want +got):\n%s", diff)
	}
	if n := strings.Count(gatherText(t, reg, "apiserver_request_duration_seconds"), "\n"); n != 7 {
		t.Errorf("%d duration series, want 7 (the code is not one of its labels)", n)
	}

	// A second handler on the same registry shares the collectors.
	NewHandler(a.st, Options{Registerer: reg})
}

// gatherText renders the series of one metric family as sorted lines
// "label=value … value" (a histogram's value is its sample count).
func gatherText(t *testing.T, g prometheus.Gatherer, name string) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			lines = append(lines, fmt.Sprintf("%s %g", strings.Join(parts, " "), v))
		}
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestPrettyJSON: as kube-apiserver, JSON answers are indented by two spaces (no final newline)
// for curl, Wget and browsers or with ?pretty=true, compact with a newline otherwise; /version
// is always indented.
func TestPrettyJSON(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	indented := func(v any) string {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	compact := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(data) + "\n"
	}
	var list metav1.APIResourceList
	a.do("GET", "/api/v1", nil).expect(t, http.StatusOK).into(t, &list)
	var nf metav1.Status
	a.do("GET", "/api/v1/namespaces/default/services/nope", nil).expect(t, http.StatusNotFound).into(t, &nf)
	var v version.Info
	a.do("GET", "/version", nil).expect(t, http.StatusOK).into(t, &v)

	for _, tc := range []struct {
		path, ua string
		code     int
		want     string
	}{
		{"/api/v1", "curl/8.5.0", 200, indented(list)},
		{"/api/v1", "Wget/1.21.3", 200, indented(list)},
		{"/api/v1", "Mozilla/5.0 (X11; Linux x86_64)", 200, indented(list)},
		{"/api/v1", "kubectl/v1.34.0 (linux/amd64) kubernetes/abc", 200, compact(list)},
		{"/api/v1?pretty=true", "kubectl/v1.34.0", 200, indented(list)},
		{"/api/v1?pretty=false", "curl/8.5.0", 200, compact(list)},
		{"/api/v1/namespaces/default/services/nope", "curl/8.5.0", 404, indented(nf)},
		{"/api/v1/namespaces/default/services/nope", "Go-http-client/1.1", 404, compact(nf)},
		{"/version", "Go-http-client/1.1", 200, indented(v)},
	} {
		r := a.do("GET", tc.path, nil, "User-Agent", tc.ua).expect(t, tc.code)
		if diff := cmp.Diff(tc.want, string(r.body)); diff != "" {
			t.Errorf("GET %s as %q (-want +got):\n%s", tc.path, tc.ua, diff)
		}
	}
}
