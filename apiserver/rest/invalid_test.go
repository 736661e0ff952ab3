package rest

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svclab/svclab/apiserver/store"
)

// invalidStatus is kube-apiserver's 422 for errs, as the API encodes it.
func invalidStatus(gk schema.GroupKind, name string, errs ...field.ErrorList) metav1.Status {
	var all field.ErrorList
	for _, e := range errs {
		all = append(all, e...)
	}
	return *statusObject(apierrors.NewInvalid(gk, name, all))
}

// nameErrs is what ValidateObjectMeta reports for an invalid name.
func nameErrs(name string, fn apivalidation.ValidateNameFunc) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range fn(name, false) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), name, msg))
	}
	return errs
}

// TestInvalidMetadataAndSpec sends objects whose metadata and spec are both
// invalid through every writing path, with the real admission behind the
// store: each answer is kube-apiserver's 422 with every cause, metadata
// first, and nothing is written.
func TestInvalidMetadataAndSpec(t *testing.T) {
	a := newTestAPI(t, store.Options{Admitters: realAdmitters(t)}, Options{})
	svcs := "/api/v1/namespaces/default/services"
	a.do("POST", svcs, mustJSON(t, testService("web", nil))).expect(t, http.StatusCreated)

	gkService := schema.GroupKind{Kind: "Service"}
	icmp := field.ErrorList{field.NotSupported(field.NewPath("spec", "ports").Index(0).Child("protocol"),
		corev1.Protocol("ICMP"), []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP})}
	nameRequired := field.ErrorList{field.Required(field.NewPath("metadata", "name"), "name or generateName is required")}
	badLabels := map[string]string{"app": "bad value"}
	labelErrs := metav1validation.ValidateLabels(badLabels, field.NewPath("metadata", "labels"))
	// An update is checked by the generic registry (object metadata, then
	// metadata update rules) and then by ValidateServiceUpdate (metadata
	// update rules, then ValidateService: metadata, then spec), so kube lists
	// the label four times in the causes and once in the message.
	updateErrs := []field.ErrorList{labelErrs, labelErrs, labelErrs, labelErrs, icmp}
	badUpdate := `{"metadata":{"name":"web","labels":{"app":"bad value"}},"spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80,"protocol":"ICMP"}]}}`

	tests := []struct {
		name         string
		method, path string
		body         string
		ct           string
		want         metav1.Status
	}{
		{
			name: "service create", method: "POST", path: svcs,
			body: `{"metadata":{"name":"Bad_Name"},"spec":{"ports":[{"port":80,"protocol":"ICMP"}]}}`,
			want: invalidStatus(gkService, "Bad_Name", nameErrs("Bad_Name", apivalidation.NameIsDNS1035Label), icmp),
		},
		{
			name: "service create without name or generateName", method: "POST", path: svcs,
			body: `{"spec":{"ports":[{"port":80,"protocol":"ICMP"}]}}`,
			want: invalidStatus(gkService, "", nameRequired, icmp),
		},
		{
			name: "service create with bad name, label and generateName", method: "POST", path: svcs,
			body: `{"metadata":{"name":"Bad_Name","generateName":"Bad_","labels":{"app":"bad value"}},"spec":{"ports":[{"port":80,"protocol":"ICMP"}]}}`,
			want: invalidStatus(gkService, "Bad_Name",
				field.ErrorList{field.Invalid(field.NewPath("metadata", "generateName"), "Bad_", apivalidation.NameIsDNS1035Label("Bad_", true)[0])},
				nameErrs("Bad_Name", apivalidation.NameIsDNS1035Label), labelErrs, icmp),
		},
		{
			name: "service replace", method: "PUT", path: svcs + "/web", body: badUpdate,
			want: invalidStatus(gkService, "web", updateErrs...),
		},
		{
			name: "service merge patch", method: "PATCH", path: svcs + "/web", ct: mergePatchType,
			body: `{"metadata":{"labels":{"app":"bad value"}},"spec":{"ports":[{"name":"http","port":80,"protocol":"ICMP"}]}}`,
			want: invalidStatus(gkService, "web", updateErrs...),
		},
		{
			name: "service strategic merge patch", method: "PATCH", path: svcs + "/web", ct: strategicPatchType,
			body: `{"metadata":{"labels":{"app":"bad value"}},"spec":{"ports":[{"port":80,"protocol":"ICMP"}]}}`,
			want: invalidStatus(gkService, "web", updateErrs...),
		},
		{
			name: "pod create", method: "POST", path: "/api/v1/namespaces/default/pods",
			body: `{"metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"web"}]}}`,
			want: invalidStatus(schema.GroupKind{Kind: "Pod"}, "Bad_Name", nameErrs("Bad_Name", apivalidation.NameIsDNSSubdomain),
				field.ErrorList{field.Required(field.NewPath("spec", "containers").Index(0).Child("image"), "")}),
		},
		{
			name: "pod create without name", method: "POST", path: "/api/v1/namespaces/default/pods",
			body: `{"spec":{"containers":[{"name":"web"}]}}`,
			want: invalidStatus(schema.GroupKind{Kind: "Pod"}, "", nameRequired,
				field.ErrorList{field.Required(field.NewPath("spec", "containers").Index(0).Child("image"), "")}),
		},
		{
			name: "endpointslice create", method: "POST", path: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
			body: `{"metadata":{"name":"Bad_Name"}}`,
			want: invalidStatus(schema.GroupKind{Group: "discovery.k8s.io", Kind: "EndpointSlice"}, "Bad_Name",
				nameErrs("Bad_Name", apivalidation.NameIsDNSSubdomain), field.ErrorList{field.Required(field.NewPath("addressType"), "")}),
		},
		{
			name: "endpoints create", method: "POST", path: "/api/v1/namespaces/default/endpoints",
			body: `{"metadata":{"name":"Bad_Name"},"subsets":[{"ports":[{"port":80}]}]}`,
			want: invalidStatus(schema.GroupKind{Kind: "Endpoints"}, "Bad_Name", nameErrs("Bad_Name", apivalidation.NameIsDNSSubdomain),
				field.ErrorList{field.Required(field.NewPath("subsets").Index(0), "must specify `addresses` or `notReadyAddresses`")}),
		},
		{
			name: "namespace create", method: "POST", path: "/api/v1/namespaces",
			body: `{"metadata":{"name":"Bad_Name","labels":{"app":"bad value"}}}`,
			want: invalidStatus(schema.GroupKind{Kind: "Namespace"}, "Bad_Name", nameErrs("Bad_Name", apivalidation.ValidateNamespaceName), labelErrs),
		},
		{
			name: "node create", method: "POST", path: "/api/v1/nodes",
			body: `{"metadata":{"name":"Bad_Name"},"spec":{"podCIDR":"10.244.0.0/33"}}`,
			want: invalidStatus(schema.GroupKind{Kind: "Node"}, "Bad_Name", nameErrs("Bad_Name", apivalidation.NameIsDNSSubdomain),
				utilvalidation.IsValidCIDRForLegacyField(field.NewPath("spec", "podCIDRs").Index(0), "10.244.0.0/33", true, nil)),
		},
		{
			name: "pod in a missing namespace is 404 first", method: "POST", path: "/api/v1/namespaces/nope/pods",
			body: `{"spec":{"containers":[{"name":"web"}]}}`,
			want: *statusObject(apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "nope")),
		},
		{
			name: "undecodable is 400, not 422", method: "POST", path: svcs,
			body: `{"metadata":{"name":"Bad_Name"},"spec":{"ports":[{"port":"eighty"}]}}`,
			want: *statusObject(apierrors.NewBadRequest(`Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32`)),
		},
	}
	before := listAll(t, a)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.ct != "" {
				hdr = []string{"Content-Type", tc.ct}
			}
			r := a.do(tc.method, tc.path, []byte(tc.body), hdr...)
			if r.code != int(tc.want.Code) {
				t.Errorf("HTTP status %d, want %d", r.code, tc.want.Code)
			}
			if diff := cmp.Diff(tc.want, r.status(t)); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
		})
	}

	// The lab's apply: the same answers, as the object's result.
	applyTests := []struct {
		name, manifest string
		want           metav1.Status
	}{
		{"apply create", "apiVersion: v1\nkind: Service\nmetadata: {name: Bad_Name}\nspec: {ports: [{port: 80, protocol: ICMP}]}\n",
			invalidStatus(gkService, "Bad_Name", nameErrs("Bad_Name", apivalidation.NameIsDNS1035Label), icmp)},
		{"apply without name", "apiVersion: v1\nkind: Service\nspec: {ports: [{port: 80, protocol: ICMP}]}\n",
			invalidStatus(gkService, "", nameRequired, icmp)},
		{"apply update", "apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {app: bad value}}\nspec: {ports: [{name: http, port: 80, protocol: ICMP}]}\n",
			invalidStatus(gkService, "web", updateErrs...)},
	}
	for _, tc := range applyTests {
		t.Run(tc.name, func(t *testing.T) {
			code, ar := a.apply(t, "?namespace=default", "application/yaml", tc.manifest)
			if code != http.StatusMultiStatus || len(ar.Results) != 1 || ar.Results[0].Status == nil {
				t.Fatalf("apply: %d %+v, want 207 with one error", code, ar)
			}
			if diff := cmp.Diff(tc.want, *ar.Results[0].Status); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
		})
	}

	if diff := cmp.Diff(before, listAll(t, a)); diff != "" {
		t.Errorf("refused writes changed the store (-before +after):\n%s", diff)
	}
}

// listAll returns the JSON list of every resource, resourceVersions included.
func listAll(t *testing.T, a *testAPI) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, res := range store.Resources() {
		path := "/api/v1/" + res.Name
		if res.Group != "" {
			path = "/apis/" + res.Group + "/" + res.Version + "/" + res.Name
		}
		out[res.Name] = string(a.do("GET", path, nil).expect(t, http.StatusOK).body)
	}
	return out
}
