package rest

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/gorilla/mux"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/svclab/svclab/apiserver/store"
)

// resourceVerbs are the verbs every served resource supports (no
// deletecollection), as discovery lists them.
var resourceVerbs = metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"}

// statusVerbs are the verbs of a status subresource.
var statusVerbs = metav1.Verbs{"get", "patch", "update"}

// shortNames and categories are kube-apiserver's for each resource, so that
// `kubectl get svc,po` and `kubectl get all` work.
var (
	shortNames = map[string][]string{
		"namespaces": {"ns"}, "nodes": {"no"}, "services": {"svc"}, "pods": {"po"}, "endpoints": {"ep"},
	}
	categories = map[string][]string{"services": {"all"}, "pods": {"all"}}
)

// singularName returns the singular of a resource name ("endpoints" stays).
func singularName(res *store.Resource) string {
	return strings.ToLower(res.Kind)
}

// apiResourceList returns the discovery document of one group version.
func apiResourceList(group, ver string) *metav1.APIResourceList {
	gv := ver
	if group != "" {
		gv = group + "/" + ver
	}
	l := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{APIVersion: "v1", Kind: "APIResourceList"},
		GroupVersion: gv,
		APIResources: []metav1.APIResource{},
	}
	for _, res := range store.Resources() {
		if res.Group != group || res.Version != ver {
			continue
		}
		l.APIResources = append(l.APIResources, metav1.APIResource{
			Name: res.Name, SingularName: singularName(res), Namespaced: res.Namespaced, Kind: res.Kind,
			Verbs: resourceVerbs, ShortNames: shortNames[res.Name], Categories: categories[res.Name],
		})
		if res.StatusSubresource {
			l.APIResources = append(l.APIResources, metav1.APIResource{
				Name: res.Name + "/status", Namespaced: res.Namespaced, Kind: res.Kind, Verbs: statusVerbs,
			})
		}
	}
	// kube-apiserver lists resources by name, subresources after their
	// resource; kubectl expands "all" in this order (pods before services).
	slices.SortFunc(l.APIResources, func(a, b metav1.APIResource) int { return strings.Compare(a.Name, b.Name) })
	return l
}

// apiGroups returns the non-core groups served, with their versions.
func apiGroups() []metav1.APIGroup {
	var groups []metav1.APIGroup
	seen := map[string]int{}
	for _, res := range store.Resources() {
		if res.Group == "" {
			continue
		}
		gvd := metav1.GroupVersionForDiscovery{GroupVersion: res.APIVersion(), Version: res.Version}
		i, ok := seen[res.Group]
		if !ok {
			seen[res.Group] = len(groups)
			groups = append(groups, metav1.APIGroup{Name: res.Group, Versions: []metav1.GroupVersionForDiscovery{gvd}, PreferredVersion: gvd})
			continue
		}
		g := &groups[i]
		if !containsVersion(g.Versions, gvd.Version) {
			g.Versions = append(g.Versions, gvd)
		}
	}
	return groups
}

func containsVersion(vs []metav1.GroupVersionForDiscovery, v string) bool {
	for _, x := range vs {
		if x.Version == v {
			return true
		}
	}
	return false
}

// DefaultVersion is the /version answer: Kubernetes version of the k8s.io/api
// module svclab is built with (v0.37.2 → v1.37.2), with "-svclab" appended,
// and the Go runtime's details.
func DefaultVersion() version.Info {
	major, minor, git := "1", "0", "v1.0.0-svclab"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path != "k8s.io/api" {
				continue
			}
			var ma, mi, pa int
			if _, err := fmt.Sscanf(m.Version, "v%d.%d.%d", &ma, &mi, &pa); err == nil && ma == 0 {
				minor = fmt.Sprint(mi)
				git = fmt.Sprintf("v1.%d.%d-svclab", mi, pa)
			}
		}
	}
	return version.Info{
		Major: major, Minor: minor, GitVersion: git, GitTreeState: "clean",
		GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// discoveryRoutes mounts /api, /apis, the group and version documents and
// /version. They are answered as plain JSON: kubectl's request for aggregated
// discovery (as=APIGroupDiscoveryList) falls back to these documents.
func (h *handler) discoveryRoutes(r *mux.Router) {
	doc := func(v func(r *http.Request) any) http.Handler {
		return h.nonResource(func(w http.ResponseWriter, r *http.Request, rq *request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				h.methodNotAllowed(w, r, rq, "GET")
				return
			}
			h.writeOut(w, r, rq, http.StatusOK, v(r))
		})
	}
	r.Handle("/api", doc(func(r *http.Request) any {
		return &metav1.APIVersions{
			TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
			Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
				{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
			},
		}
	}))
	r.Handle("/api/v1", doc(func(*http.Request) any { return apiResourceList("", "v1") }))
	r.Handle("/apis", doc(func(*http.Request) any {
		return &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "APIGroupList"}, Groups: apiGroups()}
	}))
	for _, g := range apiGroups() {
		g := g
		g.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "APIGroup"}
		r.Handle("/apis/"+g.Name, doc(func(*http.Request) any { return &g }))
		for _, v := range g.Versions {
			r.Handle("/apis/"+v.GroupVersion, doc(func(*http.Request) any { return apiResourceList(g.Name, v.Version) }))
		}
	}
	// kube-apiserver writes /version with WriteRawJSON: always indented.
	r.Handle("/version", h.nonResource(func(w http.ResponseWriter, r *http.Request, rq *request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, r, rq, "GET")
			return
		}
		if err := writeBody(w, http.StatusOK, formatJSON, true, h.version); err != nil {
			h.log.Debug("write response", "path", r.URL.Path, "err", err)
		}
	}))
}
