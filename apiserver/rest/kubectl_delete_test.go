package rest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/apiserver/controllers"
	"github.com/svclab/svclab/apiserver/store"
)

// podManifest is a pod bound to node-1 whose container sleeps preStop
// seconds before stopping.
func podManifest(name, preStop string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
  namespace: default
  labels:
    app: web
spec:
  nodeName: node-1
  terminationGracePeriodSeconds: 60
  containers:
  - name: web
    image: svclab/echo
    lifecycle:
      preStop:
        sleep:
          seconds: ` + preStop + "\n"
}

// TestKubectlDeletePod drives the real kubectl (skipped when it is not on
// PATH) against the API with the controllers running (simulated runtime):
// `kubectl delete pod` returns once the kubelet has finished the pod, a pod
// deleted with --wait=false shows Terminating in `kubectl get pods`, and
// --grace-period=0 --force removes it at once.
func TestKubectlDeletePod(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	a := newTestAPI(t, store.Options{}, Options{})
	ctx := ctxT(t)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"}},
	}
	if _, err := a.st.Create(ctx, store.Nodes, node); err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.GuaranteedUpdate(ctx, store.Nodes, "", "node-1", store.UpdateOptions{Subresource: "status"},
		func(cur store.Object) (store.Object, error) {
			n := cur.(*corev1.Node)
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.29.0.2"}}
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
			return n, nil
		}); err != nil {
		t.Fatal(err)
	}
	m := controllers.NewManager(a.st, controllers.Config{}, &controllers.SimulatedRuntime{}, discard)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controllers: %v", err)
		}
	})

	home := t.TempDir()
	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args = append([]string{"--server", a.srv.URL, "--cache-dir", filepath.Join(home, "cache")}, args...)
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG="+filepath.Join(home, "no-kubeconfig"))
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args[4:], " "), err, out)
		}
		return string(out)
	}
	waitReady := func(name string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			o, err := a.st.Get(ctx, store.Pods, "default", name)
			if err == nil && podReady(o.(*corev1.Pod)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod %s not Ready: %v", name, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	gone := func(name string) bool {
		_, err := a.st.Get(ctx, store.Pods, "default", name)
		return errors.Is(err, store.ErrNotFound)
	}

	// kubectl delete waits (through a watch) for the kubelet to finish.
	run(podManifest("quick", "1"), "create", "-f", "-")
	waitReady("quick")
	if out := run("", "delete", "pod", "quick", "--timeout=30s"); out != "pod \"quick\" deleted\n" {
		t.Errorf("kubectl delete pod printed %q", out)
	}
	if !gone("quick") {
		t.Error("kubectl delete pod returned before the pod was gone")
	}

	// --wait=false: the pod is Terminating (its preStop sleep is 60 s) until
	// it is force-deleted.
	run(podManifest("slow", "60"), "create", "-f", "-")
	waitReady("slow")
	if out := run("", "delete", "pod", "slow", "--wait=false"); out != "pod \"slow\" deleted\n" {
		t.Errorf("kubectl delete --wait=false printed %q", out)
	}
	if out := normalize(run("", "get", "pods")); out != "NAME READY STATUS RESTARTS AGE\nslow 1/1 Terminating 0 AGE\n" {
		t.Errorf("kubectl get pods during termination:\n%s", out)
	}
	if out := run("", "delete", "pod", "slow", "--grace-period=0", "--force"); !strings.HasSuffix(out, "pod \"slow\" force deleted\n") {
		t.Errorf("kubectl delete --force printed %q", out)
	}
	if !gone("slow") {
		t.Error("force-deleted pod still stored")
	}
}

// podReady reports the pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
