package netlab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// runID makes this test process's lab and host-netns names unique, so
// parallel test packages never collide and leaks are attributable.
var runID = func() string {
	b := make([]byte, 2)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

var labSeq atomic.Int32

// helperEnv selects a helper mode when the test binary re-executes itself.
const helperEnv = "NETLAB_TEST_HELPER"

// helperArgs is what the parent passes a helper (JSON in NETLAB_TEST_ARGS).
type helperArgs struct {
	Name        string
	HostNetns   string
	EtcNetnsDir string
	Namespace   string
	Pod         string
	Node        string
	Argv        []string
	Nodes       []NodeSpec
	Pods        []PodSpec
}

func (a helperArgs) config() Config {
	return Config{Name: a.Name, HostNetns: a.HostNetns, EtcNetnsDir: a.EtcNetnsDir}
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	var before string
	if os.Geteuid() == 0 {
		before = rootSnapshot()
	}
	code := m.Run()
	if os.Geteuid() == 0 {
		// The whole suite must leave the real root namespace untouched.
		if !strings.Contains(before, "link 1 lo") {
			fmt.Fprintf(os.Stderr, "FAIL: cannot describe the root network namespace: %.200s\n", before)
			code = 1
		}
		if diff := cmp.Diff(before, rootSnapshot()); diff != "" {
			fmt.Fprintf(os.Stderr, "FAIL: the root network namespace changed during the tests (-before +after):\n%s\n", diff)
			code = 1
		}
		if leaks := leakedNames(); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: leftovers of this test run: %v\n", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

// runHelper is the child side of tests that need a separate process.
func runHelper(mode string) int {
	var a helperArgs
	if err := json.Unmarshal([]byte(os.Getenv("NETLAB_TEST_ARGS")), &a); err != nil {
		fmt.Fprintln(os.Stderr, "helper args:", err)
		return 90
	}
	switch mode {
	case "exec-pod":
		err := ExecInPod(a.config(), a.Namespace, a.Pod, a.Argv)
		fmt.Fprintln(os.Stderr, "ExecInPod:", err)
		return 91
	case "exec-node":
		err := ExecInNode(a.config(), a.Node, a.Argv)
		fmt.Fprintln(os.Stderr, "ExecInNode:", err)
		return 91
	case "crash-lab":
		// Build a lab, report readiness, then wait to be killed -9.
		lab, err := New(a.config())
		if err == nil {
			err = lab.Up(context.Background(), a.Nodes)
		}
		for _, p := range a.Pods {
			if err == nil {
				err = lab.EnsurePod(context.Background(), p)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "crash-lab:", err)
			return 92
		}
		fmt.Println("ready")
		select {}
	}
	fmt.Fprintln(os.Stderr, "unknown helper", mode)
	return 93
}

// startHelper runs the test binary in a helper mode.
func startHelper(t *testing.T, mode string, a helperArgs) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "NETLAB_TEST_ARGS="+string(b))
	return cmd
}

// rootSnapshot describes the calling process's network namespace; a
// failure yields a text that fails the comparison in TestMain.
func rootSnapshot() string {
	s, err := snapshotIn("")
	if err != nil {
		return "snapshot failed: " + err.Error()
	}
	return s
}

// leakedNames lists namespaces and /etc/netns entries of this run left
// behind.
func leakedNames() []string {
	var out []string
	for _, dir := range []string{DefaultNetnsDir, DefaultEtcNetnsDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "slt"+runID) || strings.HasPrefix(e.Name(), "svclabtest-"+runID) {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out
}

// requireRoot skips tests that need namespaces when not root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// testLab is one root test's lab inside its own throwaway host namespace.
type testLab struct {
	cfg      Config
	hostName string // the host netns's name under /var/run/netns
}

// newTestConfig makes a throwaway host netns and a unique lab config; the
// cleanup runs Down and deletes the host netns, also when the test fails.
func newTestConfig(t testing.TB) testLab {
	t.Helper()
	requireRoot(t)
	n := labSeq.Add(1)
	hostName := fmt.Sprintf("svclabtest-%s%d-host", runID, n)
	k := newLinuxKernel(Config{NetnsDir: DefaultNetnsDir})
	if err := k.AddNetns(hostName); err != nil {
		t.Fatalf("create throwaway host netns: %v", err)
	}
	t.Cleanup(func() {
		if err := k.DelNetns(hostName); err != nil {
			t.Errorf("delete host netns: %v", err)
		}
	})
	cfg := Config{
		Name:        fmt.Sprintf("slt%s%d", runID, n),
		HostNetns:   filepath.Join(DefaultNetnsDir, hostName),
		EtcNetnsDir: t.TempDir(),
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	t.Cleanup(func() {
		if err := Down(cfg); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return testLab{cfg: cfg, hostName: hostName}
}

// testWriter sends logs to t.Log (dropped after the test ends).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { recover() }() // logging after the test finished
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// snapshotIn describes a namespace ("" = the current one, else a path):
// links, addresses, routes and rules of all tables, every readable
// net.* sysctl and iptables-save, with counters and timestamps removed.
func snapshotIn(path string) (string, error) {
	var h *netlink.Handle
	var err error
	if path == "" {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		var ns netns.NsHandle
		ns, err = netns.GetFromPath(path)
		if err != nil {
			return "", err
		}
		defer ns.Close()
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	}
	if err != nil {
		return "", err
	}
	defer h.Close()
	var lines []string
	links, err := h.LinkList()
	if err != nil {
		return "", err
	}
	for _, l := range links {
		a := l.Attrs()
		lines = append(lines, fmt.Sprintf("link %d %s type=%s flags=%v master=%d mtu=%d alias=%q", a.Index, a.Name, l.Type(), a.Flags, a.MasterIndex, a.MTU, a.Alias))
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return "", err
		}
		for _, ad := range addrs {
			lines = append(lines, fmt.Sprintf("addr %s %s", a.Name, ad.IPNet))
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", err
	}
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route table=%d type=%d proto=%d scope=%d %s", r.Table, r.Type, r.Protocol, r.Scope, r))
	}
	rules, err := h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		return "", err
	}
	for _, r := range rules {
		lines = append(lines, fmt.Sprintf("rule %s", r))
	}
	var sys, ipt []string
	collect := func() error {
		sys = readNetSysctls()
		out, err := exec.Command("iptables-save").Output()
		if err != nil {
			return fmt.Errorf("iptables-save: %w", err)
		}
		ipt = normalizeIptables(string(out))
		return nil
	}
	if path == "" {
		err = collect()
	} else {
		err = inNetnsPath(path, collect)
	}
	if err != nil {
		return "", err
	}
	lines = append(lines, sys...)
	lines = append(lines, ipt...)
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n", nil
}

// volatileSysctl are net.* sysctls that change on their own.
// net/netfilter and net/ipv4/vs appear when another process loads
// conntrack or IPVS modules (machine-wide), which says nothing about this
// namespace.
var volatileSysctl = regexp.MustCompile(`^/proc/sys/net/(netfilter|ipv4/vs)/|nf_conntrack_count|tcp_fastopen_key|stable_secret|flush$`)

func readNetSysctls() []string {
	var out []string
	filepath.WalkDir("/proc/sys/net", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || volatileSysctl.MatchString(p) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil // write-only or unreadable
		}
		out = append(out, fmt.Sprintf("sysctl %s=%s", strings.TrimPrefix(p, "/proc/sys/"), strings.Join(strings.Fields(string(b)), " ")))
		return nil
	})
	return out
}

var iptCounters = regexp.MustCompile(`\[\d+:\d+\]`)

func normalizeIptables(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, "iptables "+iptCounters.ReplaceAllString(line, "[]"))
	}
	return out
}

// errorLines splits a joined error into its lines.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// mustPrefix and mustAddr keep table tests short.
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
