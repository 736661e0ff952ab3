package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/svclab/svclab/apiserver/store"
)

// Patch content types (kube-apiserver's names).
const (
	jsonPatchType      = "application/json-patch+json"
	mergePatchType     = "application/merge-patch+json"
	strategicPatchType = "application/strategic-merge-patch+json"
	applyPatchType     = "application/apply-patch+yaml"
)

// listOptions parses ?labelSelector= and ?fieldSelector= (400 when
// unparseable; a field key the resource does not support is refused by the
// store's Validate, also 400).
func listOptions(r *http.Request, res *store.Resource) (store.ListOptions, error) {
	var opts store.ListOptions
	q := r.URL.Query()
	if s := q.Get("labelSelector"); s != "" {
		sel, err := labels.Parse(s)
		if err != nil {
			return opts, apierrors.NewBadRequest(err.Error())
		}
		opts.LabelSelector = sel
	}
	if s := q.Get("fieldSelector"); s != "" {
		sel, err := fields.ParseSelector(s)
		if err != nil {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
		}
		opts.FieldSelector = sel
	}
	if err := opts.Validate(res); err != nil {
		return opts, err
	}
	return opts, nil
}

// setTypeMeta sets apiVersion and kind on an object of res.
func setTypeMeta(res *store.Resource, obj runtime.Object) {
	obj.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
}

// buildList returns res's typed list (e.g. *corev1.ServiceList) of objs with
// apiVersion, kind and metadata.resourceVersion set, items with apiVersion
// and kind set too.
func buildList(res *store.Resource, objs []store.Object, rv uint64) (runtime.Object, error) {
	list := res.NewList()
	items := make([]runtime.Object, len(objs))
	for i, o := range objs {
		setTypeMeta(res, o)
		items[i] = o
	}
	if err := meta.SetList(list, items); err != nil {
		return nil, fmt.Errorf("build %s: %w", res.ListKind, err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", res.ListKind, err)
	}
	lm.SetResourceVersion(strconv.FormatUint(rv, 10))
	list.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: res.Group, Version: res.Version, Kind: res.ListKind})
	return list, nil
}

func (h *handler) list(w http.ResponseWriter, r *http.Request, rq *request, ns string) {
	res := rq.res
	f, se := negotiate(r, true)
	rq.format = f
	if se != nil {
		h.fail(w, r, rq, se, errTarget{})
		return
	}
	opts, err := listOptions(r, res)
	if err != nil {
		h.fail(w, r, rq, err, targetOf(res, ""))
		return
	}
	objs, rv, err := h.st.List(r.Context(), res, ns, opts)
	if err != nil {
		h.fail(w, r, rq, err, targetOf(res, ""))
		return
	}
	if f == formatTable {
		h.writeOut(w, r, rq, http.StatusOK, newTable(res, objs, rv, includeObject(r), time.Now()))
		return
	}
	list, err := buildList(res, objs, rv)
	if err != nil {
		h.fail(w, r, rq, err, targetOf(res, ""))
		return
	}
	h.writeOut(w, r, rq, http.StatusOK, list)
}

// writeOut writes v (an object, a list or a Table) in the negotiated format,
// JSON indented for curl, Wget and browsers or ?pretty=true (isPrettyPrint).
func (h *handler) writeOut(w http.ResponseWriter, r *http.Request, rq *request, code int, v any) {
	if err := writeBody(w, code, rq.format, isPrettyPrint(r), v); err != nil {
		h.log.Debug("write response", "path", r.URL.Path, "err", err)
	}
}

// writeObject writes one object of rq.res (as a one-row Table if asked).
func (h *handler) writeObject(w http.ResponseWriter, r *http.Request, rq *request, code int, obj store.Object) {
	setTypeMeta(rq.res, obj)
	if rq.format == formatTable {
		h.writeOut(w, r, rq, code, newTable(rq.res, []store.Object{obj}, 0, includeObject(r), time.Now()))
		return
	}
	h.writeOut(w, r, rq, code, obj)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request, rq *request, ns, name string) {
	f, se := negotiate(r, rq.subresource == "")
	rq.format = f
	if se != nil {
		h.fail(w, r, rq, se, errTarget{})
		return
	}
	obj, err := h.st.Get(r.Context(), rq.res, ns, name)
	if err != nil {
		h.fail(w, r, rq, err, targetOf(rq.res, name))
		return
	}
	h.writeObject(w, r, rq, http.StatusOK, obj)
}

