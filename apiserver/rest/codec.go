package rest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/svclab/svclab/apiserver/store"
)

// format is the encoding of a request or response body.
type format int

const (
	formatJSON  format = iota
	formatYAML         // application/yaml
	formatTable        // application/json;as=Table;g=meta.k8s.io;v=v1 (responses only)
)

const (
	mediaJSON = "application/json"
	mediaYAML = "application/yaml"
)

// negotiate picks the response format from the Accept header, in the order the
// client listed its choices (q-values are not weighed). tableOK says whether
// this request can be answered with a Table (list, get and watch of a
// resource). An empty header means JSON; a header that names only types we
// cannot produce (protobuf, PartialObjectMetadata, …) is 406 Not Acceptable.
func negotiate(r *http.Request, tableOK bool) (format, *apierrors.StatusError) {
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return formatJSON, nil
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case mediaJSON:
			switch params["as"] {
			case "":
				return formatJSON, nil
			case "Table":
				if tableOK && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
					return formatTable, nil
				}
			}
		case mediaYAML:
			if params["as"] == "" {
				return formatYAML, nil
			}
		case "*/*", "application/*":
			return formatJSON, nil
		}
	}
	return formatJSON, newStatusError(http.StatusNotAcceptable, "NotAcceptable",
		"only the following media types are accepted: application/json, application/yaml")
}

// bodyFormat returns the format of the request body from its Content-Type. An
// absent Content-Type means JSON (as kube-apiserver assumes); anything but
// JSON or YAML is 415 Unsupported Media Type.
func bodyFormat(r *http.Request) (format, *apierrors.StatusError) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return formatJSON, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return formatJSON, errUnsupportedMediaType(ct, mediaJSON, mediaYAML)
	}
	switch mt {
	case mediaJSON:
		return formatJSON, nil
	case mediaYAML, "application/x-yaml", "text/yaml":
		return formatYAML, nil
	}
	return formatJSON, errUnsupportedMediaType(ct, mediaJSON, mediaYAML)
}

// readBody reads the whole request body, refusing bodies over limit bytes with
// 413 (checked on Content-Length first, then while reading).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", limit))
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err // statusFor maps it to 413
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	return data, nil
}

// toJSON converts a body in format f to JSON. YAML errors are 400, and so is
// a YAML body with more than one document: kube-apiserver would silently use
// the first, svclab points to /lab/v1/apply instead.
func toJSON(data []byte, f format) ([]byte, error) {
	if f != formatYAML {
		return data, nil
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []byte
	docs := 0
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error converting YAML to JSON: %v", err))
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error converting YAML to JSON: %v", err))
		}
		if string(j) == "null" {
			continue // empty or comment-only document
		}
		docs++
		out = j
	}
	switch {
	case docs == 0:
		return []byte("null"), nil
	case docs > 1:
		return nil, apierrors.NewBadRequest(fmt.Sprintf(
			"the body holds %d YAML documents: send one object per request, or POST the manifest to /lab/v1/apply", docs))
	}
	return out, nil
}

// fieldValidation is the ?fieldValidation= directive for unknown and
// duplicate fields in a body: Ignore, Warn (the default, as in kube-apiserver)
// or Strict (400).
type fieldValidation string

const (
	fieldIgnore fieldValidation = "Ignore"
	fieldWarn   fieldValidation = "Warn"
	fieldStrict fieldValidation = "Strict"
)

func parseFieldValidation(r *http.Request) (fieldValidation, error) {
	switch v := fieldValidation(r.URL.Query().Get("fieldValidation")); v {
	case "":
		return fieldWarn, nil
	case fieldIgnore, fieldWarn, fieldStrict:
		return v, nil
	default:
		return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation must be one of Ignore, Warn or Strict, got %q", v))
	}
}

// decodeJSON decodes a JSON object of res into into, case-sensitively as
// kube-apiserver does. Unknown or duplicate fields are warnings (returned),
// ignored, or a 400, according to fv. apiVersion and kind, when present, must
// be res's (400 otherwise); afterwards into carries res's apiVersion and kind.
func decodeJSON(data []byte, res *store.Resource, into store.Object, fv fieldValidation) ([]string, error) {
	strictErrs, err := sjson.UnmarshalStrict(data, into, sjson.DisallowDuplicateFields, sjson.DisallowUnknownFields)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v",
			res.Kind, res.APIVersion(), res.Kind, err))
	}
	var warnings []string
	if len(strictErrs) > 0 && fv != fieldIgnore {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		if fv == fieldStrict {
			return nil, apierrors.NewBadRequest("strict decoding error: " + strings.Join(msgs, ", "))
		}
		warnings = msgs
	}
	if err := checkTypeMeta(into.GetObjectKind().GroupVersionKind(), res); err != nil {
		return nil, err
	}
	into.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
	return warnings, nil
}

// checkTypeMeta refuses a body whose apiVersion or kind is set and differs
// from the resource of the URL.
func checkTypeMeta(gvk schema.GroupVersionKind, res *store.Resource) error {
	if gvk.Version != "" || gvk.Group != "" {
		if got := gvk.GroupVersion().String(); got != res.APIVersion() {
			return apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)",
				got, res.APIVersion()))
		}
	}
	if gvk.Kind != "" && gvk.Kind != res.Kind {
		return apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s) of resource %q",
			gvk.Kind, res.Kind, res.Name))
	}
	return nil
}

// setWarnings adds one Warning header per message, as kube-apiserver does
// (code 299, agent "-").
func setWarnings(w http.ResponseWriter, warnings []string) {
	for _, m := range warnings {
		w.Header().Add("Warning", "299 - "+strconv.Quote(m))
	}
}

// isPrettyPrint is kube-apiserver's rule for indenting JSON answers: the
// pretty query parameter when given, else whether the client is curl, Wget or
// a browser.
func isPrettyPrint(r *http.Request) bool {
	if strings.Contains(r.URL.RawQuery, "pretty") {
		if pp := r.URL.Query().Get("pretty"); pp != "" {
			pretty, _ := strconv.ParseBool(pp)
			return pretty
		}
	}
	ua := r.UserAgent()
	return strings.HasPrefix(ua, "curl") || strings.HasPrefix(ua, "Wget") || strings.HasPrefix(ua, "Mozilla/5.0")
}

// writeBody encodes v in format f (a Table is already built by the caller and
// written as JSON) and writes it with the given status code. Pretty JSON is
// indented by two spaces without a final newline, compact JSON ends with
// one, as kube-apiserver's serializer writes them.
func writeBody(w http.ResponseWriter, code int, f format, pretty bool, v any) error {
	var data []byte
	var err error
	switch {
	case f == formatYAML:
		data, err = yaml.Marshal(v)
		w.Header().Set("Content-Type", mediaYAML)
	case pretty:
		data, err = json.MarshalIndent(v, "", "  ")
		w.Header().Set("Content-Type", mediaJSON)
	default:
		data, err = json.Marshal(v)
		data = append(data, '\n')
		w.Header().Set("Content-Type", mediaJSON)
	}
	if err != nil {
		// Typed Kubernetes objects always marshal; this is a programming error.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintf(w, "encode response: %v\n", err)
		return fmt.Errorf("encode response: %w", err)
	}
	w.WriteHeader(code)
	_, err = w.Write(data)
	return err
}
