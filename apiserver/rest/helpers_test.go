package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/svclab/svclab/apiserver/admission"
	"github.com/svclab/svclab/apiserver/store"
)

// realAdmitters returns the admitters of a fresh admission.Admission with the
// default configuration, as the server wires them.
func realAdmitters(t testing.TB) map[string]store.Admitter {
	t.Helper()
	adm, err := admission.New(admission.Config{}, discard)
	if err != nil {
		t.Fatalf("admission.New: %v", err)
	}
	return adm.Admitters()
}

// testAPI is a store in a temporary directory behind the handler on a real
// loopback HTTP server, with the namespaces default and kube-system.
type testAPI struct {
	t   testing.TB
	st  *store.Store
	srv *httptest.Server
}

var discard = slog.New(slog.DiscardHandler)

func newTestAPI(t testing.TB, sopts store.Options, opts Options) *testAPI {
	t.Helper()
	if sopts.Logger == nil {
		sopts.Logger = discard
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "svclab.db"), sopts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, ns := range []string{"default", "kube-system"} {
		if _, err := st.Create(context.Background(), store.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}
	srv := httptest.NewServer(NewHandler(st, opts))
	t.Cleanup(srv.Close)
	return &testAPI{t: t, st: st, srv: srv}
}

// resp is a finished HTTP exchange.
type resp struct {
	code   int
	body   []byte
	header http.Header
}

// do sends a request; hdr are header name/value pairs. A JSON content type is
// set for a body unless hdr sets one.
func (a *testAPI) do(method, path string, body []byte, hdr ...string) resp {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		a.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp{code: res.StatusCode, body: data, header: res.Header}
}

// expect fails the test unless the response has the given code.
func (r resp) expect(t testing.TB, code int) resp {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body: %s", r.code, code, r.body)
	}
	return r
}

// into decodes a JSON body into v.
func (r resp) into(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %T: %v; body: %s", v, err, r.body)
	}
}

func (r resp) status(t testing.TB) metav1.Status {
	t.Helper()
	var st metav1.Status
	r.into(t, &st)
	return st
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return data
}

func mustYAML(t testing.TB, v any) []byte {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatalf("marshal yaml: %v", err)
	}
	return data
}

func testService(name string, labels map[string]string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

// ctxT returns a context cancelled at the end of the test or after 30 s.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func intOrString(i int) intstr.IntOrString { return intstr.FromInt32(int32(i)) }

func mustUint(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}
