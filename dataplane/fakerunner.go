package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FakeRunner is an in-memory Runner that behaves like the kernel, for tests
// here and in other packages that need a Proxier without root. It keeps the
// filter, nat, mangle, raw and security tables with their built-in chains and
// applies restore payloads with iptables-restore --noflush --counters
// semantics, one table at a time at its COMMIT (as both backends do, so an
// error in nat leaves an already committed filter in place):
//
//   - ":CHAIN - [p:b]" creates a user chain or flushes an existing one; on a
//     built-in chain it only sets the policy;
//   - "-A CHAIN …" appends and "-I CHAIN [N] …" inserts at position N
//     (default 1, at most one past the last rule); the chain must exist, and
//     the target must be a chain of the table or a built-in target allowed in
//     that table (DNAT, SNAT, MASQUERADE, REDIRECT only in nat; DROP not in
//     nat; REJECT only in filter and mangle);
//   - "-D CHAIN …" deletes the first rule whose iptables-save text is the
//     same, "-D CHAIN N" rule N; a missing rule, number or chain fails;
//   - "-Z CHAIN" zeroes the counters of the chain's rules; the chain must
//     exist;
//   - "-X CHAIN" deletes a user chain that exists, is empty and is not the
//     target of any rule;
//   - a table other than the five, a missing COMMIT, a line outside a table,
//     a syntax error, or any other command fails the restore with a
//     *RestoreError naming the line, as iptables-restore does.
//
// Rules are stored and printed as iptables-save prints them (Rule.SaveText),
// with their counters; chains not in a payload keep their rules and counters.
// The zero value is not usable: use NewFakeRunner.
type FakeRunner struct {
	// RestoreHook, when set, is called at the start of every Restore with
	// the payload; a non-nil error fails the Restore with that error before
	// anything is applied. Tests use it to inject failures or to block a sync.
	// Set it before the Restore calls it should see (it is read without
	// locking, so a concurrent assignment is a data race).
	RestoreHook func(payload []byte) error

	mu        sync.Mutex
	backend   IPTablesBackend
	tables    map[Table]*fakeTable
	payloads  [][]byte
	restores  int
	failures  int
	conntrack []*netlink.ConntrackFlow
}

var _ Runner = (*FakeRunner)(nil)

// fakeBuiltinChains are the built-in chains of each table, in the order
// iptables-save prints them.
var fakeBuiltinChains = map[Table][]string{
	TableFilter: {"INPUT", "FORWARD", "OUTPUT"},
	TableNAT:    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	TableMangle: {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":       {"PREROUTING", "OUTPUT"},
	"security":  {"INPUT", "FORWARD", "OUTPUT"},
}

// quoteWords joins argv words into a restore line, double-quoting words
// with blanks or quotes (iptables-restore's own tokenizer rules).
func quoteWords(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"\\") {
			a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

type fakeTable struct {
	chains map[string]*fakeChain
}

type fakeChain struct {
	name     string
	builtin  bool
	policy   string
	counters Counters // policy counters of built-in chains
	rules    []fakeRule
}

type fakeRule struct {
	text     string // as iptables-save prints it, "-A CHAIN …"
	target   string
	counters Counters
}

// NewFakeRunner returns a FakeRunner with empty tables (built-in chains only,
// policy ACCEPT), as in a new network namespace.
func NewFakeRunner() *FakeRunner {
	f := &FakeRunner{tables: map[Table]*fakeTable{}, backend: BackendNFT}
	for t, chains := range fakeBuiltinChains {
		ft := &fakeTable{chains: map[string]*fakeChain{}}
		for _, c := range chains {
			ft.chains[c] = &fakeChain{name: c, builtin: true, policy: "ACCEPT"}
		}
		f.tables[t] = ft
	}
	return f
}

// SetBackend sets what Backend reports (BackendNFT when never set), so that
// tests can make a Proxier shape its transactions for either backend. The
// fake's semantics are the same for both.
func (f *FakeRunner) SetBackend(b IPTablesBackend) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backend = b
}

// Backend returns the backend set with SetBackend.
func (f *FakeRunner) Backend() IPTablesBackend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.backend
}

func (t *fakeTable) clone() *fakeTable {
	c := &fakeTable{chains: make(map[string]*fakeChain, len(t.chains))}
	for name, ch := range t.chains {
		cp := *ch
		cp.rules = slices.Clip(ch.rules) // appends copy; rules themselves are values
		c.chains[name] = &cp
	}
	return c
}