// decodeBody reads and decodes the request body as an object of res (JSON or
// YAML), returning field-validation warnings.
func (h *handler) decodeBody(w http.ResponseWriter, r *http.Request, res *store.Resource) (store.Object, []string, error) {
	bf, se := bodyFormat(r)
	if se != nil {
		return nil, nil, se
	}
	fv, err := parseFieldValidation(r)
	if err != nil {
		return nil, nil, err
	}
	data, err := readBody(w, r, h.maxBody)
	if err != nil {
		return nil, nil, err
	}
	if data, err = toJSON(data, bf); err != nil {
		return nil, nil, err
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || string(t) == "null" {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the request body is empty: expected a %s", res.Kind))
	}
	obj := res.New()
	warnings, err := decodeJSON(data, res, obj, fv)
	if err != nil {
		return nil, nil, err
	}
	return obj, warnings, nil
}

// startWrite does what every writing verb does first: it picks the response format from Accept
// and refuses dry runs (which svclab does not support, rather than write for real). It answers
// the request itself and returns false when the request must go no further.
func (h *handler) startWrite(w http.ResponseWriter, r *http.Request, rq *request, t errTarget) bool {
	f, se := negotiate(r, false)
	rq.format = f
	if se != nil {
		h.fail(w, r, rq, se, errTarget{})
		return false
	}
	if err := refuseDryRun(r); err != nil {
		h.fail(w, r, rq, err, t)
		return false
	}
	return true
}

func (h *handler) create(w http.ResponseWriter, r *http.Request, rq *request, ns string) {
	res := rq.res
	if !h.startWrite(w, r, rq, errTarget{}) {
		return
	}
	obj, warnings, err := h.decodeBody(w, r, res)
	if err != nil {
		h.fail(w, r, rq, err, targetOf(res, ""))
		return
	}
	t := targetOf(res, obj.GetName())
	if err := prepareNamespace(res, obj, ns); err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	if obj.GetResourceVersion() != "" {
		h.fail(w, r, rq, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created"), t)
		return
	}
	generateName(obj)
	t.name = obj.GetName()
	if err := h.checkUnstorable(r.Context(), res, obj); err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	if res.Namespaced {
		t.createNamespace = ns
	}
	out, err := h.st.Create(r.Context(), res, obj)
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	setWarnings(w, warnings)
	h.writeObject(w, r, rq, http.StatusCreated, out)
}

func (h *handler) update(w http.ResponseWriter, r *http.Request, rq *request, ns, name string) {
	res := rq.res
	t := targetOf(res, name)
	if !h.startWrite(w, r, rq, t) {
		return
	}
	obj, warnings, err := h.decodeBody(w, r, res)
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	if err := checkName(obj, name); err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	if err := prepareNamespace(res, obj, ns); err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	// The Admitter validates metadata and spec into one list (see validateUnstorable).
	out, err := h.st.Update(r.Context(), res, obj, store.UpdateOptions{Subresource: rq.subresource})
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	setWarnings(w, warnings)
	h.writeObject(w, r, rq, http.StatusOK, out)
}

// patcher applies one kind of patch to the JSON of an object of res.
type patcher func(cur []byte) ([]byte, error)

// patchType returns the patch type named by a request's Content-Type: 415
// for anything but kube-apiserver's three patch types (server-side apply
// included, which svclab does not implement).
func patchType(contentType string) (string, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = contentType
	}
	switch mt {
	case jsonPatchType, mergePatchType, strategicPatchType:
		return mt, nil
	case applyPatchType:
		contentType += " (server-side apply is not supported; use POST /lab/v1/apply)"
	}
	return "", errUnsupportedMediaType(contentType, jsonPatchType, mergePatchType, strategicPatchType)
}

// newPatcher checks a patch document of type pt and returns the function
// that applies it (400 for a patch that is not valid for its type).
func newPatcher(pt string, patch []byte, res *store.Resource) (patcher, error) {
	switch pt {
	case jsonPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		return func(cur []byte) ([]byte, error) {
			out, err := p.Apply(cur)
			if err != nil {
				return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "",
					fmt.Sprintf("the server rejected our request due to an error in our request: %v", err), 0, false)
			}
			return out, nil
		}, nil
	case mergePatchType, strategicPatchType:
		var m map[string]any
		if err := json.Unmarshal(patch, &m); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		if pt == mergePatchType {
			return func(cur []byte) ([]byte, error) {
				out, err := jsonpatch.MergePatch(cur, patch)
				if err != nil {
					return nil, apierrors.NewBadRequest(fmt.Sprintf("apply merge patch: %v", err))
				}
				return out, nil
			}, nil
		}
		return func(cur []byte) ([]byte, error) {
			out, err := strategicpatch.StrategicMergePatch(cur, patch, res.New())
			if err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("apply strategic merge patch: %v", err))
			}
			return out, nil
		}, nil
	default:
		return nil, fmt.Errorf("patch type %q: %w", pt, errUnsupportedMediaType(pt))
	}
}

