package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Runner is what a Proxier needs from the kernel of one node: iptables
// transactions and reads, the jump rules from built-in chains, and conntrack
// deletion. NewRunner returns the real one (every call runs inside the node's
// network namespace); FakeRunner is an in-memory one that rejects what the
// kernel would.
type Runner interface {
	// Restore applies payload as one `iptables-restore --noflush --counters`
	// transaction: declared chains are created or flushed and rewritten,
	// undeclared chains are left alone (with their counters), -X deletes.
	// A failure is a *RestoreError carrying the failing payload line.
	Restore(ctx context.Context, payload []byte) error
	// SaveCounters returns `iptables-save -c -t TABLE`.
	SaveCounters(ctx context.Context, table Table) ([]byte, error)
	// EnsureChain creates chain in table unless it exists (`iptables -t T -N C`).
	EnsureChain(ctx context.Context, table Table, chain string) error
	// EnsureRule inserts the rule at the top of chain unless an identical rule
	// exists anywhere in it (`iptables -C … || iptables -I C 1 …`).
	EnsureRule(ctx context.Context, table Table, chain string, args ...string) error
	// ChainExists reports whether chain exists in table (`iptables -t T -S C 1`).
	ChainExists(ctx context.Context, table Table, chain string) (bool, error)
	// DeleteConntrack deletes the conntrack entries of family (unix.AF_INET or
	// AF_INET6) that filter matches (`conntrack -D …`) and returns how many
	// were deleted.
	DeleteConntrack(ctx context.Context, family uint8, filter netlink.CustomConntrackFilter) (uint, error)
	// Backend is the iptables implementation the Runner programs
	// (BackendNFT or BackendLegacy, never BackendAuto). The Proxier shapes
	// its restore transactions for it (see Proxier).
	Backend() IPTablesBackend
}

// RestoreError is the error Restore returns when iptables-restore rejects a
// payload. Line is the 1-based payload line iptables-restore named, 0 when
// its message named none.
type RestoreError struct {
	Line   int
	Output string // iptables-restore's stderr, trimmed
	Err    error  // the process error, e.g. *exec.ExitError
}

// Error reports the failing line (when known) and iptables-restore's message.
func (e *RestoreError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("iptables-restore failed at line %d: %s: %v", e.Line, e.Output, e.Err)
	}
	return fmt.Sprintf("iptables-restore failed: %s: %v", e.Output, e.Err)
}

// Unwrap returns the process error.
func (e *RestoreError) Unwrap() error { return e.Err }

// restoreLineRE matches the line numbers in iptables-restore's messages, in
// both backends: "line 3 failed" (legacy), "line 3: RULE_APPEND failed …",
// "Error occurred at line: 3", "COMMIT expected at line 4" (nf_tables).
var restoreLineRE = regexp.MustCompile(`line:? (\d+)`)

// parseRestoreLine returns the first line number in iptables-restore's stderr,
// or 0 if there is none.
func parseRestoreLine(stderr string) int {
	m := restoreLineRE.FindStringSubmatch(stderr)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	return n
}

// extractLines returns the payload lines around line (1-based), context
// lines either side, each prefixed with its number and the failing one marked
// with "=>". It returns "" for a line outside the payload.
func extractLines(payload []byte, line, context int) string {
	lines := strings.Split(string(payload), "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	from, to := max(1, line-context), min(len(lines), line+context)
	var b strings.Builder
	for i := from; i <= to; i++ {
		mark := "  "
		if i == line {
			mark = "=>"
		}
		fmt.Fprintf(&b, "%s %d: %s\n", mark, i, lines[i-1])
	}
	return b.String()
}

// ErrToolMissing is returned by NewRunner when an iptables binary is not
// installed.
var ErrToolMissing = errors.New("iptables tool not found")

// execRunner is the real Runner: it execs iptables-restore/iptables-save and
// go-iptables' iptables calls on a thread inside the node's network namespace,
// and talks conntrack over a netlink socket opened in that namespace.
type execRunner struct {
	netnsPath    string
	backend      IPTablesBackend
	restorePath  string
	savePath     string
	iptablesPath string

	mu  sync.Mutex
	ipt *iptables.IPTables // built lazily inside the namespace
}

var _ Runner = (*execRunner)(nil)

// NewRunner returns a Runner for the machine's own iptables (BackendAuto):
// NewBackendRunner(netnsPath, BackendAuto).
func NewRunner(netnsPath string) (Runner, error) {
	return NewBackendRunner(netnsPath, BackendAuto)
}

// NewBackendRunner returns a Runner whose every operation runs inside the
// network namespace bound at netnsPath (e.g. /var/run/netns/svclab-node-1)
// with the iptables tools of backend: iptables-nft-restore & co. for
// BackendNFT, iptables-legacy-restore & co. for BackendLegacy, and for
// BackendAuto those of the backend DetectBackend finds (falling back to the
// plain iptables-restore & co. when the backend-specific names are not
// installed). It returns ErrNoNetns for an empty path, ErrUnknownBackend for
// a bad backend and ErrToolMissing (wrapped) when a tool is not installed.
// The namespace is opened per call, so it may be created after
// NewBackendRunner returns.
func NewBackendRunner(netnsPath string, backend IPTablesBackend) (Runner, error) {
	if netnsPath == "" {
		return nil, ErrNoNetns
	}
	resolved, err := resolveBackend(context.Background(), backend)
	if err != nil {
		return nil, err
	}
	tools := resolved.tools()
	if backend == "" || backend == BackendAuto {
		if _, err := exec.LookPath(tools.restore); err != nil {
			tools = BackendAuto.tools()
		}
	}
	r := &execRunner{netnsPath: netnsPath, backend: resolved}
	for _, t := range []struct {
		name string
		dst  *string
	}{{tools.restore, &r.restorePath}, {tools.save, &r.savePath}, {tools.iptables, &r.iptablesPath}} {
		p, err := exec.LookPath(t.name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrToolMissing, t.name, err)
		}
		*t.dst = p
	}
	return r, nil
}

