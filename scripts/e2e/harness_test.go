package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/svclab/svclab/netlab"
)

// Fixed addresses of every lab: each lab has its own host namespace, so they never collide.
const (
	apiAddr      = "127.0.0.1:8080"
	dnsAddr      = "127.0.0.1:1053"
	upstreamAddr = "127.0.0.1:5353"
	// hostIP is the host namespace's address on the lab's underlay.
	hostIP = "172.29.0.1"
	// dnsServiceIP is kube-dns's cluster IP.
	dnsServiceIP = "10.96.0.10"
	// clusterCIDR is the pod network.
	clusterCIDR = "10.244.0.0/16"
	netnsDir    = "/var/run/netns"
	etcNetnsDir = "/etc/netns"
	// upstreamName is the only name the fake upstream knows; upstreamAnswer is a documentation
	// address that is only ever an answer, never contacted.
	upstreamName   = "www.example.com."
	upstreamAnswer = "192.0.2.10"
)

var (
	// svclabBin is the binary TestMain built; "" when skipReason is set.
	svclabBin string
	// skipReason says why the run cannot build labs (not root, a tool missing).
	skipReason string
	// tmpRoot holds the binary and the shared labs' directories.
	tmpRoot string

	sharedMu   sync.Mutex
	sharedLabs = map[string]*lab{}
	sharedErrs = map[string]error{}
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	skipReason = privilegeProblem()
	if skipReason != "" {
		return m.Run()
	}
	var err error
	if tmpRoot, err = os.MkdirTemp("", "svclab-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)
	svclabBin = filepath.Join(tmpRoot, "svclab")
	build := exec.Command("go", "build", "-o", svclabBin, "github.com/svclab/svclab")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build github.com/svclab/svclab: %v\n%s", err, out)
		return 1
	}
	before, err := rootSnapshot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: snapshot the root netns:", err)
		return 1
	}
	code := m.Run()
	if err := closeSharedLabs(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: take the shared labs down:", err)
		code = 1
	}
	after, err := rootSnapshot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: snapshot the root netns:", err)
		return 1
	}
	if len(before["sysctl net.bridge"]) == 0 && len(after["sysctl net.bridge"]) > 0 {
		fmt.Fprintln(os.Stderr, "e2e: note: br_netfilter was loaded during the run:", after["sysctl net.bridge"])
	}
	if diff := diffSnapshots(before, after); diff != "" {
		fmt.Fprintf(os.Stderr, "e2e: the root network namespace changed during the run (-before +after):\n%s", diff)
		code = 1
	}
	return code
}

// privilegeProblem says why labs cannot be built here, or "" when they can.
func privilegeProblem() string {
	if os.Geteuid() != 0 {
		return "end-to-end tests need root (network namespaces, iptables)"
	}
	for _, tool := range []string{"iptables", "iptables-save", "nsenter", "ip", "conntrack", "dig", "curl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("end-to-end tests need %s in PATH", tool)
		}
	}
	return ""
}

// requireLabs skips tb unless labs can be built.
func requireLabs(tb testing.TB) {
	tb.Helper()
	if skipReason != "" {
		tb.Skip(skipReason)
	}
}

// ---------------------------------------------------------------------------------------------
// The root namespace must be left exactly as found.

var (
	countersRE = regexp.MustCompile(`\[\d+:\d+\]`)
	lifetimeRE = regexp.MustCompile(`(valid_lft|preferred_lft|expires) \S+`)
)

// rootSnapshot records what the tests must not change in the namespace of this process (the
// root one): links, addresses, routes, iptables rules without counters, forwarding sysctls.
func rootSnapshot() (map[string][]string, error) {
	snap := map[string][]string{}
	for _, c := range []struct {
		key  string
		argv []string
	}{
		{"ip -o link", []string{"ip", "-o", "link"}},
		{"ip -o addr", []string{"ip", "-o", "addr"}},
		{"ip route show table all", []string{"ip", "route", "show", "table", "all"}},
		{"ip -6 route show table all", []string{"ip", "-6", "route", "show", "table", "all"}},
		{"iptables-save", []string{"iptables-save"}},
		{"sysctl net.ipv4.ip_forward", []string{"sysctl", "net.ipv4.ip_forward"}},
		{"sysctl net.bridge", []string{"sysctl", "net.bridge"}},
	} {
		out, err := exec.Command(c.argv[0], c.argv[1:]...).Output()
		if err != nil && c.key != "sysctl net.bridge" { // net.bridge exists once br_netfilter is loaded
			return nil, fmt.Errorf("%s: %w", c.key, err)
		}
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			l = countersRE.ReplaceAllString(l, "[0:0]")
			l = lifetimeRE.ReplaceAllString(l, "$1 _")
			lines = append(lines, l)
		}
		snap[c.key] = lines
	}
	return snap, nil
}