func (h *handler) patch(w http.ResponseWriter, r *http.Request, rq *request, ns, name string) {
	res := rq.res
	t := targetOf(res, name)
	if !h.startWrite(w, r, rq, t) {
		return
	}
	fv, err := parseFieldValidation(r)
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	pt, err := patchType(r.Header.Get("Content-Type"))
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	body, err := readBody(w, r, h.maxBody)
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	apply, err := newPatcher(pt, body, res)
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	var warnings []string
	out, err := h.st.GuaranteedUpdate(r.Context(), res, ns, name, store.UpdateOptions{Subresource: rq.subresource},
		func(cur store.Object) (store.Object, error) {
			setTypeMeta(res, cur)
			curJSON, err := json.Marshal(cur)
			if err != nil {
				return nil, fmt.Errorf("encode %s %s/%s: %w", res.Kind, ns, name, err)
			}
			cur.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
			patched, err := apply(curJSON)
			if err != nil {
				return nil, err
			}
			obj := res.New()
			if warnings, err = decodeJSON(patched, res, obj, fv); err != nil {
				return nil, err
			}
			obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
			return finishPatched(res, cur, obj, ns, name)
		})
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	setWarnings(w, warnings)
	h.writeObject(w, r, rq, http.StatusOK, out)
}

// finishPatched checks a patched object against the current one: name and
// namespace may not change (400), a resourceVersion the patch set must be the
// current one (409, an optimistic-concurrency precondition, as in
// kube-apiserver), uid and creationTimestamp stay the server's. It returns
// cur itself when the patch changed nothing, so the store writes nothing.
func finishPatched(res *store.Resource, cur, obj store.Object, ns, name string) (store.Object, error) {
	if err := checkName(obj, name); err != nil {
		return nil, err
	}
	if obj.GetNamespace() != ns {
		return nil, apierrors.NewBadRequest(fmt.Sprintf(
			"the namespace of the object (%s) does not match the namespace on the URL (%s)", obj.GetNamespace(), ns))
	}
	switch rv := obj.GetResourceVersion(); {
	case rv == "":
		obj.SetResourceVersion(cur.GetResourceVersion())
	case rv != cur.GetResourceVersion():
		return nil, apierrors.NewConflict(schema.GroupResource{Group: res.Group, Resource: res.Name}, name,
			errors.New(conflictMessage))
	}
	obj.SetUID(cur.GetUID())
	obj.SetCreationTimestamp(cur.GetCreationTimestamp())
	// Validation, metadata and spec into one list, is the Admitter's (see validateUnstorable).
	if apiequality.Semantic.DeepEqual(cur, obj) {
		return cur, nil
	}
	return obj, nil
}