// Backend returns the backend the runner's tools belong to.
func (r *execRunner) Backend() IPTablesBackend { return r.backend }

// Restore runs `iptables-restore --noflush --counters -w 5` with payload on
// stdin inside the namespace. --counters is what kube-proxy passes
// (utiliptables.RestoreCounters); the payload carries no counters, so
// rewritten chains start at zero and undeclared chains keep theirs.
func (r *execRunner) Restore(ctx context.Context, payload []byte) error {
	var stderr bytes.Buffer
	err := inNetns(r.netnsPath, func() error {
		cmd := exec.CommandContext(ctx, r.restorePath, "--noflush", "--counters", "-w", "5")
		cmd.Stdin = bytes.NewReader(payload)
		cmd.Stderr = &stderr
		return cmd.Run()
	})
	if err == nil {
		return nil
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return fmt.Errorf("run iptables-restore in %s: %w", r.netnsPath, err)
	}
	out := strings.TrimSpace(stderr.String())
	return &RestoreError{Line: restoreErrorLine(out, payload), Output: out, Err: err}
}

// missingChainRE matches iptables-nft's message for a jump to a chain that
// does not exist. iptables-nft only notices at the table's COMMIT and reports
// that line.
var missingChainRE = regexp.MustCompile(`Chain '([^']+)' does not exist`)

// restoreErrorLine returns the payload line an iptables-restore failure is
// about: the line its message names, except that for a jump to a missing
// chain (reported by iptables-nft at the COMMIT line) it is the first rule
// at or before that line jumping to the chain.
func restoreErrorLine(stderr string, payload []byte) int {
	line := parseRestoreLine(stderr)
	m := missingChainRE.FindStringSubmatch(stderr)
	if m == nil {
		return line
	}
	jump, gotoT := "-j "+m[1], "-g "+m[1]
	for i, l := range strings.Split(string(payload), "\n") {
		if line > 0 && i+1 > line {
			break
		}
		if strings.HasSuffix(l, jump) || strings.Contains(l, jump+" ") || strings.HasSuffix(l, gotoT) || strings.Contains(l, gotoT+" ") {
			return i + 1
		}
	}
	return line
}

// SaveCounters runs `iptables-save -c -t TABLE` inside the namespace.
func (r *execRunner) SaveCounters(ctx context.Context, table Table) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	err := inNetns(r.netnsPath, func() error {
		cmd := exec.CommandContext(ctx, r.savePath, "-c", "-t", string(table))
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		return cmd.Run()
	})
	if err != nil {
		return nil, fmt.Errorf("iptables-save -c -t %s in %s: %w: %s", table, r.netnsPath, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// withIPTables runs fn inside the namespace with the go-iptables handle,
// building the handle there on first use (iptables.New execs
// `iptables --version`).
func (r *execRunner) withIPTables(ctx context.Context, fn func(*iptables.IPTables) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return inNetns(r.netnsPath, func() error {
		if r.ipt == nil {
			ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Path(r.iptablesPath), iptables.Timeout(5))
			if err != nil {
				return fmt.Errorf("init go-iptables: %w", err)
			}
			r.ipt = ipt
		}
		return fn(r.ipt)
	})
}

// EnsureChain is `iptables -t TABLE -N CHAIN` unless the chain exists.
func (r *execRunner) EnsureChain(ctx context.Context, table Table, chain string) error {
	err := r.withIPTables(ctx, func(ipt *iptables.IPTables) error {
		ok, err := ipt.ChainExists(string(table), chain)
		if err != nil || ok {
			return err
		}
		return ipt.NewChain(string(table), chain)
	})
	if err != nil {
		return fmt.Errorf("ensure chain %s/%s in %s: %w", table, chain, r.netnsPath, err)
	}
	return nil
}

// EnsureRule is `iptables -t TABLE -C CHAIN ARGS… || iptables -t TABLE -I CHAIN 1 ARGS…`.
func (r *execRunner) EnsureRule(ctx context.Context, table Table, chain string, args ...string) error {
	err := r.withIPTables(ctx, func(ipt *iptables.IPTables) error {
		return ipt.InsertUnique(string(table), chain, 1, args...)
	})
	if err != nil {
		return fmt.Errorf("ensure rule %s/%s %q in %s: %w", table, chain, args, r.netnsPath, err)
	}
	return nil
}

// ChainExists is `iptables -t TABLE -S CHAIN 1`; a missing chain is (false, nil).
func (r *execRunner) ChainExists(ctx context.Context, table Table, chain string) (bool, error) {
	var ok bool
	err := r.withIPTables(ctx, func(ipt *iptables.IPTables) error {
		var err error
		ok, err = ipt.ChainExists(string(table), chain)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("check chain %s/%s in %s: %w", table, chain, r.netnsPath, err)
	}
	return ok, nil
}

// DeleteConntrack is `conntrack -D` with filter, over a netlink socket bound to
// the namespace (no thread switching needed).
func (r *execRunner) DeleteConntrack(ctx context.Context, family uint8, filter netlink.CustomConntrackFilter) (uint, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ns, err := netns.GetFromPath(r.netnsPath)
	if err != nil {
		return 0, fmt.Errorf("open network namespace %s: %w", r.netnsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, fmt.Errorf("netlink handle in %s: %w", r.netnsPath, err)
	}
	defer h.Close()
	n, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.InetFamily(family), filter)
	if err != nil {
		return n, fmt.Errorf("delete conntrack entries in %s: %w", r.netnsPath, err)
	}
	return n, nil
}
