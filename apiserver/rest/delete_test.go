package rest

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svclab/svclab/apiserver/store"
)

func testPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "web", Image: "svclab/echo"}},
		},
	}
}

// TestDeletePod deletes pods through the API: DeleteOptions from the body or
// the query, graceful deletion and its answers.
func TestDeletePod(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pod         func(*corev1.Pod)
		terminating *int64 // mark the pod with this grace first
		query, body string
		contentType string
		code        int
		wantGrace   *int64 // deletionGracePeriodSeconds of the answer
		stored      bool   // the pod is still there (Terminating)
		reason      metav1.StatusReason
	}{
		{name: "no options: default grace", code: 200, wantGrace: ptr.To[int64](30), stored: true},
		{name: "no options: spec.terminationGracePeriodSeconds", pod: func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](45) },
			code: 200, wantGrace: ptr.To[int64](45), stored: true},
		{name: "kubectl's body", body: `{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}`,
			code: 200, wantGrace: ptr.To[int64](30), stored: true},
		{name: "grace in the body", body: `{"gracePeriodSeconds":5}`, code: 200, wantGrace: ptr.To[int64](5), stored: true},
		{name: "YAML body", body: "kind: DeleteOptions\ngracePeriodSeconds: 7\n", contentType: "application/yaml",
			code: 200, wantGrace: ptr.To[int64](7), stored: true},
		{name: "query grace 0", query: "?gracePeriodSeconds=0", code: 200, wantGrace: ptr.To[int64](0)},
		{name: "query propagationPolicy", query: "?propagationPolicy=Foreground", code: 200, wantGrace: ptr.To[int64](30), stored: true},
		{name: "query ignored when there is a body", query: "?gracePeriodSeconds=0", body: `{}`,
			code: 200, wantGrace: ptr.To[int64](30), stored: true},
		{name: "force a terminating pod", terminating: ptr.To[int64](30), body: `{"gracePeriodSeconds":0,"propagationPolicy":"Background"}`,
			code: 200, wantGrace: ptr.To[int64](0)},
		{name: "shorten a terminating pod", terminating: ptr.To[int64](30), query: "?gracePeriodSeconds=3",
			code: 200, wantGrace: ptr.To[int64](3), stored: true},
		{name: "no lengthening", terminating: ptr.To[int64](10), body: `{"gracePeriodSeconds":60}`,
			code: 200, wantGrace: ptr.To[int64](10), stored: true},
		{name: "unscheduled pod", pod: func(p *corev1.Pod) { p.Spec.NodeName = "" }, code: 200, wantGrace: ptr.To[int64](0)},
		{name: "orphanDependents=false: 202", body: `{"orphanDependents":false}`, code: 202, wantGrace: ptr.To[int64](30), stored: true},
		{name: "unknown propagationPolicy", query: "?propagationPolicy=Sideways", code: 422, stored: true, reason: metav1.StatusReasonInvalid},
		{name: "orphanDependents and propagationPolicy", body: `{"orphanDependents":true,"propagationPolicy":"Orphan"}`,
			code: 422, stored: true, reason: metav1.StatusReasonInvalid},
		{name: "uid precondition in the query", query: "?uid=other", code: 409, stored: true, reason: metav1.StatusReasonConflict},
		{name: "unparseable grace", query: "?gracePeriodSeconds=soon", code: 400, stored: true, reason: metav1.StatusReasonBadRequest},
		{name: "undecodable body", body: `{"gracePeriodSeconds":"soon"}`, code: 400, stored: true, reason: metav1.StatusReasonBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAPI(t, store.Options{}, Options{})
			ctx := ctxT(t)
			p := testPod("web-1", "node-1")
			if tc.pod != nil {
				tc.pod(p)
			}
			if _, err := a.st.Create(ctx, store.Pods, p); err != nil {
				t.Fatal(err)
			}
			if tc.terminating != nil {
				if _, err := a.st.DeleteWithOptions(ctx, store.Pods, "default", "web-1", store.DeleteOptions{GracePeriodSeconds: tc.terminating}); err != nil {
					t.Fatal(err)
				}
			}
			var body []byte
			var hdr []string
			if tc.body != "" {
				body = []byte(tc.body)
			}
			if tc.contentType != "" {
				hdr = []string{"Content-Type", tc.contentType}
			}
			start := time.Now()
			r := a.do("DELETE", "/api/v1/namespaces/default/pods/web-1"+tc.query, body, hdr...).expect(t, tc.code)
			stored, err := a.st.Get(ctx, store.Pods, "default", "web-1")
			if (err == nil) != tc.stored || (err != nil && !errors.Is(err, store.ErrNotFound)) {
				t.Errorf("pod after DELETE: err = %v, want stored = %v", err, tc.stored)
			}
			if tc.code >= 400 {
				if st := r.status(t); st.Reason != tc.reason {
					t.Errorf("reason %s, want %s (%s)", st.Reason, tc.reason, st.Message)
				}
				if stored != nil && stored.GetDeletionTimestamp() != nil {
					t.Error("refused DELETE marked the pod")
				}
				return
			}
			var got corev1.Pod
			r.into(t, &got)
			if got.Kind != "Pod" || got.Name != "web-1" {
				t.Fatalf("answer is %s %q, want the pod", got.Kind, got.Name)
			}
			if diff := cmp.Diff(tc.wantGrace, got.DeletionGracePeriodSeconds); diff != "" {
				t.Errorf("deletionGracePeriodSeconds (-want +got):\n%s", diff)
			}
			if got.DeletionTimestamp == nil {
				t.Fatal("answer has no deletionTimestamp")
			}
			if tc.terminating == nil {
				// now + grace, in whole seconds.
				lo := start.Add(time.Duration(*tc.wantGrace)*time.Second - time.Second)
				hi := time.Now().Add(time.Duration(*tc.wantGrace) * time.Second)
				if ts := got.DeletionTimestamp.Time; ts.Before(lo) || ts.After(hi) {
					t.Errorf("deletionTimestamp %v not within [%v, %v]", ts, lo, hi)
				}
			}
			if tc.stored {
				if diff := cmp.Diff(stored, store.Object(&got)); diff != "" {
					t.Errorf("answer is not the stored pod (-stored +answer):\n%s", diff)
				}
			} else if got.ResourceVersion != strconv.FormatUint(a.st.ResourceVersion(), 10) {
				t.Errorf("answer rv %s, want the deletion's %s", got.ResourceVersion, strconv.FormatUint(a.st.ResourceVersion(), 10))
			}
		})
	}
}

// TestDeleteNonPodIgnoresGrace: other kinds are deleted at once whatever the
// options; invalid options on a missing object are 404 (the object is read
// first).
func TestDeleteNonPodIgnoresGrace(t *testing.T) {
	a := newTestAPI(t, store.Options{}, Options{})
	a.do("POST", "/api/v1/namespaces/default/services", mustJSON(t, testService("web", nil))).expect(t, http.StatusCreated)
	var svc corev1.Service
	a.do("DELETE", "/api/v1/namespaces/default/services/web", []byte(`{"gracePeriodSeconds":30}`)).expect(t, http.StatusOK).into(t, &svc)
	if svc.Name != "web" || svc.DeletionTimestamp != nil {
		t.Errorf("answer: %s deletionTimestamp %v, want the deleted service without one", svc.Name, svc.DeletionTimestamp)
	}
	a.do("GET", "/api/v1/namespaces/default/services/web", nil).expect(t, http.StatusNotFound)
	a.do("DELETE", "/api/v1/namespaces/default/pods/nope?propagationPolicy=Sideways", nil).expect(t, http.StatusNotFound)
}
