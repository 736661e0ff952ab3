package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/netlab"
)

// checkPodToPod connects from a pod on node-1 straight to a pod on targetNode: the target
// answers and sees the client pod's own address.
func checkPodToPod(t *testing.T, targetNode string) {
	l := demoLab(t)
	name := uniq("p2p")
	pods := l.createPods(t, clientPod(name+"-client", "node-1"), backendsOn(name, targetNode)[0])
	client, target := pods[0], pods[1]
	got := echoVia(t, l.podNetnsPath("default", client.Name), hostPort(target.Status.PodIP, echoPort))
	want := netlab.EchoReply{Pod: target.Name, Namespace: "default", Node: targetNode, Hostname: target.Name,
		IP: target.Status.PodIP, Port: echoPort, Protocol: "TCP", Client: got.Client}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("echo (-want +got):\n%s", diff)
	}
	if clientIP(got) != client.Status.PodIP {
		t.Errorf("target saw client %s, want %s", got.Client, client.Status.PodIP)
	}
}

func TestPodToPodSameNode(t *testing.T) { checkPodToPod(t, "node-1") }

func TestPodToPodAcrossNodes(t *testing.T) { checkPodToPod(t, "node-2") }

// TestHostToPodFailsFast: the host cannot reach pod or cluster IPs, by design; it fails at once
// with "no route to host" instead of timing out or leaving through a default route.
func TestHostToPodFailsFast(t *testing.T) {
	l := demoLab(t)
	redis, ok := l.getPod(t, "default", "redis-0")
	if !ok {
		t.Fatal("no redis-0 pod")
	}
	for _, addr := range []string{hostPort(redis.Status.PodIP, 6379), "10.96.0.100:6379"} {
		_, err := echoTCP(l.hostPath, addr, 5*time.Second)
		if !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("host → %s: %v, want no route to host", addr, err)
		}
	}
	if r := l.hostCmd(t, "curl", "-sS", "-m", "5", "http://"+hostPort(redis.Status.PodIP, 6379)+"/"); r.code != 7 {
		t.Errorf("curl from the host to a pod: want exit 7 (couldn't connect), got %s", r)
	}
}

// TestEchoIdentities: the echo workload tells who answered and whom it saw, over HTTP (text and
// JSON), raw TCP and UDP, and uses the pod's spec.hostname.
func TestEchoIdentities(t *testing.T) {
	l := demoLab(t)
	name := uniq("ident")
	target := echoPod(name, "node-3", labelsFor(name), tcpPort(8080), udpPort(9090))
	target.Spec.Hostname = "custom-" + name
	pods := l.createPods(t, clientPod(name+"-client", "node-1"), target)
	client, tp := pods[0], pods[1]
	want := netlab.EchoReply{Pod: tp.Name, Namespace: "default", Node: "node-3", Hostname: "custom-" + name,
		IP: tp.Status.PodIP, Port: 8080, Protocol: "TCP"}
	url := "http://" + hostPort(tp.Status.PodIP, 8080) + "/"

	t.Run("http text", func(t *testing.T) {
		r := l.exec(t, "default", client.Name, "curl", "-sS", "-m", "5", url)
		if r.code != 0 {
			t.Fatalf("curl: %s", r)
		}
		got, err := parseEchoText(r.stdout)
		if err != nil {
			t.Fatal(err)
		}
		w := want
		w.Client = got.Client // the port is the client's choice
		if diff := cmp.Diff(w.Text(), r.stdout); diff != "" {
			t.Errorf("body (-want +got):\n%s", diff)
		}
		if clientIP(got) != client.Status.PodIP {
			t.Errorf("client %s, want %s", got.Client, client.Status.PodIP)
		}
	})
	t.Run("http json", func(t *testing.T) {
		r := l.exec(t, "default", client.Name, "curl", "-sS", "-m", "5", "-H", "Accept: application/json", url)
		if r.code != 0 {
			t.Fatalf("curl: %s", r)
		}
		var got netlab.EchoReply
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("decode %q: %v", r.stdout, err)
		}
		w := want
		w.Client = got.Client
		if diff := cmp.Diff(w, got); diff != "" || clientIP(got) != client.Status.PodIP {
			t.Errorf("json (-want +got):\n%s\nclient %s", diff, got.Client)
		}
	})
	t.Run("raw tcp", func(t *testing.T) {
		got := echoVia(t, l.podNetnsPath("default", client.Name), hostPort(tp.Status.PodIP, 8080))
		w := want
		w.Client = got.Client
		if diff := cmp.Diff(w, got); diff != "" || clientIP(got) != client.Status.PodIP {
			t.Errorf("line (-want +got):\n%s\nclient %s", diff, got.Client)
		}
	})
	t.Run("udp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := netlab.DialInNetns(ctx, l.podNetnsPath("default", client.Name), "udp", hostPort(tp.Status.PodIP, 9090))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := udpExchange(t, c)
		w := want
		w.Port, w.Protocol, w.Client = 9090, "UDP", got.Client
		if diff := cmp.Diff(w, got); diff != "" || clientIP(got) != client.Status.PodIP {
			t.Errorf("udp (-want +got):\n%s\nclient %s", diff, got.Client)
		}
	})
	t.Run("hostname in exec", func(t *testing.T) {
		r := l.exec(t, "default", tp.Name, "hostname")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "custom-"+name {
			t.Errorf("hostname in the pod: %s, want %s", r, "custom-"+name)
		}
	})
}

