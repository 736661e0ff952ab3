package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sjson "sigs.k8s.io/json"

	"github.com/svclab/svclab/apiserver/store"
)

// LastAppliedAnnotation is the annotation in which apply, like kubectl, keeps
// the manifest it last applied, for the next apply's three-way merge.
const LastAppliedAnnotation = corev1.LastAppliedConfigAnnotation

// Apply actions, as kubectl prints them.
const (
	ActionCreated    = "created"
	ActionConfigured = "configured"
	ActionUnchanged  = "unchanged"
	ActionError      = "error"
)

// ApplyResult is the outcome of applying one object of a manifest.
type ApplyResult struct {
	// Index is the object's position in the manifest, counting every
	// document and every item of a v1 List, from 0.
	Index      int    `json:"index"`
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name,omitempty"`
	// Action is created, configured, unchanged or error.
	Action string `json:"action"`
	// Status explains an error (a Status like the API's own errors).
	Status *metav1.Status `json:"status,omitempty"`
	// Warnings are field-validation warnings (unknown or duplicate fields).
	Warnings []string `json:"warnings,omitempty"`
}

// ApplyResponse is the answer of POST /lab/v1/apply. The HTTP status is 200
// when every object was applied, 207 (Multi-Status) when at least one result
// is an error, and 400 (a plain Status, no results) when the body holds no
// decodable object at all.
type ApplyResponse struct {
	Results []ApplyResult `json:"results"`
}

// manifestDoc is one object of a manifest, or the error that kept a document
// from decoding.
type manifestDoc struct {
	raw []byte // JSON
	err error
}

// splitManifest splits a multi-document YAML (or a JSON stream) into objects,
// expanding v1 Lists into their items. A YAML document that does not parse
// becomes an error entry and the following documents are still read; a JSON
// syntax error ends the stream. Empty documents are skipped.
func splitManifest(body []byte) []manifestDoc {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(body), 4096)
	var docs []manifestDoc
	for range len(body) + 1 { // each round consumes input: bounded
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			docs = append(docs, manifestDoc{err: fmt.Errorf("decode document: %w", err)})
			var ye utilyaml.YAMLSyntaxError
			if errors.As(err, &ye) {
				continue
			}
			break
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(raw, &tm); err == nil && tm.Kind == "List" && tm.APIVersion == "v1" {
			var list struct {
				Items []json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal(raw, &list); err != nil {
				docs = append(docs, manifestDoc{err: fmt.Errorf("decode List: %w", err)})
				continue
			}
			for _, item := range list.Items {
				docs = append(docs, manifestDoc{raw: item})
			}
			continue
		}
		docs = append(docs, manifestDoc{raw: raw})
	}
	return docs
}

// apply serves POST /lab/v1/apply?namespace=NS: every object of the manifest
// is created, or updated the way `kubectl apply` updates it, one by one; an
// error in one object does not stop the others.
func (h *handler) apply(w http.ResponseWriter, r *http.Request, rq *request) {
	rq.format = formatJSON
	if r.Method != http.MethodPost {
		h.methodNotAllowed(w, r, rq, "POST")
		return
	}
	if _, se := bodyFormat(r); se != nil {
		h.fail(w, r, rq, se, errTarget{})
		return
	}
	fv, err := parseFieldValidation(r)
	if err != nil {
		h.fail(w, r, rq, err, errTarget{})
		return
	}
	if err := refuseDryRun(r); err != nil {
		h.fail(w, r, rq, err, errTarget{})
		return
	}
	defNS, explicit := r.URL.Query().Get("namespace"), true
	if defNS == "" {
		defNS, explicit = metav1.NamespaceDefault, false
	}
	if msgs := apivalidation.ValidateNamespaceName(defNS, false); len(msgs) > 0 {
		h.fail(w, r, rq, apierrors.NewBadRequest(fmt.Sprintf("invalid namespace %q: %v", defNS, msgs)), errTarget{})
		return
	}
	body, err := readBody(w, r, h.maxBody)
	if err != nil {
		h.fail(w, r, rq, err, errTarget{})
		return
	}
	docs := splitManifest(body)
	decoded := 0
	for _, d := range docs {
		if d.err == nil {
			decoded++
		}
	}
	if decoded == 0 {
		msg := "no objects passed to apply"
		if len(docs) > 0 {
			msg = docs[0].err.Error()
		}
		h.fail(w, r, rq, apierrors.NewBadRequest(msg), errTarget{})
		return
	}
	resp := ApplyResponse{Results: make([]ApplyResult, 0, len(docs))}
	code := http.StatusOK
	for i, d := range docs {
		var res ApplyResult
		if d.err != nil {
			res = ApplyResult{Action: ActionError, Status: statusObject(apierrors.NewBadRequest(d.err.Error()))}
		} else {
			res = h.applyOne(r.Context(), d.raw, defNS, explicit, fv)
		}
		res.Index = i
		if res.Action == ActionError {
			code = http.StatusMultiStatus
		}
		resp.Results = append(resp.Results, res)
	}
	h.writeOut(w, r, rq, code, resp)
}

