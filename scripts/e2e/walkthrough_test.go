package e2e

// The README's walkthrough of the seed's chapter 8, run as written: every command block between
// the walkthrough markers runs, in order, against a fresh `svclab up --demo` lab, and its output
// must contain the essential lines of the ```text block that follows it. So the walkthrough
// cannot rot: a changed rule, DNS answer or CLI output breaks this test.
//
// Conventions of the README (see walkthrough_helpers_test.go):
//   - ```sh blocks hold commands exactly as a user types them on a machine running
//     `sudo svclab up --demo` (default name and addresses), from the svclab checkout;
//   - the ```text block right after holds the expected output; "…" inside a line matches any
//     text, a line that is only "…" stands for left-out lines; pod IPs, random cluster IPs and
//     KUBE-SEP hashes are normalised on both sides;
//   - <!-- walkthrough: needs /lab/v1/PATH --> before a block runs it only once GET PATH on the
//     lab's API answers something other than 404;
//   - <!-- walkthrough: any order --> before a block lets its expected lines appear in any order.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// wtReadme is the README that holds the walkthrough, relative to this package's directory.
const wtReadme = "../../README.md"

// wtKubectlRE finds a kubectl command: its blocks are skipped where kubectl is not installed
// (svclab does not need it; Debian does not package it).
var wtKubectlRE = regexp.MustCompile(`(^|[|;&(]\s*)kubectl\s`)

// wtRepoRoot is the svclab checkout: the README's commands run there (examples/, scripts/).
const wtRepoRoot = "../.."

// TestWalkthroughParses checks the walkthrough's shape without a lab: it exists, covers every
// part of the seed's chapter that it follows, and each block has commands.
func TestWalkthroughParses(t *testing.T) {
	blocks, err := readWalkthrough(wtReadme)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 20 {
		t.Fatalf("only %d command blocks in the walkthrough", len(blocks))
	}
	seen := map[string]bool{}
	for _, b := range blocks {
		if len(b.cmds) == 0 {
			t.Errorf("README line %d: a command block without commands", b.line)
		}
		for _, part := range []string{"8.2", "8.3", "8.6", "8.7", "8.8", "8.9", "8.10", "8.11", "conclusion"} {
			if strings.Contains(strings.ToLower(b.heading), part) {
				seen[part] = true
			}
		}
	}
	for _, part := range []string{"8.2", "8.3", "8.6", "8.7", "8.8", "8.9", "8.10", "8.11", "conclusion"} {
		if !seen[part] {
			t.Errorf("no command block under a heading for the seed's %s", part)
		}
	}
}

// TestWalkthroughLabOnly checks that the walkthrough's commands name only the lab's addresses,
// cluster.local names and loopback: following the README never sends a packet elsewhere.
func TestWalkthroughLabOnly(t *testing.T) {
	blocks, err := readWalkthrough(wtReadme)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		for _, c := range b.cmds {
			for _, p := range labOnlyProblems(c) {
				t.Errorf("README line %d: %s\n  in: %s", b.line, p, c)
			}
		}
	}
}

// TestWalkthroughLabOnlyCatches checks the address checker on commands it must refuse and allow.
func TestWalkthroughLabOnlyCatches(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want int
	}{
		{"curl -s http://172.29.0.2:30080/", 0},
		{"sudo svclab exec client -- dig -t A myapp-nohead.default.svc.cluster.local. @10.96.0.10", 0},
		{"dig @127.0.0.1 -p 1053 redis.default.svc.cluster.local. +short", 0},
		{"kubectl -s http://127.0.0.1:8080 get svc", 0},
		{`curl -d '{"spec":{"loadBalancerSourceRanges":["10.244.0.0/16"]}}' http://localhost:8080/x`, 0},
		{"curl -s http://93.184.216.34/", 2},                 // address and URL
		{"curl -s https://example.com/", 1},                  // URL
		{"dig www.example.com", 1},                           // name outside the cluster
		{"dig @8.8.8.8 redis.default.svc.cluster.local.", 2}, // server: address and @
		{"kubectl get svc", 1},                               // kubeconfig's cluster
		{`curl -d '{"x":["0.0.0.0/0"]}' http://127.0.0.1:8080/`, 1},
	} {
		if got := labOnlyProblems(tc.cmd); len(got) != tc.want {
			t.Errorf("labOnlyProblems(%q) = %q, want %d problems", tc.cmd, got, tc.want)
		}
	}
}