// TestExecExitCodesAndResolvConf: `svclab exec` passes the command's exit code through and the
// command sees the pod's resolv.conf (its namespace first in the search path).
func TestExecExitCodesAndResolvConf(t *testing.T) {
	l := demoLab(t)
	for _, tc := range []struct {
		argv []string
		code int
	}{
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"true"}, 0},
		{[]string{"false"}, 1},
		{[]string{"sh", "-c", "exit 255"}, 255},
	} {
		if r := l.exec(t, "default", "client", tc.argv...); r.code != tc.code {
			t.Errorf("svclab exec client -- %s: %s, want exit %d", strings.Join(tc.argv, " "), r, tc.code)
		}
	}
	if r := l.exec(t, "default", "no-such-pod", "true"); r.code == 0 || !strings.Contains(r.stderr, "no-such-pod") {
		t.Errorf("svclab exec no-such-pod: %s, want a failure naming the pod", r)
	}

	ns := "e2e" + randLower(5)
	l.call(t, http.MethodPost, "/api/v1/namespaces", "application/json",
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, nil, http.StatusCreated)
	p := echoPod("resolv", "", nil, tcpPort(echoPort))
	p.Namespace = ns
	l.createPod(t, p)
	for _, tc := range []struct{ ns, pod string }{{"default", "client"}, {ns, "resolv"}} {
		r := l.exec(t, tc.ns, tc.pod, "cat", "/etc/resolv.conf")
		want := fmt.Sprintf("nameserver %s\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", dnsServiceIP, tc.ns)
		if r.code != 0 {
			t.Fatalf("cat /etc/resolv.conf in %s/%s: %s", tc.ns, tc.pod, r)
		}
		if diff := cmp.Diff(want, r.stdout); diff != "" {
			t.Errorf("%s/%s resolv.conf (-want +got):\n%s", tc.ns, tc.pod, diff)
		}
	}
	l.deletePod(t, ns, "resolv")
}

// TestPodDeleteRecreate: deleting a pod removes its namespace and files; creating it again brings
// back a pod that answers.
func TestPodDeleteRecreate(t *testing.T) {
	l := demoLab(t)
	name := uniq("again")
	pods := l.createPods(t, clientPod(name+"-client", "node-2"), backendsOn(name, "node-1")[0])
	client, p := pods[0], pods[1]
	from := l.podNetnsPath("default", client.Name)
	if got := echoVia(t, from, hostPort(p.Status.PodIP, echoPort)); got.Pod != p.Name {
		t.Fatalf("answered by %s, want %s", got.Pod, p.Name)
	}
	nsName := netlab.PodNetnsName(l.name, "default", p.Name)
	l.deletePod(t, "default", p.Name)
	for _, path := range []string{filepath.Join(netnsDir, nsName), filepath.Join(etcNetnsDir, nsName)} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after the pod was deleted (%v)", path, err)
		}
	}
	if _, err := echoTCP(from, hostPort(p.Status.PodIP, echoPort), time.Second); err == nil {
		t.Errorf("the deleted pod's address %s still answers", p.Status.PodIP)
	}

	again := l.createPod(t, backendsOn(name, "node-1")[0])
	got := echoVia(t, from, hostPort(again.Status.PodIP, echoPort))
	if got.Pod != p.Name || got.IP != again.Status.PodIP {
		t.Errorf("recreated pod: answered by %s at %s, want %s at %s", got.Pod, got.IP, p.Name, again.Status.PodIP)
	}
}

// podIPsByName maps "ns/name" to the IP of every pod of the lab.
func (l *lab) podIPsByName(tb testing.TB) map[string]string {
	tb.Helper()
	var list corev1.PodList
	l.call(tb, http.MethodGet, "/api/v1/pods", "", nil, &list, http.StatusOK)
	out := map[string]string{}
	for _, p := range list.Items {
		out[p.Namespace+"/"+p.Name] = p.Status.PodIP
	}
	return out
}

// labNetns lists `ip netns list` entries of the lab.
func (l *lab) labNetns(tb testing.TB) []string {
	tb.Helper()
	r := run(tb, "ip", "netns", "list")
	var out []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], l.name+"-") {
			out = append(out, f[0])
		}
	}
	return out
}

