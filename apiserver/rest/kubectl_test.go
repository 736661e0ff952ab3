package rest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/svclab/svclab/apiserver/store"
)

const redisManifest = `apiVersion: v1
kind: Service
metadata:
  name: redis
  namespace: default
spec:
  selector:
    app: redis
    role: logstor
  type: ClusterIP
  clusterIP: 10.96.0.100
  ports:
    - port: 6379
      targetPort: 6379
      protocol: TCP
`

// ageCell matches the AGE cell of kubectl's tables (it depends on the clock).
var ageCell = regexp.MustCompile(`\b\d+(s|m)\b`)

// normalize replaces ages by "AGE" and each run of blanks by one space (the
// column widths follow the ages).
func normalize(out string) string {
	lines := strings.Split(ageCell.ReplaceAllString(out, "AGE"), "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// TestKubectl drives the real kubectl (skipped when it is not on PATH) against
// the handler on a loopback port, with no kubeconfig: discovery, create -f
// (validated on the server through /openapi/v3), get with server-side
// tables, -o yaml, apply (created/unchanged/configured), label (a strategic
// merge patch), label selectors, delete (which waits through a watch).
func TestKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	a := newTestAPI(t, store.Options{}, Options{})
	home := t.TempDir()
	manifest := filepath.Join(home, "redis.yaml")
	if err := os.WriteFile(manifest, []byte(redisManifest), 0o644); err != nil {
		t.Fatal(err)
	}
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
	check := func(want, got string) {
		t.Helper()
		if diff := cmp.Diff(normalize(want), normalize(got)); diff != "" {
			t.Errorf("kubectl output (-want +got):\n%s", diff)
		}
	}

	check("service/redis created\n", run("", "create", "-f", manifest))
	check(`NAMESPACE   NAME    TYPE        CLUSTER-IP    EXTERNAL-IP   PORT(S)    AGE
default     redis   ClusterIP   10.96.0.100   <none>        6379/TCP   AGE
`, run("", "get", "svc", "-A"))

	var got corev1.Service
	if err := yaml.UnmarshalStrict([]byte(run("", "get", "svc", "redis", "-o", "yaml")), &got); err != nil {
		t.Fatalf("get -o yaml: %v", err)
	}
	var want corev1.Service
	if err := yaml.Unmarshal([]byte(redisManifest), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Spec, got.Spec); diff != "" || got.UID == "" || got.Kind != "Service" {
		t.Errorf("get -o yaml (-manifest +got):\n%s", diff)
	}

	apply := strings.Replace(redisManifest, "name: redis", "name: cache", 1)
	apply = strings.Replace(apply, "clusterIP: 10.96.0.100", "clusterIP: 10.96.0.101", 1)
	check("service/cache created\n", run(apply, "apply", "-f", "-"))
	check("service/cache unchanged\n", run(apply, "apply", "-f", "-"))
	check("service/cache configured\n", run(strings.Replace(apply, "app: redis", "app: cache", 1), "apply", "-f", "-"))
	check("service/redis labeled\n", run("", "label", "svc", "redis", "tier=db"))
	check("service/redis\n", run("", "get", "svc", "-l", "tier=db", "-o", "name"))
	check(`NAME    TYPE        CLUSTER-IP    EXTERNAL-IP   PORT(S)    AGE   SELECTOR
cache   ClusterIP   10.96.0.101   <none>        6379/TCP   AGE   app=cache,role=logstor
redis   ClusterIP   10.96.0.100   <none>        6379/TCP   AGE   app=redis,role=logstor
`, run("", "get", "svc", "-o", "wide"))
	check(`NAME          STATUS   AGE
default       Active   AGE
kube-system   Active   AGE
`, run("", "get", "ns"))

	// kubectl get -w: list as a Table, then a watch from the list's resourceVersion.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	watcher := exec.CommandContext(ctx, kubectl, "--server", a.srv.URL, "--cache-dir", filepath.Join(home, "cache"),
		"get", "svc", "--watch-only", "-o", "name")
	watcher.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG="+filepath.Join(home, "no-kubeconfig"))
	stdout, err := watcher.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Create until the watcher reports one: it may start watching after the first create.
	seen := ""
	for i := 0; seen == "" && i < 50; i++ {
		a.create(t, "default", testService(fmt.Sprintf("watched-%d", i), nil))
		select {
		case seen = <-lines:
		case <-time.After(200 * time.Millisecond):
		}
	}
	cancel()
	_ = watcher.Wait() // killed by cancel
	if !strings.HasPrefix(seen, "service/watched-") {
		t.Errorf("kubectl get -w printed %q, want service/watched-N", seen)
	}

	check("service \"redis\" deleted\n", run("", "delete", "svc", "redis"))
	check("service \"cache\" deleted\n", run(apply, "delete", "-f", "-", "--timeout=30s"))
	for _, name := range strings.Fields(run("", "get", "svc", "-o", "name")) {
		if !strings.HasPrefix(name, "service/watched-") {
			t.Errorf("left over: %s", name)
		}
	}
	run("", "delete", "svc", "--all")
	check("No resources found\n", run("", "get", "svc", "-A"))

	resources := normalize(run("", "api-resources", "--no-headers"))
	for _, line := range []string{
		"services svc v1 true Service",
		"endpointslices discovery.k8s.io/v1 true EndpointSlice",
	} {
		if !strings.Contains(resources, line) {
			t.Errorf("api-resources lacks %q:\n%s", line, resources)
		}
	}
}