// referenced reports whether any rule of the table targets chain.
func (t *fakeTable) referenced(chain string) bool {
	for _, c := range t.chains {
		for _, r := range c.rules {
			if r.target == chain {
				return true
			}
		}
	}
	return false
}

// builtinTargets maps the built-in targets a kube-proxy ruleset uses to the
// tables where the kernel accepts them (nil = every table).
var builtinTargets = map[string][]Table{
	"ACCEPT": nil, "RETURN": nil, "MARK": nil, "LOG": nil, "CONNMARK": nil,
	"DROP":       {TableFilter, TableMangle, "raw", "security"},
	"REJECT":     {TableFilter, TableMangle},
	"DNAT":       {TableNAT},
	"SNAT":       {TableNAT},
	"MASQUERADE": {TableNAT},
	"REDIRECT":   {TableNAT},
}

// checkTarget returns an error when target cannot be used in table t.
func (t *fakeTable) checkTarget(table Table, target string) error {
	if target == "" || t.chains[target] != nil && !t.chains[target].builtin {
		return nil
	}
	allowed, ok := builtinTargets[target]
	if !ok {
		return fmt.Errorf("Chain '%s' does not exist", target)
	}
	if allowed != nil && !slices.Contains(allowed, table) {
		return fmt.Errorf("RULE_APPEND failed (Invalid argument): target %s not valid in table %s", target, table)
	}
	return nil
}

// parseOneRule parses "-A CHAIN args…" of table with ParseSave.
func parseOneRule(table Table, line string) (*Rule, error) {
	rs, err := ParseSave([]byte("*" + string(table) + "\n" + line + "\nCOMMIT\n"))
	if err != nil {
		return nil, err
	}
	for _, c := range rs.Table(table).Chains {
		if len(c.Rules) > 0 {
			return c.Rules[0], nil
		}
	}
	return nil, fmt.Errorf("no rule in %q", line)
}