// checkEveryPodAnswers checks that every pod answers at its IP: echo pods on each TCP container
// port (from the demo's client pod), DNS pods with a DNS answer. It also checks that the lab's
// namespaces are exactly one per pod and node plus the underlay's.
func checkEveryPodAnswers(t *testing.T, l *lab) {
	t.Helper()
	var list corev1.PodList
	l.call(t, http.MethodGet, "/api/v1/pods", "", nil, &list, http.StatusOK)
	from := l.podNetnsPath("default", "client")
	for _, p := range list.Items {
		l.waitPodReady(t, p.Namespace, p.Name)
		if p.Annotations["svclab.io/workload"] == "dns" {
			var m *dns.Msg
			eventually(t, 20*time.Second, "DNS pod "+p.Name+" answers", func() (bool, string) {
				var err error
				m, err = queryDNSIn(from, "udp", hostPort(p.Status.PodIP, 53), "kubernetes.default.svc.cluster.local.", dns.TypeA)
				return err == nil && len(aRecords(m)) == 1, fmt.Sprint(m, err)
			})
			continue
		}
		for _, c := range p.Spec.Containers {
			for _, port := range c.Ports {
				if port.Protocol != corev1.ProtocolTCP && port.Protocol != "" {
					continue
				}
				if got := echoVia(t, from, hostPort(p.Status.PodIP, port.ContainerPort)); got.Pod != p.Name {
					t.Errorf("%s:%d answered by %s, want %s", p.Status.PodIP, port.ContainerPort, got.Pod, p.Name)
				}
			}
		}
	}
	nodes := l.nodes(t)
	if got, want := len(l.labNetns(t)), len(list.Items)+len(nodes)+1; got != want {
		t.Errorf("the lab has %d namespaces, want %d (%d pods + %d nodes + the underlay): %v",
			got, want, len(list.Items), len(nodes), l.labNetns(t))
	}
}

// TestRestartAfterKill9: after kill -9 the next `up` on the same store adopts what exists: same
// pod IPs, no duplicated namespaces, a stale pod namespace removed, every pod answering.
func TestRestartAfterKill9(t *testing.T) {
	l := startLab(t, labOptions{demo: true})
	l.waitDemo(t)
	before := l.podIPsByName(t)
	pid := l.pid()
	if exitErr, _ := l.stop(syscall.SIGKILL, 10*time.Second); exitErr == nil {
		t.Fatalf("svclab up (pid %d) exited 0 after SIGKILL", pid)
	}
	if len(l.labNetns(t)) == 0 {
		t.Fatal("kill -9 removed the namespaces; nothing to adopt")
	}
	// A pod namespace the store does not know, as if its pod was deleted while svclab was down.
	ghost := netlab.PodNetnsName(l.name, "default", "ghost")
	if r := run(t, "ip", "netns", "add", ghost); r.code != 0 {
		t.Fatalf("ip netns add %s: %s", ghost, r)
	}

	if err := l.start(); err != nil {
		t.Fatalf("up after kill -9: %v", err)
	}
	l.waitDemo(t)
	if diff := cmp.Diff(before, l.podIPsByName(t)); diff != "" {
		t.Errorf("pod IPs changed across kill -9 (-before +after):\n%s", diff)
	}
	eventually(t, 20*time.Second, "the stale namespace "+ghost+" removed", func() (bool, string) {
		_, err := os.Stat(filepath.Join(netnsDir, ghost))
		return errors.Is(err, os.ErrNotExist), fmt.Sprint(err)
	})
	checkEveryPodAnswers(t, l)
}

// TestSigtermTakesNetworkDown: Ctrl-C (SIGTERM) takes the whole network down and exits 0; the
// next `up` rebuilds the same lab with the same IPs.
func TestSigtermTakesNetworkDown(t *testing.T) {
	l := startLab(t, labOptions{demo: true})
	l.waitDemo(t)
	before := l.podIPsByName(t)
	exitErr, inTime := l.stop(syscall.SIGTERM, 30*time.Second)
	if !inTime || exitErr != nil {
		t.Fatalf("svclab up after SIGTERM: exit %v (within 30s: %v), want exit 0", exitErr, inTime)
	}
	for _, err := range l.leftovers(true) {
		t.Errorf("after SIGTERM: %v", err)
	}
	after, err := l.hostSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l.hostBefore, after); diff != "" {
		t.Errorf("after SIGTERM the host netns differs from before up (-before +after):\n%s", diff)
	}

	if err := l.start(); err != nil {
		t.Fatalf("up again: %v", err)
	}
	l.waitDemo(t)
	if diff := cmp.Diff(before, l.podIPsByName(t)); diff != "" {
		t.Errorf("pod IPs changed across a restart (-before +after):\n%s", diff)
	}
	checkEveryPodAnswers(t, l)
}

// TestDownTwiceAfterCrash: after a crash, `svclab down` removes everything of the lab and leaves
// the host namespace exactly as it was before `up`; a second `down` is fine too.
func TestDownTwiceAfterCrash(t *testing.T) {
	l := startLab(t, labOptions{demo: true})
	l.waitDemo(t)
	l.stop(syscall.SIGKILL, 10*time.Second)
	for i := range 2 {
		out, err := l.down()
		if err != nil {
			t.Fatalf("svclab down #%d: %v\n%s", i+1, err, out)
		}
		for _, err := range l.leftovers(true) {
			t.Errorf("after down #%d: %v", i+1, err)
		}
		after, err := l.hostSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(l.hostBefore, after); diff != "" {
			t.Errorf("after down #%d the host netns differs from before up (-before +after):\n%s", i+1, diff)
		}
	}
}
