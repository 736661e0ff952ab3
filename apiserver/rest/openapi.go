package rest

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/svclab/svclab/apiserver/store"
)

// A minimal OpenAPI v3 description: the paths and operations svclab serves,
// each marked with kube-apiserver's x-kubernetes-group-version-kind and
// x-kubernetes-action extensions and the query parameters it honours, but NO
// schemas. It exists so that kubectl (create, replace, apply), which checks
// /openapi/v3 for the fieldValidation parameter before sending a body, leaves
// validation to the server (?fieldValidation=Strict) instead of failing to
// download a schema. kubectl explain and client-side schema validation still
// have nothing to work with; /openapi/v2 is 404.

type oaParameter struct {
	Name        string         `json:"name"`
	In          string         `json:"in"`
	Description string         `json:"description,omitempty"`
	Required    bool           `json:"required,omitempty"`
	Schema      map[string]any `json:"schema"`
}

type oaOperation struct {
	Description string         `json:"description"`
	OperationID string         `json:"operationId"`
	Parameters  []oaParameter  `json:"parameters,omitempty"`
	Responses   map[string]any `json:"responses"`
	Action      string         `json:"x-kubernetes-action"`
	GVK         map[string]any `json:"x-kubernetes-group-version-kind"`
}

type oaPath struct {
	Get    *oaOperation `json:"get,omitempty"`
	Put    *oaOperation `json:"put,omitempty"`
	Post   *oaOperation `json:"post,omitempty"`
	Delete *oaOperation `json:"delete,omitempty"`
	Patch  *oaOperation `json:"patch,omitempty"`
}

type oaDocument struct {
	OpenAPI string            `json:"openapi"`
	Info    map[string]string `json:"info"`
	Paths   map[string]oaPath `json:"paths"`
	// Components is present but holds no schemas, so that schema-driven tools
	// find nothing rather than fail on a missing section.
	Components map[string]map[string]any `json:"components"`
}

var (
	stringSchema = map[string]any{"type": "string"}
	boolSchema   = map[string]any{"type": "boolean"}
	intSchema    = map[string]any{"type": "integer"}
)

func queryParam(name, desc string, schema map[string]any) oaParameter {
	return oaParameter{Name: name, In: "query", Description: desc, Schema: schema}
}

func pathParam(name string) oaParameter {
	return oaParameter{Name: name, In: "path", Required: true, Schema: stringSchema}
}

var (
	fieldValidationParam = queryParam("fieldValidation",
		"how to treat unknown or duplicate fields in the body: Ignore, Warn (default) or Strict", stringSchema)
	listParams = []oaParameter{
		queryParam("labelSelector", "label selector", stringSchema),
		queryParam("fieldSelector", "field selector", stringSchema),
		queryParam("watch", "stream changes instead of listing", boolSchema),
		queryParam("resourceVersion", "watch: start after this resourceVersion", stringSchema),
		queryParam("timeoutSeconds", "watch: end the stream after this many seconds", intSchema),
		queryParam("allowWatchBookmarks", "watch: send BOOKMARK events", boolSchema),
	}
	// deleteParams are the DeleteOptions a DELETE without body takes from the query.
	deleteParams = []oaParameter{
		queryParam("gracePeriodSeconds", "seconds before a pod is removed; 0 = at once (pods only)", intSchema),
		queryParam("propagationPolicy", "Orphan, Background or Foreground: accepted, without effect (no garbage collector)", stringSchema),
		queryParam("orphanDependents", "deprecated: accepted, without effect", boolSchema),
	}
)

// openAPIDocument returns the document of one group version ("" group = core).
func openAPIDocument(group, ver string) oaDocument {
	doc := oaDocument{OpenAPI: "3.0.0", Info: map[string]string{"title": "svclab", "version": DefaultVersion().GitVersion},
		Paths: map[string]oaPath{}, Components: map[string]map[string]any{"schemas": {}}}
	ok := map[string]any{"200": map[string]any{"description": "OK"}}
	for _, res := range store.Resources() {
		if res.Group != group || res.Version != ver {
			continue
		}
		prefix := "/api/" + ver
		if group != "" {
			prefix = "/apis/" + group + "/" + ver
		}
		gvk := map[string]any{"group": res.Group, "version": res.Version, "kind": res.Kind}
		op := func(action, verb string, params ...oaParameter) *oaOperation {
			return &oaOperation{
				Description: fmt.Sprintf("%s %s", verb, res.Kind),
				OperationID: fmt.Sprintf("%s%s", verb, res.Kind),
				Parameters:  params, Responses: ok, Action: action, GVK: gvk,
			}
		}
		coll, item := prefix+"/"+res.Name, prefix+"/"+res.Name+"/{name}"
		var nsParams []oaParameter
		if res.Namespaced {
			doc.Paths[coll] = oaPath{Get: op("list", "listAllNamespaces", listParams...)}
			coll = prefix + "/namespaces/{namespace}/" + res.Name
			item = coll + "/{name}"
			nsParams = []oaParameter{pathParam("namespace")}
		}
		itemParams := append(append([]oaParameter{}, nsParams...), pathParam("name"))
		withField := func(p []oaParameter) []oaParameter {
			return append(append([]oaParameter{}, p...), fieldValidationParam)
		}
		doc.Paths[coll] = oaPath{
			Get:  op("list", "list", append(append([]oaParameter{}, nsParams...), listParams...)...),
			Post: op("post", "create", withField(nsParams)...),
		}
		doc.Paths[item] = oaPath{
			Get:    op("get", "read", itemParams...),
			Put:    op("put", "replace", withField(itemParams)...),
			Patch:  op("patch", "patch", withField(itemParams)...),
			Delete: op("delete", "delete", append(append([]oaParameter{}, itemParams...), deleteParams...)...),
		}
		if res.StatusSubresource {
			doc.Paths[item+"/status"] = oaPath{
				Get:   op("get", "readStatus", itemParams...),
				Put:   op("put", "replaceStatus", withField(itemParams)...),
				Patch: op("patch", "patchStatus", withField(itemParams)...),
			}
		}
	}
	return doc
}

// openAPIRoutes mounts /openapi/v3 (the index of group versions, as
// kube-apiserver serves it) and one document per group version.
func (h *handler) openAPIRoutes(r *mux.Router) {
	index := map[string]map[string]string{}
	seen := map[string]bool{}
	for _, res := range store.Resources() {
		gvPath := "api/" + res.Version
		if res.Group != "" {
			gvPath = "apis/" + res.Group + "/" + res.Version
		}
		if seen[gvPath] {
			continue
		}
		seen[gvPath] = true
		data, err := json.Marshal(openAPIDocument(res.Group, res.Version))
		if err != nil {
			panic(fmt.Sprintf("rest: encode OpenAPI document: %v", err)) // static data: cannot happen
		}
		sum := sha512.Sum512(data)
		index[gvPath] = map[string]string{"serverRelativeURL": fmt.Sprintf("/openapi/v3/%s?hash=%X", gvPath, sum)}
		r.Handle("/openapi/v3/"+gvPath, h.nonResource(func(w http.ResponseWriter, r *http.Request, rq *request) {
			w.Header().Set("Content-Type", mediaJSON)
			if strings.Contains(r.URL.RawQuery, "hash=") {
				w.Header().Set("Cache-Control", "public, immutable")
			}
			_, _ = w.Write(data)
		}))
	}
	r.Handle("/openapi/v3", h.nonResource(func(w http.ResponseWriter, r *http.Request, rq *request) {
		h.writeOut(w, r, rq, http.StatusOK, map[string]any{"paths": index})
	}))
}