// Restore applies payload as `iptables-restore --noflush --counters` would.
func (f *FakeRunner) Restore(ctx context.Context, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.RestoreHook != nil {
		if err := f.RestoreHook(payload); err != nil {
			f.mu.Lock()
			f.restores++
			f.failures++
			f.payloads = append(f.payloads, slices.Clone(payload))
			f.mu.Unlock()
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores++
	f.payloads = append(f.payloads, slices.Clone(payload))
	if err := f.applyLocked(payload); err != nil {
		f.failures++
		return err
	}
	return nil
}

func (f *FakeRunner) applyLocked(payload []byte) error {
	fail := func(line int, format string, a ...any) error {
		msg := fmt.Sprintf("iptables-restore (fake): line %d: %s", line, fmt.Sprintf(format, a...))
		return &RestoreError{Line: line, Output: msg, Err: errors.New("exit status 1")}
	}
	syntax := func(line int, format string, a ...any) error {
		msg := fmt.Sprintf("iptables-restore (fake): line %d: %s", line, fmt.Sprintf(format, a...))
		return &RestoreError{Line: line, Output: msg, Err: errors.New("exit status 2")}
	}
	var (
		tableName Table
		work      *fakeTable
		lineNo    int
	)
	sc := bufio.NewScanner(bytes.NewReader(payload))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*"):
			if work != nil {
				return syntax(lineNo, "COMMIT expected")
			}
			tableName = Table(strings.TrimSpace(line[1:]))
			cur, ok := f.tables[tableName]
			if !ok {
				return fail(lineNo, "table name '%s' invalid", tableName)
			}
			work = cur.clone()
			continue
		case work == nil:
			return syntax(lineNo, "no table specified")
		case line == "COMMIT":
			f.tables[tableName] = work
			work = nil
			continue
		case strings.HasPrefix(line, ":"):
			fields := strings.Fields(line[1:])
			if len(fields) == 0 {
				return syntax(lineNo, "empty chain declaration")
			}
			name := fields[0]
			policy := "-"
			if len(fields) > 1 {
				policy = fields[1]
			}
			c := work.chains[name]
			switch {
			case c != nil && c.builtin:
				if policy != "-" {
					c.policy = policy
				}
			case c != nil:
				c.rules = nil
			default:
				if policy != "-" {
					return fail(lineNo, "chain %s is not built-in, policy must be '-'", name)
				}
				work.chains[name] = &fakeChain{name: name, policy: "-"}
			}
			continue
		}
		var counters *Counters
		if strings.HasPrefix(line, "[") {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return syntax(lineNo, "unterminated counters")
			}
			cnt, err := parseCounters(line[:end+1])
			if err != nil {
				return syntax(lineNo, "%v", err)
			}
			counters = cnt
			line = strings.TrimSpace(line[end+1:])
		}
		toks, err := splitArgs(line)
		if err != nil {
			return syntax(lineNo, "%v", err)
		}
		if len(toks) < 2 {
			return syntax(lineNo, "incomplete command %q", line)
		}
		cmd, chainName, rest := toks[0], toks[1], toks[2:]
		c := work.chains[chainName]
		switch cmd {
		case "-A", "--append", "-I", "--insert":
			pos := -1
			if cmd == "-I" || cmd == "--insert" {
				pos = 0
				if len(rest) > 0 {
					if n, err := strconv.Atoi(rest[0]); err == nil {
						pos, rest = n-1, rest[1:]
					}
				}
			}
			if c == nil {
				return fail(lineNo, "No chain/target/match by that name (chain %s)", chainName)
			}
			r, err := parseRuleArgs(tableName, chainName, rest)
			if err != nil {
				return syntax(lineNo, "%v", err)
			}
			if err := work.checkTarget(tableName, r.Target); err != nil {
				return fail(lineNo, "%v", err)
			}
			fr := fakeRule{text: r.SaveText(), target: r.Target}
			if counters != nil {
				fr.counters = *counters
			}
			switch {
			case pos < 0:
				c.rules = append(c.rules, fr)
			case pos > len(c.rules):
				return fail(lineNo, "Index of insertion too big")
			default:
				c.rules = slices.Insert(slices.Clip(c.rules), pos, fr)
			}
		case "-D", "--delete":
			idx := -1
			if len(rest) == 1 {
				if n, err := strconv.Atoi(rest[0]); err == nil {
					if c == nil {
						return fail(lineNo, "No chain/target/match by that name (chain %s)", chainName)
					}
					if n < 1 || n > len(c.rules) {
						return fail(lineNo, "Index of deletion too big")
					}
					idx = n - 1
				}
			}
			if idx < 0 {
				r, err := parseRuleArgs(tableName, chainName, rest)
				if err != nil {
					return syntax(lineNo, "%v", err)
				}
				if c != nil {
					text := r.SaveText()
					idx = slices.IndexFunc(c.rules, func(fr fakeRule) bool { return fr.text == text })
				}
				if idx < 0 {
					return fail(lineNo, "Bad rule (does a matching rule exist in that chain?)")
				}
			}
			c.rules = slices.Delete(slices.Clone(c.rules), idx, idx+1)
		case "-Z", "--zero":
			if c == nil {
				return fail(lineNo, "No chain/target/match by that name (chain %s)", chainName)
			}
			if len(rest) > 0 {
				return fail(lineNo, "-Z with a rule number is not supported by the fake")
			}
			c.rules = slices.Clone(c.rules)
			for i := range c.rules {
				c.rules[i].counters = Counters{}
			}
		case "-X", "--delete-chain":
			switch {
			case c == nil:
				return fail(lineNo, "No chain/target/match by that name")
			case c.builtin:
				return fail(lineNo, "CHAIN_DEL failed (Operation not permitted): chain %s is built-in", chainName)
			case len(c.rules) > 0:
				return fail(lineNo, "CHAIN_DEL failed (Device or resource busy): chain %s is not empty", chainName)
			case work.referenced(chainName):
				return fail(lineNo, "CHAIN_DEL failed (Device or resource busy): chain %s", chainName)
			}
			delete(work.chains, chainName)
		default:
			return fail(lineNo, "command %s not supported by the fake", cmd)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read payload: %w", err)
	}
	if work != nil {
		return syntax(lineNo+1, "COMMIT expected")
	}
	return nil
}

// SaveCounters prints table like `iptables-save -c -t TABLE`: built-in
// chains in kernel order, then user chains sorted by name, then each chain's
// rules with their counters.
func (f *FakeRunner) SaveCounters(ctx context.Context, table Table) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tables[table]
	if !ok {
		return nil, fmt.Errorf("iptables-save -t %s: table does not exist", table)
	}
	order := slices.Clone(fakeBuiltinChains[table])
	var user []string
	for name, c := range t.chains {
		if !c.builtin {
			user = append(user, name)
		}
	}
	slices.Sort(user)
	order = append(order, user...)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by svclab FakeRunner\n*%s\n", table)
	for _, name := range order {
		c := t.chains[name]
		fmt.Fprintf(&b, ":%s %s [%d:%d]\n", name, c.policy, c.counters.Packets, c.counters.Bytes)
	}
	for _, name := range order {
		for _, r := range t.chains[name].rules {
			fmt.Fprintf(&b, "[%d:%d] %s\n", r.counters.Packets, r.counters.Bytes, r.text)
		}
	}
	b.WriteString("COMMIT\n# Completed\n")
	return b.Bytes(), nil
}