// diffSnapshots compares two root snapshots. The only tolerated change is net.bridge.* appearing
// when it was absent before: the labs load br_netfilter (a kernel module, not a namespace's
// state), which creates those sysctls with their defaults.
func diffSnapshots(before, after map[string][]string) string {
	if len(before["sysctl net.bridge"]) == 0 && len(after["sysctl net.bridge"]) > 0 {
		after = maps2(after)
		delete(after, "sysctl net.bridge")
		before = maps2(before)
		delete(before, "sysctl net.bridge")
	}
	return cmp.Diff(before, after)
}

func maps2(m map[string][]string) map[string][]string {
	c := make(map[string][]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// ---------------------------------------------------------------------------------------------
// Namespace switching: the package's one place.

// inNetns runs fn on a goroutine locked to its OS thread after enter moved that thread into
// another network namespace, then moves the thread back. If it cannot move back, the thread
// stays locked and dies with the goroutine, so nothing else ever runs in the wrong namespace.
func inNetns(enter func() error, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		err = enter()
		if err == nil {
			err = fn()
		}
		// Also after a failed enter: netns.NewNamed may fail after it moved the thread.
		if serr := netns.Set(orig); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("return to the original netns: %w", serr))
			return // still locked: the runtime discards the thread
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// enterPath returns an enter function for inNetns that joins the namespace at path.
func enterPath(path string) func() error {
	return func() error {
		h, err := netns.GetFromPath(path)
		if err != nil {
			return fmt.Errorf("open netns %s: %w", path, err)
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("enter netns %s: %w", path, err)
		}
		return nil
	}
}

// createHostNetns creates the named namespace that plays a lab's host, with lo up.
func createHostNetns(name string) error {
	var h netns.NsHandle
	err := inNetns(func() error {
		var err error
		h, err = netns.NewNamed(name)
		if err != nil {
			return fmt.Errorf("create netns %s: %w", name, err)
		}
		return nil
	}, func() error { return nil })
	if err != nil {
		return err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", name, err)
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", name, err)
	}
	if err := nh.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", name, err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Names.

const lower = "abcdefghijklmnopqrstuvwxyz"

// randLower returns n random lowercase letters.
func randLower(n int) string {
	b := make([]byte, n)
	for i := range b {
		x, err := rand.Int(rand.Reader, big.NewInt(int64(len(lower))))
		if err != nil {
			panic(err)
		}
		b[i] = lower[x.Int64()]
	}
	return string(b)
}

// uniq returns prefix plus a random suffix, so that objects of a repeated run (-count=2) in a
// shared lab never collide.
func uniq(prefix string) string { return prefix + "-" + randLower(4) }

// newLabName picks "e2e"+4 random letters that no namespace or /etc/netns entry uses yet.
func newLabName() string {
	for {
		name := "e2e" + randLower(4)
		taken := false
		for _, dir := range []string{netnsDir, etcNetnsDir} {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), name+"-") || strings.HasPrefix(e.Name(), "svclabtest-"+name+"-") {
					taken = true
				}
			}
		}
		if !taken {
			return name
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Labs.

// labOptions are the flags of one lab's `svclab up` beyond the fixed ones.
type labOptions struct {
	demo  bool
	nodes int // 0: svclab's default
}

// lab is one running (or stopped) `svclab up` inside its own host namespace.
type lab struct {
	name     string
	hostNS   string
	hostPath string
	dataDir  string
	logDir   string
	opts     labOptions
	upstream *fakeUpstream
	tr       *http.Transport
	api      *http.Client
	// hostBefore is the host namespace as it was before the first `up`.
	hostBefore map[string]string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	starts  int
}

// startLab builds a lab for tb alone and takes it down in tb's cleanup, checking that nothing of
// it is left.
func startLab(tb testing.TB, opts labOptions) *lab {
	tb.Helper()
	requireLabs(tb)
	l, err := newLab(tb.TempDir(), opts)
	if l != nil {
		tb.Cleanup(func() {
			if tb.Failed() {
				l.dumpLogs(tb, 0)
			}
			if err := l.teardown(); err != nil {
				tb.Errorf("take lab %s down: %v", l.name, err)
			}
		})
	}
	if err != nil {
		tb.Fatalf("start a lab: %v", err)
	}
	return l
}

// sharedLab returns the lab of this key, started on first use and taken down by TestMain; only
// tests that leave it as they found it (their own uniquely named objects aside) may use it. On
// failure, tb gets the lab's logs written during tb.
func sharedLab(tb testing.TB, key string, opts labOptions) *lab {
	tb.Helper()
	requireLabs(tb)
	sharedMu.Lock()
	l, err := sharedLabs[key], sharedErrs[key]
	if l == nil && err == nil {
		var dir string
		if dir, err = os.MkdirTemp(tmpRoot, "shared-"+key+"-"); err == nil {
			l, err = newLab(dir, opts)
		}
		if l != nil {
			sharedLabs[key] = l
		}
		if err != nil {
			err = fmt.Errorf("start the shared %s lab: %w", key, err)
			sharedErrs[key] = err
		}
	}
	sharedMu.Unlock()
	if err != nil {
		if l != nil {
			l.dumpLogs(tb, 0)
		}
		tb.Fatal(err)
	}
	offset := l.logSize()
	tb.Cleanup(func() {
		if tb.Failed() {
			l.dumpLogs(tb, offset)
		}
	})
	return l
}

// demoLab is the shared lab started with --demo and three nodes.
func demoLab(tb testing.TB) *lab {
	tb.Helper()
	l := sharedLab(tb, "demo", labOptions{demo: true, nodes: 3})
	l.waitDemo(tb)
	return l
}

func closeSharedLabs() error {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	var errs []error
	for key, l := range sharedLabs {
		if err := l.teardown(); err != nil {
			errs = append(errs, fmt.Errorf("%s lab %s: %w", key, l.name, err))
		}
		delete(sharedLabs, key)
	}
	return errors.Join(errs...)
}

// newLab creates the host namespace and the fake upstream DNS, starts `svclab up` and waits until
// it is ready. It returns the lab also with an error when teardown is needed.
func newLab(dir string, opts labOptions) (*lab, error) {
	name := newLabName()
	l := &lab{
		name:    name,
		hostNS:  "svclabtest-" + name + "-host",
		dataDir: filepath.Join(dir, "data"),
		logDir:  filepath.Join(dir, "logs"),
		opts:    opts,
	}
	l.hostPath = filepath.Join(netnsDir, l.hostNS)
	if err := os.MkdirAll(l.logDir, 0o755); err != nil {
		return nil, err
	}
	if err := createHostNetns(l.hostNS); err != nil {
		if _, serr := os.Stat(l.hostPath); serr == nil {
			return l, err // half made: teardown deletes it
		}
		return nil, err
	}
	l.tr = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return netlab.DialInNetns(ctx, l.hostPath, network, addr)
		},
		MaxIdleConnsPerHost: 16,
	}
	l.api = &http.Client{Transport: l.tr, Timeout: 60 * time.Second}
	up, err := startUpstream(l.hostPath)
	if err != nil {
		return l, err
	}
	l.upstream = up
	if l.hostBefore, err = l.hostSnapshot(); err != nil {
		return l, err
	}
	return l, l.start()
}

// upArgs are the arguments of nsenter that start this lab.
func (l *lab) upArgs() []string {
	args := []string{"--net=" + l.hostPath, svclabBin, "up", "--name", l.name, "--data", l.dataDir,
		"--listen", apiAddr, "--dns-listen", dnsAddr, "--dns-upstream", upstreamAddr}
	if l.opts.demo {
		args = append(args, "--demo")
	}
	if l.opts.nodes > 0 {
		args = append(args, "--nodes", strconv.Itoa(l.opts.nodes))
	}
	return args
}

// start runs `svclab up` inside the host namespace and waits for /readyz.
func (l *lab) start() error {
	l.mu.Lock()
	if l.cmd != nil {
		l.mu.Unlock()
		return errors.New("lab is already running")
	}
	l.starts++
	n := l.starts
	stdout, err := os.OpenFile(filepath.Join(l.logDir, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(l.logDir, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	defer stderr.Close()
	fmt.Fprintf(stderr, "=== e2e: start %d: nsenter %s\n", n, strings.Join(l.upArgs(), " "))
	cmd := exec.Command("nsenter", l.upArgs()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("start svclab up: %w", err)
	}
	done := make(chan struct{})
	l.cmd, l.done = cmd, done
	l.mu.Unlock()
	go func() {
		err := cmd.Wait()
		l.mu.Lock()
		l.waitErr = err
		l.mu.Unlock()
		close(done)
	}()
	return l.waitReady(90 * time.Second)
}

// waitReady polls GET /readyz until it answers 200; it fails at once when the process exits.
func (l *lab) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		select {
		case <-l.done:
			l.mu.Lock()
			err := l.waitErr
			l.mu.Unlock()
			return fmt.Errorf("svclab up exited before it was ready: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		code, body, err := l.do(ctx, http.MethodGet, "/readyz", "", nil)
		cancel()
		if err == nil && code == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("%d %s %v", code, bytes.TrimSpace(body), err)
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: last /readyz: %s", timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pid is the PID of the running `svclab up` (nsenter execs it, so it is the same process).
func (l *lab) pid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cmd == nil {
		return 0
	}
	return l.cmd.Process.Pid
}

// stop sends sig to the running `svclab up` and waits for it to exit; after grace it sends
// SIGKILL to that PID. It returns the process's exit error (nil: exit 0) and whether it exited
// within grace.
func (l *lab) stop(sig syscall.Signal, grace time.Duration) (exitErr error, inTime bool) {
	l.mu.Lock()
	cmd, done := l.cmd, l.done
	l.mu.Unlock()
	if cmd == nil {
		return nil, true
	}
	_ = cmd.Process.Signal(sig)
	inTime = true
	select {
	case <-done:
	case <-time.After(grace):
		inTime = false
		_ = cmd.Process.Kill()
		<-done
	}
	l.mu.Lock()
	exitErr = l.waitErr
	l.cmd, l.done, l.waitErr = nil, nil, nil
	l.mu.Unlock()
	return exitErr, inTime
}

// down runs `svclab down --name <lab>` and returns its combined output.
func (l *lab) down() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+l.hostPath, svclabBin, "down", "--name", l.name).CombinedOutput()
	return string(out), err
}

// teardown stops the lab, runs `svclab down`, deletes the host namespace and checks that nothing
// of the lab remains.
func (l *lab) teardown() error {
	var errs []error
	if _, inTime := l.stop(syscall.SIGTERM, 30*time.Second); !inTime {
		errs = append(errs, errors.New("svclab up did not exit within 30s of SIGTERM; killed"))
	}
	if l.upstream != nil {
		l.upstream.close()
	}
	if l.tr != nil {
		l.tr.CloseIdleConnections()
	}
	if out, err := l.down(); err != nil {
		errs = append(errs, fmt.Errorf("svclab down: %v: %s", err, out))
	}
	errs = append(errs, l.leftovers(true)...)
	if err := netns.DeleteNamed(l.hostNS); err != nil {
		errs = append(errs, fmt.Errorf("delete host netns %s: %w", l.hostNS, err))
	}
	if _, err := os.Stat(l.hostPath); !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("host netns %s still exists (%v)", l.hostNS, err))
	}
	return errors.Join(errs...)
}

// leftovers lists what of the lab still exists: namespaces in `ip netns list`, /etc/netns
// directories and (when the host namespace exists) the host link.
func (l *lab) leftovers(checkHostLink bool) []error {
	var errs []error
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		errs = append(errs, fmt.Errorf("ip netns list: %w", err))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], l.name+"-") {
			errs = append(errs, fmt.Errorf("netns %s is left", f[0]))
		}
	}
	ents, _ := os.ReadDir(etcNetnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), l.name+"-") {
			errs = append(errs, fmt.Errorf("%s/%s is left", etcNetnsDir, e.Name()))
		}
	}
	if checkHostLink {
		links, err := exec.Command("nsenter", "--net="+l.hostPath, "ip", "-o", "link").Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("ip -o link in %s: %w", l.hostNS, err))
		}
		if bytes.Contains(links, []byte(" "+netlab.HostLinkName(l.name)+":")) ||
			bytes.Contains(links, []byte(" "+netlab.HostLinkName(l.name)+"@")) {
			errs = append(errs, fmt.Errorf("host link %s is left", netlab.HostLinkName(l.name)))
		}
	}
	return errs
}