// TestWalkthroughRewrite checks how README commands become the test lab's commands.
func TestWalkthroughRewrite(t *testing.T) {
	r := wtRewriter{bin: "/tmp/x/svclab", lab: "e2eabcd", linearScanNs: "1 50"}
	for _, tc := range []struct{ in, want string }{
		{"sudo svclab exec client -- curl -s http://10.96.0.100:6379/",
			"/tmp/x/svclab exec --name e2eabcd client -- curl -s http://10.96.0.100:6379/"},
		{"sudo ip netns exec svclab-node-1 iptables -t nat -nL KUBE-SERVICES",
			"ip netns exec e2eabcd-node-1 iptables -t nat -nL KUBE-SERVICES"},
		{"svclab rules -f examples/ | grep default/testsvc",
			"/tmp/x/svclab rules -f examples/ | grep default/testsvc"},
		{"sudo svclab down", "/tmp/x/svclab down --name e2eabcd"},
		{"sudo ip netns exec svclab-node-2 iptables-save | sudo svclab exec --node node-1 -- cat",
			"ip netns exec e2eabcd-node-2 iptables-save | /tmp/x/svclab exec --name e2eabcd --node node-1 -- cat"},
		{"sudo scripts/linear-scan 1 1000 5000", "scripts/linear-scan 1 50"},
		{"sudo scripts/linear-scan", "scripts/linear-scan 1 50"},
		{"curl -s http://172.29.0.2:30080/", "curl -s http://172.29.0.2:30080/"},
		{"kubectl -s http://127.0.0.1:8080 get svc svclab-x", "kubectl -s http://127.0.0.1:8080 get svc svclab-x"},
	} {
		if got := r.rewrite(tc.in); got != tc.want {
			t.Errorf("rewrite(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestWalkthroughMatch checks the expected-output matcher: wildcards, left-out lines, order and
// normalisation.
func TestWalkthroughMatch(t *testing.T) {
	actual := strings.Join([]string{
		"Chain KUBE-SVC-QAIWDPZBWUTCVGO3 (2 references)",
		"target     prot opt source               destination",
		"KUBE-MARK-MASQ  6    -- !10.244.0.0/16        10.100.233.162       /* default/testsvc cluster IP */ tcp dpt:443",
		"KUBE-SEP-4CEQLPAHMDXKY5I7  0    --  0.0.0.0/0            0.0.0.0/0            /* default/testsvc -> 10.244.1.6:80 */ statistic mode random probability 0.14285714272",
		"client: 10.244.1.9:54078",
		"dev e2eabcd0 weight 1",
	}, "\n")
	for _, tc := range []struct {
		name   string
		expect []string
		ok     bool
	}{
		{"exact with normalisation", []string{
			"KUBE-MARK-MASQ  tcp  -- !10.244.0.0/16  10.107.1.2  /* default/testsvc cluster IP */ tcp dpt:443",
			"KUBE-SEP-ZZZZZZZZZZZZZZZZ  all  --  0.0.0.0/0  0.0.0.0/0  /* default/testsvc -> 10.244.2.8:80 */ statistic mode random probability 0.14285714272",
		}, true},
		{"wildcards and left-out lines", []string{"Chain KUBE-SVC-QAIWDPZBWUTCVGO3 …", "…", "client: 10.244.1.9:…"}, true},
		{"lab name", []string{"dev svclab0 weight 1"}, true},
		{"wrong hash", []string{"Chain KUBE-SVC-AAAAAAAAAAAAAAAA (2 references)"}, false},
		{"out of order", []string{"client: …", "Chain KUBE-SVC-QAIWDPZBWUTCVGO3 …"}, false},
		{"fixed IP is checked", []string{"KUBE-MARK-MASQ … 10.96.0.100 …"}, false},
		{"missing line", []string{"probability 0.5"}, false},
	} {
		err := matchExpected(tc.expect, actual, "e2eabcd")
		if (err == nil) != tc.ok {
			t.Errorf("%s: matchExpected = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestWalkthroughSplit checks how a block's lines become commands.
func TestWalkthroughSplit(t *testing.T) {
	got := splitCommands([]string{
		"# a comment",
		"curl -s \\",
		"   http://127.0.0.1:8080/healthz",
		"",
		"cat <<'EOF' | wc -l",
		"a: 1",
		"EOF",
		"echo done",
	})
	want := []string{"curl -s http://127.0.0.1:8080/healthz", "cat <<'EOF' | wc -l\na: 1\nEOF", "echo done"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("splitCommands (-want +got):\n%s", diff)
	}
}

// TestWalkthrough runs the walkthrough against its own demo lab (two nodes, the defaults that
// `sudo svclab up --demo` uses), block by block, in README order.
func TestWalkthrough(t *testing.T) {
	blocks, err := readWalkthrough(wtReadme)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(wtRepoRoot)
	if err != nil {
		t.Fatal(err)
	}
	l := startLab(t, labOptions{demo: true})
	l.waitDemo(t)
	_, err = exec.LookPath("kubectl")
	haveKubectl := err == nil
	tmp := t.TempDir()
	env := append(os.Environ(),
		"KUBECONFIG="+filepath.Join(tmp, "no-kubeconfig"), // never a user's cluster
		"KUBECACHEDIR="+filepath.Join(tmp, "kube-cache"),  // leave ~/.kube as it is
		"SVCLAB="+svclabBin, "SVCLAB_NAME="+l.name,        // for scripts/linear-scan
	)
	rw := wtRewriter{bin: svclabBin, lab: l.name, linearScanNs: "1 50"}
	for _, b := range blocks {
		t.Run(b.name(), func(t *testing.T) {
			if b.needs != "" {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				code, _, err := l.do(ctx, http.MethodGet, b.needs, "", nil)
				cancel()
				if err != nil {
					t.Fatalf("GET %s: %v", b.needs, err)
				}
				if code == http.StatusNotFound {
					t.Skipf("README line %d needs GET %s, which answers 404: the endpoint is not served yet", b.line, b.needs)
				}
			}
			mutating := false
			for _, c := range b.cmds {
				mutating = mutating || isMutating(c)
				if !haveKubectl && wtKubectlRE.MatchString(c) {
					t.Skipf("README line %d uses kubectl, which is not installed here", b.line)
				}
			}
			// A block that only looks may run again until the lab has converged (rules and DNS
			// follow an API write asynchronously, as in a real cluster); one that changes the
			// lab runs once.
			deadline := time.Now().Add(30 * time.Second)
			for attempt := 1; ; attempt++ {
				out, err := l.runWalkthroughBlock(t, b, rw, root, env)
				if err == nil && b.expect != nil {
					if b.anyOrder {
						err = matchExpectedAnyOrder(b.expect, out, l.name)
					} else {
						err = matchExpected(b.expect, out, l.name)
					}
				}
				if err == nil {
					return
				}
				if mutating || time.Now().After(deadline) {
					t.Fatalf("README line %d (attempt %d): %v\noutput:\n%s", b.line, attempt, err, out)
				}
				time.Sleep(250 * time.Millisecond) // poll the converging lab
			}
		})
	}
}

// runWalkthroughBlock runs a block's commands one after another inside the lab's host namespace,
// each with bash as a user's shell would, and returns their combined output. The first command
// that exits non-zero ends the block with an error.
func (l *lab) runWalkthroughBlock(tb testing.TB, b wtBlock, rw wtRewriter, dir string, env []string) (string, error) {
	tb.Helper()
	var all bytes.Buffer
	for _, c := range b.cmds {
		cmd := rw.rewrite(c)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		x := exec.CommandContext(ctx, "nsenter", "--net="+l.hostPath, "bash", "-c", cmd)
		x.Dir, x.Env = dir, env
		var out bytes.Buffer
		x.Stdout, x.Stderr = &out, &out
		err := x.Run()
		cancel()
		all.Write(out.Bytes())
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return all.String(), fmt.Errorf("command %q (run as %q) exited %d", c, cmd, ee.ExitCode())
			}
			return all.String(), fmt.Errorf("command %q (run as %q): %v", c, cmd, err)
		}
	}
	return all.String(), nil
}