// EnsureChain creates a user chain unless it exists.
func (f *FakeRunner) EnsureChain(ctx context.Context, table Table, chain string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tables[table]
	if !ok {
		return fmt.Errorf("ensure chain %s/%s: table does not exist", table, chain)
	}
	if t.chains[chain] == nil {
		t.chains[chain] = &fakeChain{name: chain, policy: "-"}
	}
	return nil
}

// EnsureRule inserts the rule at the top of chain unless an identical rule
// (same iptables-save text) is already in it. The chain and the target must
// exist, as with iptables -I.
func (f *FakeRunner) EnsureRule(ctx context.Context, table Table, chain string, args ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	line := "-A " + chain + " " + quoteWords(args)
	r, err := parseOneRule(table, line)
	if err != nil {
		return fmt.Errorf("ensure rule %s/%s: %w", table, chain, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tables[table]
	if !ok {
		return fmt.Errorf("ensure rule %s/%s: table does not exist", table, chain)
	}
	c := t.chains[chain]
	if c == nil {
		return fmt.Errorf("ensure rule %s/%s: chain does not exist", table, chain)
	}
	if err := t.checkTarget(table, r.Target); err != nil {
		return fmt.Errorf("ensure rule %s/%s: %w", table, chain, err)
	}
	text := r.SaveText()
	for _, have := range c.rules {
		if have.text == text {
			return nil
		}
	}
	c.rules = slices.Insert(c.rules, 0, fakeRule{text: text, target: r.Target})
	return nil
}

// ChainExists reports whether chain exists in table.
func (f *FakeRunner) ChainExists(ctx context.Context, table Table, chain string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tables[table]
	if !ok {
		return false, fmt.Errorf("check chain %s/%s: table does not exist", table, chain)
	}
	return t.chains[chain] != nil, nil
}

// DeleteConntrack deletes the fake conntrack flows of family that filter
// matches (see AddConntrackFlow).
func (f *FakeRunner) DeleteConntrack(ctx context.Context, family uint8, filter netlink.CustomConntrackFilter) (uint, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var n uint
	f.conntrack = slices.DeleteFunc(f.conntrack, func(fl *netlink.ConntrackFlow) bool {
		if fl.FamilyType == family && filter.MatchConntrackFlow(fl) {
			n++
			return true
		}
		return false
	})
	return n, nil
}

// AddConntrackFlow adds a flow to the fake conntrack table. A zero
// FamilyType is set from the original destination address.
func (f *FakeRunner) AddConntrackFlow(flow *netlink.ConntrackFlow) {
	if flow.FamilyType == 0 {
		flow.FamilyType = unix.AF_INET
		if flow.Forward.DstIP.To4() == nil {
			flow.FamilyType = unix.AF_INET6
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conntrack = append(f.conntrack, flow)
}

// ConntrackFlows returns the fake conntrack table.
func (f *FakeRunner) ConntrackFlows() []*netlink.ConntrackFlow {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.conntrack)
}

// AddCounts adds packets and bytes to the counters of rule num (1-based) of
// chain, as traffic through it would. It fails if there is no such rule.
func (f *FakeRunner) AddCounts(table Table, chain string, num int, packets, bytes uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	if t == nil || t.chains[chain] == nil || num < 1 || num > len(t.chains[chain].rules) {
		return fmt.Errorf("no rule %d in %s/%s", num, table, chain)
	}
	r := &t.chains[chain].rules[num-1]
	r.counters.Packets += packets
	r.counters.Bytes += bytes
	return nil
}

// FlushTable does what `iptables -t TABLE -F; iptables -t TABLE -X` does:
// every chain is flushed and every user chain deleted.
func (f *FakeRunner) FlushTable(table Table) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	if t == nil {
		return
	}
	for name, c := range t.chains {
		if c.builtin {
			c.rules = nil
		} else {
			delete(t.chains, name)
		}
	}
}

// Chains returns the names of the user-defined chains of table, sorted.
func (f *FakeRunner) Chains(table Table) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	if t == nil {
		return nil
	}
	var out []string
	for name, c := range t.chains {
		if !c.builtin {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Restores returns how many Restore calls there were and how many failed.
func (f *FakeRunner) Restores() (total, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores, f.failures
}

// Payloads returns every payload passed to Restore, in order.
func (f *FakeRunner) Payloads() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.payloads)
}