// logSize is the current size of the lab's stderr log.
func (l *lab) logSize() int64 {
	st, err := os.Stat(filepath.Join(l.logDir, "stderr"))
	if err != nil {
		return 0
	}
	return st.Size()
}

// dumpLogs logs the lab's stdout and its stderr from offset on (at most the last 64 KiB).
func (l *lab) dumpLogs(tb testing.TB, offset int64) {
	tb.Helper()
	for _, f := range []string{"stdout", "stderr"} {
		b, err := os.ReadFile(filepath.Join(l.logDir, f))
		if err != nil {
			continue
		}
		if f == "stderr" {
			b = b[min(offset, int64(len(b))):]
		}
		if len(b) > 64<<10 {
			b = b[len(b)-64<<10:]
		}
		tb.Logf("lab %s %s:\n%s", l.name, f, b)
	}
}

// hostSnapshot records the host namespace's links, addresses and routes.
func (l *lab) hostSnapshot() (map[string]string, error) {
	snap := map[string]string{}
	for _, argv := range [][]string{{"ip", "-o", "link"}, {"ip", "-o", "addr"}, {"ip", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"}} {
		out, err := exec.Command("nsenter", append([]string{"--net=" + l.hostPath}, argv...)...).Output()
		if err != nil {
			return nil, fmt.Errorf("%s in %s: %w", strings.Join(argv, " "), l.hostNS, err)
		}
		snap[strings.Join(argv, " ")] = lifetimeRE.ReplaceAllString(string(out), "$1 _")
	}
	return snap, nil
}

// ---------------------------------------------------------------------------------------------
// Commands.

// cmdResult is what a command printed and its exit code.
type cmdResult struct {
	stdout, stderr string
	code           int
}

func (r cmdResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs argv with a deadline; a command that cannot start or is killed fails tb.
func run(tb testing.TB, argv ...string) cmdResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cmdResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil && ee.Exited():
		r.code = ee.ExitCode()
	default:
		tb.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, r)
	}
	return r
}

// exec runs argv inside a pod with `svclab exec --name <lab> -n ns pod -- argv`.
func (l *lab) exec(tb testing.TB, ns, pod string, argv ...string) cmdResult {
	tb.Helper()
	return run(tb, append([]string{svclabBin, "exec", "--name", l.name, "-n", ns, pod, "--"}, argv...)...)
}

// execNode runs argv inside a node with `svclab exec --name <lab> --node node -- argv`.
func (l *lab) execNode(tb testing.TB, node string, argv ...string) cmdResult {
	tb.Helper()
	return run(tb, append([]string{svclabBin, "exec", "--name", l.name, "--node", node, "--"}, argv...)...)
}

// hostCmd runs argv inside the lab's host namespace.
func (l *lab) hostCmd(tb testing.TB, argv ...string) cmdResult {
	tb.Helper()
	return run(tb, append([]string{"nsenter", "--net=" + l.hostPath}, argv...)...)
}

// iptablesSave is `iptables-save` of a node.
func (l *lab) iptablesSave(tb testing.TB, node string) string {
	tb.Helper()
	r := l.execNode(tb, node, "iptables-save")
	if r.code != 0 {
		tb.Fatalf("iptables-save in %s: %s", node, r)
	}
	return r.stdout
}