// applyOne applies one object (JSON). Failures are reported in the result.
func (h *handler) applyOne(ctx context.Context, raw []byte, defNS string, explicitNS bool, fv fieldValidation) ApplyResult {
	var result ApplyResult
	fail := func(err error, t errTarget) ApplyResult {
		result.Action = ActionError
		result.Status = statusObject(statusFor(err, t))
		return result
	}
	var m map[string]any
	if err := sjson.UnmarshalCaseSensitivePreserveInts(raw, &m); err != nil {
		return fail(apierrors.NewBadRequest(fmt.Sprintf("a manifest document must be an object: %v", err)), errTarget{})
	}
	var tm metav1.TypeMeta
	_ = json.Unmarshal(raw, &tm) // m decoded, so raw is a JSON object
	result.APIVersion, result.Kind = tm.APIVersion, tm.Kind
	if tm.APIVersion == "" || tm.Kind == "" {
		return fail(apierrors.NewBadRequest(fmt.Sprintf("Object 'Kind' or 'apiVersion' is missing in '%s'", truncate(raw, 200))), errTarget{})
	}
	res := h.byKind[schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)]
	if res == nil {
		return fail(apierrors.NewBadRequest(fmt.Sprintf("no matches for kind %q in version %q", tm.Kind, tm.APIVersion)), errTarget{})
	}
	obj := res.New()
	warnings, err := decodeJSON(raw, res, obj, fv)
	result.Warnings = warnings
	result.Name = obj.GetName()
	t := targetOf(res, obj.GetName())
	if err != nil {
		return fail(err, t)
	}
	md, _ := m["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		m["metadata"] = md
	}
	if res.Namespaced {
		switch ns := obj.GetNamespace(); {
		case ns == "":
			obj.SetNamespace(defNS)
		case explicitNS && ns != defNS:
			result.Namespace = ns
			return fail(apierrors.NewBadRequest(fmt.Sprintf(
				"the namespace from the provided object %q does not match the namespace %q", ns, defNS)), t)
		}
		md["namespace"] = obj.GetNamespace()
		result.Namespace = obj.GetNamespace()
	} else {
		obj.SetNamespace("")
		delete(md, "namespace")
	}
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		return fail(apierrors.NewBadRequest("cannot use generate name with apply"), t)
	}
	if obj.GetResourceVersion() != "" {
		// Like kubectl: a resourceVersion in the manifest is a precondition on update.
		md["resourceVersion"] = obj.GetResourceVersion()
	}

	// The last-applied configuration is the manifest without that annotation
	// (kubectl leaves an empty annotations map); the "modified" side of the
	// three-way merge is the manifest with it.
	annots, _ := md["annotations"].(map[string]any)
	if annots == nil {
		annots = map[string]any{}
	}
	delete(annots, LastAppliedAnnotation)
	md["annotations"] = annots
	lastApplied, err := json.Marshal(m)
	if err != nil {
		return fail(fmt.Errorf("encode last-applied configuration: %w", err), t)
	}
	// kubectl encodes it with a json.Encoder, which ends the value with a newline; without it, a
	// kubectl apply after a lab apply (and the other way round) would see a change and answer
	// "configured" instead of "unchanged".
	lastApplied = append(lastApplied, '\n')
	annots[LastAppliedAnnotation] = string(lastApplied)
	modified, err := json.Marshal(m)
	if err != nil {
		return fail(fmt.Errorf("encode manifest: %w", err), t)
	}
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[LastAppliedAnnotation] = string(lastApplied)
	obj.SetAnnotations(a)
	if err := h.checkUnstorable(ctx, res, obj); err != nil {
		return fail(err, t)
	}

	_, err = h.st.Get(ctx, res, obj.GetNamespace(), obj.GetName())
	switch {
	case errors.Is(err, store.ErrNotFound):
		if obj.GetResourceVersion() != "" {
			return fail(apierrors.NewBadRequest("resourceVersion should not be set on objects to be created"), t)
		}
		if res.Namespaced {
			t.createNamespace = obj.GetNamespace()
		}
		_, err := h.st.Create(ctx, res, obj)
		if err == nil {
			result.Action = ActionCreated
			return result
		}
		if !errors.Is(err, store.ErrAlreadyExists) {
			return fail(err, t)
		}
		t.createNamespace = "" // created meanwhile: update it below
	case err != nil:
		return fail(err, t)
	}

	lookup, err := strategicpatch.NewPatchMetaFromStruct(res.New())
	if err != nil {
		return fail(fmt.Errorf("patch metadata of %s: %w", res.Kind, err), t)
	}
	unchanged := false
	_, err = h.st.GuaranteedUpdate(ctx, res, obj.GetNamespace(), obj.GetName(), store.UpdateOptions{},
		func(cur store.Object) (store.Object, error) {
			setTypeMeta(res, cur)
			current, err := json.Marshal(cur)
			if err != nil {
				return nil, fmt.Errorf("encode live %s: %w", res.Kind, err)
			}
			cur.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
			var original []byte
			if s := cur.GetAnnotations()[LastAppliedAnnotation]; s != "" {
				original = []byte(s)
			}
			patch, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, lookup, true)
			if err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("compute apply patch: %v", err))
			}
			if string(patch) == "{}" {
				unchanged = true
				return cur, nil
			}
			merged, err := strategicpatch.StrategicMergePatchUsingLookupPatchMeta(current, patch, lookup)
			if err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("apply patch: %v", err))
			}
			next := res.New()
			if _, err := decodeJSON(merged, res, next, fieldIgnore); err != nil {
				return nil, err
			}
			next.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
			out, err := finishPatched(res, cur, next, obj.GetNamespace(), obj.GetName())
			if err != nil {
				return nil, err
			}
			unchanged = out == cur
			return out, nil
		})
	if err != nil {
		return fail(err, t)
	}
	result.Action = ActionConfigured
	if unchanged {
		result.Action = ActionUnchanged
	}
	return result
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