// delete serves DELETE of one object as kube-apiserver's DeleteResource
// handler and generic registry do: DeleteOptions from the body, or (only when
// there is no body) from the query (?gracePeriodSeconds=, ?propagationPolicy=,
// ?orphanDependents=); invalid options are 422; preconditions are 409 with
// rest.BeforeDelete's messages. Pods are deleted gracefully (see
// store.DeleteWithOptions); propagationPolicy is accepted and has no effect
// (there is no garbage collector). The answer is 200 with the object: the
// terminating Pod, or the last state of the removed object (202 instead of 200
// for a Pod left terminating when orphanDependents=false, as kube-apiserver).
func (h *handler) delete(w http.ResponseWriter, r *http.Request, rq *request, ns, name string) {
	res := rq.res
	t := targetOf(res, name)
	if !h.startWrite(w, r, rq, t) {
		return
	}
	opts, err := h.deleteOptions(w, r)
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	if errs := metav1validation.ValidateDeleteOptions(&opts); len(errs) > 0 {
		// The registry reads the object before it validates the options.
		if _, err := h.st.Get(r.Context(), res, ns, name); err != nil {
			h.fail(w, r, rq, err, t)
			return
		}
		h.fail(w, r, rq, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "DeleteOptions"}, "", errs), t)
		return
	}
	sopts := store.DeleteOptions{GracePeriodSeconds: opts.GracePeriodSeconds}
	if p := opts.Preconditions; p != nil {
		if p.UID != nil {
			sopts.Preconditions.UID = *p.UID
		}
		if p.ResourceVersion != nil {
			sopts.Preconditions.ResourceVersion = *p.ResourceVersion
		}
		if err := h.checkPreconditions(r, res, ns, name, sopts.Preconditions); err != nil {
			h.fail(w, r, rq, err, t)
			return
		}
	}
	out, err := h.st.DeleteWithOptions(r.Context(), res, ns, name, sopts)
	if err != nil {
		h.fail(w, r, rq, err, t)
		return
	}
	code := http.StatusOK
	// OrphanDependents is deprecated, but kube-apiserver still answers 202 for it.
	if store.IsTerminating(out) && opts.OrphanDependents != nil && !*opts.OrphanDependents {
		code = http.StatusAccepted
	}
	h.writeObject(w, r, rq, code, out)
}

// metaParameterCodec decodes the query parameters of meta/v1 options
// (DeleteOptions: gracePeriodSeconds, propagationPolicy, orphanDependents,
// uid and resourceVersion preconditions). metav1.ParameterCodec cannot: its
// scheme lacks the url.Values conversions, which AddToGroupVersion registers.
var metaParameterCodec = func() runtime.ParameterCodec {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	return runtime.NewParameterCodec(s)
}()

// deleteOptions decodes a DELETE's DeleteOptions: the body (JSON or YAML) if
// there is one, else the query parameters (400 when they do not parse).
func (h *handler) deleteOptions(w http.ResponseWriter, r *http.Request) (metav1.DeleteOptions, error) {
	var opts metav1.DeleteOptions
	body, err := readBody(w, r, h.maxBody)
	if err != nil {
		return opts, err
	}
	if len(body) == 0 {
		if q := r.URL.Query(); len(q) > 0 {
			if err := metaParameterCodec.DecodeParameters(q, metav1.SchemeGroupVersion, &opts); err != nil {
				return opts, apierrors.NewBadRequest(err.Error())
			}
		}
		return opts, nil
	}
	bf, se := bodyFormat(r)
	if se != nil {
		return opts, se
	}
	if body, err = toJSON(body, bf); err != nil {
		return opts, err
	}
	if err := json.Unmarshal(body, &opts); err != nil {
		return opts, apierrors.NewBadRequest(fmt.Sprintf("decode DeleteOptions: %v", err))
	}
	return opts, nil
}

// checkPreconditions answers a failed DeleteOptions precondition with
// kube-apiserver's Conflict (rest.BeforeDelete's message, which names the
// kind where other conflicts name the resource). The store checks the
// preconditions again in its write, so a change in between is still a
// Conflict.
func (h *handler) checkPreconditions(r *http.Request, res *store.Resource, ns, name string, p store.Preconditions) error {
	cur, err := h.st.Get(r.Context(), res, ns, name)
	if err != nil {
		return err
	}
	gr := schema.GroupResource{Group: res.Group, Resource: res.Kind}
	if p.UID != "" && p.UID != cur.GetUID() {
		return apierrors.NewConflict(gr, name, fmt.Errorf(
			"the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated",
			p.UID, cur.GetUID()))
	}
	if p.ResourceVersion != "" && p.ResourceVersion != cur.GetResourceVersion() {
		return apierrors.NewConflict(gr, name, fmt.Errorf(
			"the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified",
			p.ResourceVersion, cur.GetResourceVersion()))
	}
	return nil
}
