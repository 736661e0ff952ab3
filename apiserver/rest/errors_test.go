package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svclab/svclab/apiserver/store"
)

// rejectAdmitter refuses Services labelled reject=yes with a 422 carrying two
// field causes, and hands every other write to next (nil: admit as given).
type rejectAdmitter struct{ next store.Admitter }

var _ store.Admitter = rejectAdmitter{}

func (a rejectAdmitter) Admit(ctx context.Context, op store.Operation, old, obj store.Object) (func(), error) {
	if obj != nil && obj.GetLabels()["reject"] == "yes" {
		return nil, rejectError(obj.GetName())
	}
	if a.next == nil {
		return nil, nil
	}
	return a.next.Admit(ctx, op, old, obj)
}

func (a rejectAdmitter) Rebuild(objs []store.Object) error {
	if a.next == nil {
		return nil
	}
	return a.next.Rebuild(objs)
}

func rejectError(name string) *apierrors.StatusError {
	return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, name, field.ErrorList{
		field.Invalid(field.NewPath("spec", "ports").Index(0).Child("port"), 0, "must be between 1 and 65535, inclusive"),
		field.Required(field.NewPath("spec", "selector"), "selector is required"),
	})
}

func status(code int32, reason metav1.StatusReason, msg string, details *metav1.StatusDetails) metav1.Status {
	return metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Code: code, Reason: reason, Message: msg, Details: details}
}

// TestErrorStatus checks the whole Status object of every error class, against
// kube-apiserver's codes, reasons and messages.
func TestErrorStatus(t *testing.T) {
	a := newTestAPI(t, store.Options{Admitters: map[string]store.Admitter{"services": rejectAdmitter{next: realAdmitters(t)["services"]}}}, Options{})
	var existing struct {
		metav1.ObjectMeta `json:"metadata"`
	}
	a.do("POST", "/api/v1/namespaces/default/services", mustJSON(t, testService("web", nil))).
		expect(t, http.StatusCreated).into(t, &existing)
	svcs := "/api/v1/namespaces/default/services"
	stale := testService("web", map[string]string{"x": "y"})
	stale.ResourceVersion = "1"
	rejected := testService("bad", map[string]string{"reject": "yes"})
	rejectedStatus := rejectError("bad").ErrStatus
	rejectedStatus.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	svcDetails := func(name string) *metav1.StatusDetails { return &metav1.StatusDetails{Name: name, Kind: "services"} }

	cases := []struct {
		name         string
		method, path string
		body         string
		hdr          []string
		want         metav1.Status
	}{
		{
			name: "undecodable body", method: "POST", path: svcs, body: `{"metadata":`,
			want: status(400, metav1.StatusReasonBadRequest, `Service in version "v1" cannot be handled as a Service: unexpected end of JSON input`, nil),
		},
		{
			name: "wrong type in body", method: "POST", path: svcs, body: `{"metadata":{"name":"x"},"spec":{"ports":"80"}}`,
			want: status(400, metav1.StatusReasonBadRequest, `Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort`, nil),
		},
		{
			name: "empty body", method: "POST", path: svcs, body: ` `,
			want: status(400, metav1.StatusReasonBadRequest, `the request body is empty: expected a Service`, nil),
		},
		{
			name: "kind of another resource", method: "POST", path: svcs, body: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}`,
			want: status(400, metav1.StatusReasonBadRequest, `the kind in the data (Pod) does not match the expected kind (Service) of resource "services"`, nil),
		},
		{
			name: "apiVersion of another group", method: "POST", path: svcs, body: `{"apiVersion":"apps/v1","kind":"Service","metadata":{"name":"x"}}`,
			want: status(400, metav1.StatusReasonBadRequest, `the API version in the data (apps/v1) does not match the expected API version (v1)`, nil),
		},
		{
			name: "namespace differs from URL", method: "POST", path: svcs, body: `{"metadata":{"name":"x","namespace":"kube-system"}}`,
			want: status(400, metav1.StatusReasonBadRequest, `the namespace of the provided object (kube-system) does not match the namespace sent on the request (default)`, nil),
		},
		{
			name: "name differs from URL", method: "PUT", path: svcs + "/web", body: `{"metadata":{"name":"other"}}`,
			want: status(400, metav1.StatusReasonBadRequest, `the name of the object (other) does not match the name on the URL (web)`, nil),
		},
		{
			name: "resourceVersion on create", method: "POST", path: svcs, body: `{"metadata":{"name":"x","resourceVersion":"5"}}`,
			want: status(400, metav1.StatusReasonBadRequest, `resourceVersion should not be set on objects to be created`, nil),
		},
		{
			name: "bad label selector", method: "GET", path: svcs + "?labelSelector=a%3D%3D%3Db",
			want: status(400, metav1.StatusReasonBadRequest, `unable to parse requirement: found '=', expected: identifier`, nil),
		},
		{
			name: "unsupported field selector", method: "GET", path: svcs + "?fieldSelector=spec.bogus%3D1",
			want: status(400, metav1.StatusReasonBadRequest, `invalid selector: field label "spec.bogus" not supported for services (supported: [metadata.name metadata.namespace spec.clusterIP spec.type])`, nil),
		},
		{
			name: "dryRun", method: "POST", path: svcs + "?dryRun=All", body: `{"metadata":{"name":"x"}}`,
			want: status(400, metav1.StatusReasonBadRequest, `dryRun ([All]) is not supported by svclab`, nil),
		},
		{
			name: "not found", method: "GET", path: svcs + "/nope",
			want: status(404, metav1.StatusReasonNotFound, `services "nope" not found`, svcDetails("nope")),
		},
		{
			name: "namespace not found", method: "POST", path: "/api/v1/namespaces/nope/services", body: `{"metadata":{"name":"x"}}`,
			want: status(404, metav1.StatusReasonNotFound, `namespaces "nope" not found`, &metav1.StatusDetails{Name: "nope", Kind: "namespaces"}),
		},
		{
			name: "endpointslice not found (group in message)", method: "GET", path: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/x",
			want: status(404, metav1.StatusReasonNotFound, `endpointslices.discovery.k8s.io "x" not found`,
				&metav1.StatusDetails{Name: "x", Group: "discovery.k8s.io", Kind: "endpointslices"}),
		},
		{
			name: "unknown path", method: "GET", path: "/api/v2/things",
			want: status(404, metav1.StatusReasonNotFound, `the server could not find the requested resource`, &metav1.StatusDetails{}),
		},
		{
			name: "already exists", method: "POST", path: svcs, body: string(mustJSON(t, testService("web", nil))),
			want: status(409, metav1.StatusReasonAlreadyExists, `services "web" already exists`, svcDetails("web")),
		},
		{
			name: "conflict", method: "PUT", path: svcs + "/web", body: string(mustJSON(t, stale)),
			want: status(409, metav1.StatusReasonConflict,
				`Operation cannot be fulfilled on services "web": the object has been modified; please apply your changes to the latest version and try again`,
				svcDetails("web")),
		},
		{
			name: "method not allowed on collection", method: "DELETE", path: svcs,
			want: status(405, metav1.StatusReasonMethodNotAllowed, `delete is not supported on resources of kind "services"`, svcDetails("")),
		},
		{
			name: "method not allowed on status", method: "POST", path: svcs + "/web/status",
			want: status(405, metav1.StatusReasonMethodNotAllowed, `post is not supported on resources of kind "services/status"`,
				&metav1.StatusDetails{Kind: "services/status"}),
		},
		{
			name: "not acceptable", method: "GET", path: svcs, hdr: []string{"Accept", "application/vnd.kubernetes.protobuf"},
			want: status(406, "NotAcceptable", `only the following media types are accepted: application/json, application/yaml`, nil),
		},
		{
			name: "unsupported media type", method: "POST", path: svcs, body: `name=x`, hdr: []string{"Content-Type", "application/x-www-form-urlencoded"},
			want: status(415, metav1.StatusReasonUnsupportedMediaType,
				`the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got "application/x-www-form-urlencoded")`, nil),
		},
		{
			// kube-apiserver lists the spec's causes after the metadata's.
			name: "invalid name", method: "POST", path: svcs, body: `{"metadata":{"name":"Web_1"},"spec":{"ports":[{"port":80}]}}`,
			want: status(422, metav1.StatusReasonInvalid,
				`Service "Web_1" is invalid: metadata.name: Invalid value: "Web_1": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
				&metav1.StatusDetails{Name: "Web_1", Kind: "Service", Causes: []metav1.StatusCause{{
					Type: metav1.CauseTypeFieldValueInvalid, Field: "metadata.name",
					Message: `Invalid value: "Web_1": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
				}}}),
		},
		{
			name: "missing name", method: "POST", path: svcs, body: `{"spec":{}}`,
			want: status(422, metav1.StatusReasonInvalid, `Service "" is invalid: [metadata.name: Required value: name or generateName is required, spec.ports: Required value]`,
				&metav1.StatusDetails{Kind: "Service", Causes: []metav1.StatusCause{
					{Type: metav1.CauseTypeFieldValueRequired, Field: "metadata.name", Message: "Required value: name or generateName is required"},
					{Type: metav1.CauseTypeFieldValueRequired, Field: "spec.ports", Message: "Required value"},
				}}),
		},
		{
			name: "admission 422 passed through", method: "POST", path: svcs, body: string(mustJSON(t, rejected)),
			want: rejectedStatus,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := a.do(tc.method, tc.path, body, tc.hdr...)
			if r.code != int(tc.want.Code) {
				t.Errorf("HTTP status %d, want %d", r.code, tc.want.Code)
			}
			if diff := cmp.Diff(tc.want, r.status(t)); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
		})
	}

	// The admission error carries both causes with their field paths.
	var fields []string
	for _, c := range rejectedStatus.Details.Causes {
		fields = append(fields, c.Field)
	}
	if diff := cmp.Diff([]string{"spec.ports[0].port", "spec.selector"}, fields); diff != "" {
		t.Errorf("admission causes (-want +got):\n%s", diff)
	}
}

// TestRequestTooLarge sends bodies over the 3 MiB default, with and without a
// Content-Length.
func TestRequestTooLarge(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	big := []byte(`{"metadata":{"name":"x","annotations":{"a":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}}}`)
	want := status(413, metav1.StatusReasonRequestEntityTooLarge, fmt.Sprintf("Request entity too large: limit is %d bytes", DefaultMaxBodyBytes), nil)
	for _, chunked := range []bool{false, true} {
		var rd io.Reader = bytes.NewReader(big)
		if chunked {
			rd = io.MultiReader(rd) // hides the length: sent chunked
		}
		req, err := http.NewRequest("POST", a.srv.URL+"/api/v1/namespaces/default/services", rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		r := resp{code: res.StatusCode, body: data}
		if r.code != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked=%v: status %d", chunked, r.code)
		}
		if diff := cmp.Diff(want, r.status(t)); diff != "" {
			t.Errorf("chunked=%v: Status (-want +got):\n%s", chunked, diff)
		}
	}
	// The same object under the limit is fine.
	a.do("POST", "/api/v1/namespaces/default/services", []byte(`{"metadata":{"name":"x"}}`)).expect(t, http.StatusCreated)
}

// TestStatusFor maps every store sentinel, wrapped as the store wraps them.
func TestStatusFor(t *testing.T) {
	tg := targetOf(store.Services, "web")
	cases := []struct {
		err    error
		code   int32
		reason metav1.StatusReason
	}{
		{fmt.Errorf("get: %w", store.ErrNotFound), 404, metav1.StatusReasonNotFound},
		{fmt.Errorf("create: %w", store.ErrAlreadyExists), 409, metav1.StatusReasonAlreadyExists},
		{fmt.Errorf("update: %w", store.ErrConflict), 409, metav1.StatusReasonConflict},
		{fmt.Errorf("watch: %w", store.ErrGone), 410, metav1.StatusReasonExpired},
		{fmt.Errorf("list: %w", store.ErrInvalidSelector), 400, metav1.StatusReasonBadRequest},
		{fmt.Errorf("update: %w", store.ErrInvalid), 400, metav1.StatusReasonBadRequest},
		{fmt.Errorf("get: %w", store.ErrClosed), 503, metav1.StatusReasonServiceUnavailable},
		{fmt.Errorf("admit: %w", rejectError("web")), 422, metav1.StatusReasonInvalid},
		{&http.MaxBytesError{Limit: 10}, 413, metav1.StatusReasonRequestEntityTooLarge},
		{errors.New("disk on fire"), 500, metav1.StatusReasonInternalError},
	}
	for _, tc := range cases {
		st := statusFor(tc.err, tg).ErrStatus
		if st.Code != tc.code || st.Reason != tc.reason {
			t.Errorf("statusFor(%v) = %d %s, want %d %s", tc.err, st.Code, st.Reason, tc.code, tc.reason)
		}
	}
}
