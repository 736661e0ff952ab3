package dataplane

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by every ParseSave error; the message carries the line
// number and text.
var ErrSyntax = errors.New("iptables-save syntax error")

// Ruleset is a parsed iptables-save dump or iptables-restore payload:
// tables → chains → ordered rules.
type Ruleset struct {
	// Tables in input order.
	Tables []*TableRules
}

// TableRules is one table ("*nat" … "COMMIT").
type TableRules struct {
	Name Table
	// Chains in declaration order; chains only appended to (-A without a
	// ":CHAIN" line, e.g. built-in chains in a --noflush payload) follow in
	// first-use order. Chains deleted with -X are not listed.
	Chains []*Chain
	// Deleted lists the chains deleted with -X, in order.
	Deleted []string
	index   map[string]*Chain
}

// Chain is one chain of a table.
type Chain struct {
	Name string
	// Policy is ACCEPT/DROP for built-in chains and "-" for user chains
	// (as in the ":NAME POLICY [p:b]" line); "" when the chain was never
	// declared in the input.
	Policy string
	// Builtin is true for PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING.
	Builtin bool
	// Declared is true when the input had a ":NAME …" line for the chain
	// (in a restore payload: the chain is created or flushed).
	Declared bool
	// Counters are the chain's policy counters, when the input had them.
	Counters *Counters
	Rules    []*Rule
}

// Counters are packet and byte counters ("[pkts:bytes]").
type Counters struct {
	Packets uint64
	Bytes   uint64
}

// AddrMatch is a -s/-d match. A zero AddrMatch (invalid Prefix) matches all.
type AddrMatch struct {
	Prefix netip.Prefix
	Negate bool
}

// Matches reports whether a satisfies the match (true when unset).
func (m AddrMatch) Matches(a netip.Addr) bool {
	if !m.Prefix.IsValid() {
		return true
	}
	return m.Prefix.Contains(a) != m.Negate
}

// Option is one option of a match module or target, e.g. "! --mark 0x4000/0x4000"
// is {Name: "--mark", Negate: true, Values: ["0x4000/0x4000"]}.
type Option struct {
	Name   string
	Negate bool
	Values []string
}

// Match is one "-m MODULE options…" match (or an implicit protocol match such
// as "-p tcp --dport 80" without "-m tcp").
type Match struct {
	Module  string
	Options []Option
}

// PortMatch is --dport/--sport of the tcp/udp/sctp matches; Last == First
// for a single port.
type PortMatch struct {
	First, Last uint16
	Negate      bool
}

// Matches reports whether port is in the range.
func (m PortMatch) Matches(port uint16) bool {
	return (port >= m.First && port <= m.Last) != m.Negate
}

// StatisticMatch is -m statistic.
type StatisticMatch struct {
	Mode        string  // "random" or "nth"
	Probability float64 // for mode random
	Every       int     // for mode nth
	Packet      int
	Negate      bool
}

// RecentMatch is -m recent (session affinity).
type RecentMatch struct {
	Name    string
	Set     bool
	RCheck  bool
	Update  bool
	Remove  bool
	Seconds int
	Reap    bool
	Negate  bool
}

// AddrTypeMatch is -m addrtype.
type AddrTypeMatch struct {
	SrcType, DstType     string
	SrcNegate, DstNegate bool
}

// MarkMatch is -m mark [!] --mark value[/mask].
type MarkMatch struct {
	Value, Mask uint32
	Negate      bool
}

// Matches reports whether fwmark satisfies the match.
func (m MarkMatch) Matches(fwmark uint32) bool {
	return (fwmark&m.Mask == m.Value) != m.Negate
}

// CTStateMatch is -m conntrack [!] --ctstate S1,S2 (or -m state --state).
type CTStateMatch struct {
	States []string
	Negate bool
}

// MarkTarget is -j MARK normalised to the kernel's operation:
// mark = (mark AND NOT Mask) XOR Value ("--set-xmark Value/Mask").
type MarkTarget struct {
	Value, Mask uint32
}

// Apply returns the new fwmark.
func (t MarkTarget) Apply(fwmark uint32) uint32 {
	return (fwmark &^ t.Mask) ^ t.Value
}

// Rule is one rule of a chain.
type Rule struct {
	Table Table
	Chain string
	// Num is the 1-based position in the chain (as iptables -L --line-numbers).
	Num int
	// Line is the 1-based line number in the parsed input.
	Line int
	// Text is the rule as written in the input, without counters,
	// e.g. `-A KUBE-SEP-X -m comment --comment ns1/svc1:p80 -s 10.1.0.3 -j KUBE-MARK-MASQ`.
	Text string
	// Args are the tokens after "-A CHAIN", with quotes removed.
	Args []string
	// Counters are the rule's [packets:bytes], nil when the input had none.
	Counters *Counters

	// Basic matches.
	Source, Destination AddrMatch
	Protocol            string // "" = any
	ProtocolNegate      bool
	InIface, OutIface   string
	InNegate, OutNegate bool

	// Matches are the match modules in order.
	Matches []Match
	// Comment is the -m comment text, "" if none.
	Comment string

	// Decoded module matches, nil when absent.
	DPort     *PortMatch
	SPort     *PortMatch
	Statistic *StatisticMatch
	Recent    *RecentMatch
	AddrType  *AddrTypeMatch
	Mark      *MarkMatch
	CTState   *CTStateMatch

	// Target is the -j/-g target ("" = none: the rule only counts).
	Target string
	// Goto is true for -g.
	Goto bool
	// TargetArgs are the tokens after the target name.
	TargetArgs []string
	// ToDestination is DNAT --to-destination ("" otherwise).
	ToDestination string
	// SetMark is the decoded MARK target, nil otherwise.
	SetMark *MarkTarget
	// RejectWith is REJECT's --reject-with (default icmp-port-unreachable).
	RejectWith string
	// Unknown lists options this parser could not attribute (kept for
	// display; the tracer treats such rules as not understood).
	Unknown []string
}

var builtinChains = map[Table][]string{
	TableFilter: {"INPUT", "FORWARD", "OUTPUT"},
	TableNAT:    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	TableMangle: {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":       {"PREROUTING", "OUTPUT"},
	"security":  {"INPUT", "FORWARD", "OUTPUT"},
}

// IsBuiltinChain reports whether chain is a built-in chain of table.
func IsBuiltinChain(table Table, chain string) bool {
	return slices.Contains(builtinChains[table], chain)
}

// Table returns the named table, or nil.
func (rs *Ruleset) Table(name Table) *TableRules {
	if rs == nil {
		return nil
	}
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the named chain of a table, or nil.
func (rs *Ruleset) Chain(table Table, chain string) *Chain {
	return rs.Table(table).Chain(chain)
}

// Chain returns the named chain, or nil (also for a nil table).
func (t *TableRules) Chain(name string) *Chain {
	if t == nil {
		return nil
	}
	return t.index[name]
}

// ChainNames returns the names of the table's chains in order.
func (t *TableRules) ChainNames() []string {
	if t == nil {
		return nil
	}
	out := make([]string, len(t.Chains))
	for i, c := range t.Chains {
		out[i] = c.Name
	}
	return out
}

// IsJump reports whether the rule's target is a chain of its table (a jump or
// goto to a user-defined chain) rather than a built-in target. rs must be
// the Ruleset the rule came from.
func (r *Rule) IsJump(rs *Ruleset) bool {
	return r.Target != "" && rs.Chain(r.Table, r.Target) != nil
}

// Edge is a jump (or goto) from a rule to a chain of the same table, for
// drawing the chain graph.
type Edge struct {
	Table    Table
	From, To string // chain names
	Rule     *Rule
}

// Edges returns every jump/goto between chains of the table, in rule order
// (chains in table order). Targets that are not chains of the table
// (ACCEPT, DNAT, …) are not edges. It returns nil for a missing table.
func (rs *Ruleset) Edges(table Table) []Edge {
	t := rs.Table(table)
	if t == nil {
		return nil
	}
	var out []Edge
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			if r.Target != "" && t.index[r.Target] != nil {
				out = append(out, Edge{Table: table, From: c.Name, To: r.Target, Rule: r})
			}
		}
	}
	return out
}

// References returns how many rules of the table jump to chain (what
// iptables -L prints as "(N references)").
func (rs *Ruleset) References(table Table, chain string) int {
	n := 0
	for _, e := range rs.Edges(table) {
		if e.To == chain {
			n++
		}
	}
	return n
}

// ChainSet returns the user-defined (non-built-in) chains of every table,
// the shape of Input.Existing: feed ParseSave(iptables-save output) back to
// Render so that stale chains get deleted.
func (rs *Ruleset) ChainSet() map[Table]map[string]bool {
	out := map[Table]map[string]bool{}
	if rs == nil {
		return out
	}
	for _, t := range rs.Tables {
		set := map[string]bool{}
		for _, c := range t.Chains {
			if !c.Builtin {
				set[c.Name] = true
			}
		}
		out[t.Name] = set
	}
	return out
}

func (t *TableRules) chain(name string, create bool) *Chain {
	if c := t.index[name]; c != nil || !create {
		return c
	}
	c := &Chain{Name: name, Builtin: IsBuiltinChain(t.Name, name)}
	t.index[name] = c
	t.Chains = append(t.Chains, c)
	return c
}

// ParseSave parses iptables-save output (with or without -c counters) or an
// iptables-restore payload into tables → chains → ordered rules. It accepts
// "*table", ":CHAIN POLICY [p:b]", "[p:b] -A …", "-A/-I/-D/-N/-X/-F/-P"
// lines, "#" comments and "COMMIT". A table that is not committed, a rule
// outside a table, or an unparsable counter is an error wrapping ErrSyntax.
// An empty input gives an empty Ruleset.
func ParseSave(data []byte) (*Ruleset, error) {
	rs := &Ruleset{}
	var cur *TableRules
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	lineNo := 0
	fail := func(line, msg string, a ...any) error {
		return fmt.Errorf("%w: line %d %q: %s", ErrSyntax, lineNo, line, fmt.Sprintf(msg, a...))
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "*"):
			if cur != nil {
				return nil, fail(line, "table %s not committed", cur.Name)
			}
			name := Table(strings.TrimSpace(line[1:]))
			cur = rs.Table(name)
			if cur == nil {
				cur = &TableRules{Name: name, index: map[string]*Chain{}}
				rs.Tables = append(rs.Tables, cur)
			}
			continue
		case line == "COMMIT":
			if cur == nil {
				return nil, fail(line, "COMMIT outside a table")
			}
			cur = nil
			continue
		}
		if cur == nil {
			return nil, fail(line, "rule outside a table")
		}
		if strings.HasPrefix(line, ":") {
			f := strings.Fields(line[1:])
			if len(f) == 0 {
				return nil, fail(line, "empty chain declaration")
			}
			c := cur.chain(f[0], true)
			c.Declared = true
			c.Policy = "-"
			if len(f) > 1 {
				c.Policy = f[1]
			}
			if len(f) > 2 {
				cnt, err := parseCounters(f[2])
				if err != nil {
					return nil, fail(line, "%v", err)
				}
				c.Counters = cnt
			}
			// A declaration flushes the chain (restore semantics).
			c.Rules = nil
			continue
		}
		var counters *Counters
		if strings.HasPrefix(line, "[") {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fail(line, "unterminated counters")
			}
			cnt, err := parseCounters(line[:end+1])
			if err != nil {
				return nil, fail(line, "%v", err)
			}
			counters = cnt
			line = strings.TrimSpace(line[end+1:])
		}
		toks, err := splitArgs(line)
		if err != nil {
			return nil, fail(line, "%v", err)
		}
		if len(toks) < 2 {
			return nil, fail(line, "incomplete command")
		}
		cmd, chainName, rest := toks[0], toks[1], toks[2:]
		switch cmd {
		case "-A", "--append", "-I", "--insert":
			pos := -1
			if cmd == "-I" || cmd == "--insert" {
				pos = 0
				if len(rest) > 0 {
					if n, err := strconv.Atoi(rest[0]); err == nil {
						pos = n - 1
						rest = rest[1:]
					}
				}
			}
			r, err := parseRuleArgs(cur.Name, chainName, rest)
			if err != nil {
				return nil, fail(line, "%v", err)
			}
			if counters != nil {
				r.Counters = counters
			}
			r.Line = lineNo
			r.Text = "-A " + chainName
			if raw := rawRest(line, len(toks)-len(rest)); raw != "" {
				r.Text += " " + withoutInlineCounters(raw)
			}
			c := cur.chain(chainName, true)
			if pos < 0 || pos >= len(c.Rules) {
				// Appending (every rule of an iptables-save dump) numbers only the new rule, so
				// parsing stays linear in the chain's length.
				r.Num, r.Chain = len(c.Rules)+1, c.Name
				c.Rules = append(c.Rules, r)
			} else {
				c.Rules = slices.Insert(c.Rules, pos, r)
				renumber(c)
			}
		case "-D", "--delete":
			c := cur.chain(chainName, false)
			if c == nil {
				return nil, fail(line, "no chain %s", chainName)
			}
			idx := -1
			if len(rest) == 1 {
				if n, err := strconv.Atoi(rest[0]); err == nil {
					idx = n - 1
				}
			}
			if idx < 0 {
				want := joinArgs(rest)
				for i, r := range c.Rules {
					if joinArgs(r.Args) == want {
						idx = i
						break
					}
				}
			}
			if idx < 0 || idx >= len(c.Rules) {
				return nil, fail(line, "no such rule in %s", chainName)
			}
			c.Rules = slices.Delete(c.Rules, idx, idx+1)
			renumber(c)
		case "-N", "--new-chain":
			c := cur.chain(chainName, true)
			c.Declared = true
			if c.Policy == "" {
				c.Policy = "-"
			}
		case "-X", "--delete-chain":
			if c := cur.index[chainName]; c != nil {
				delete(cur.index, chainName)
				cur.Chains = slices.DeleteFunc(cur.Chains, func(x *Chain) bool { return x == c })
			}
			cur.Deleted = append(cur.Deleted, chainName)
		case "-F", "--flush":
			if c := cur.index[chainName]; c != nil {
				c.Rules = nil
			}
		case "-P", "--policy":
			c := cur.chain(chainName, true)
			if len(rest) > 0 {
				c.Policy = rest[0]
			}
		default:
			return nil, fail(line, "unsupported command %s", cmd)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read iptables data: %w", err)
	}
	if cur != nil {
		return nil, fmt.Errorf("%w: table %s not committed at end of input", ErrSyntax, cur.Name)
	}
	return rs, nil
}

// countersArgRE matches the " -c PACKETS BYTES" that `iptables -S CHAIN -v` prints inside a
// rule: iptables-legacy right after "-A CHAIN", iptables-nft 1.8.9 before the target
// ("… --dport 80 -c 0 0 -j KUBE-MARK-MASQ").
var countersArgRE = regexp.MustCompile(`^ -c \d+ \d+`)

// withoutInlineCounters returns the rule arguments without an inline "-c P B" (outside quotes:
// --comment "-c 1 2" stays), so a rule read with `iptables -S -v` has the same Text as the same
// rule in an iptables-save -c dump, which carries its counters as a [P:B] prefix.
func withoutInlineCounters(text string) string {
	text = " " + text
	inQuote := false
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '\\':
			if inQuote {
				i++ // an escaped character inside quotes
			}
		case '"':
			inQuote = !inQuote
		case ' ':
			if inQuote {
				continue
			}
			m := countersArgRE.FindStringIndex(text[i:])
			if m == nil {
				continue
			}
			if end := i + m[1]; end == len(text) || text[end] == ' ' {
				return strings.TrimPrefix(text[:i]+text[end:], " ")
			}
		}
	}
	return strings.TrimPrefix(text, " ")
}

// rawRest returns line without its first n whitespace-separated words,
// keeping the original quoting of the remainder. The skipped words (command,
// chain, position) never contain quotes.
func rawRest(line string, n int) string {
	rest := strings.TrimSpace(line)
	for range n {
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			return ""
		}
		rest = strings.TrimSpace(rest[i:])
	}
	return rest
}

func renumber(c *Chain) {
	for i, r := range c.Rules {
		r.Num = i + 1
		r.Chain = c.Name
	}
}

func parseCounters(s string) (*Counters, error) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("bad counters %q", s)
	}
	p, b, ok := strings.Cut(s[1:len(s)-1], ":")
	if !ok {
		return nil, fmt.Errorf("bad counters %q", s)
	}
	pk, err1 := strconv.ParseUint(p, 10, 64)
	by, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("bad counters %q", s)
	}
	return &Counters{Packets: pk, Bytes: by}, nil
}

// splitArgs splits a rule line into words the way iptables-restore does:
// whitespace separates words, double quotes group (the quotes are removed)
// and a backslash escapes the next character inside quotes.
func splitArgs(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case inQuote && ch == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (ch == ' ' || ch == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// quoteArg quotes a word for an iptables-save/restore line exactly as
// iptables' xtables_save_string does: words made only of [A-Za-z0-9_-] are
// printed bare, everything else in double quotes with \ " ' escaped.
func quoteArg(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
	}
	if safe {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// joinArgs joins words for display, quoting (only) words with spaces or
// quotes so that splitArgs gives them back.
func joinArgs(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"\\'") {
			parts[i] = quoteArg(a)
		} else {
			parts[i] = a
		}
	}
	return strings.Join(parts, " ")
}

// optionArity lists options that take no value.
var flagOptions = map[string]bool{
	"--set": true, "--rcheck": true, "--update": true, "--remove": true, "--reap": true,
	"--rsource": true, "--rdest": true, "--rttl": true, "--random": true, "--random-fully": true,
	"--persistent": true, "--syn": true, "--limit-iface-in": true, "--limit-iface-out": true,
	"-f": true, "--fragment": true,
}

// parseRuleArgs decodes the tokens after "-A CHAIN".
func parseRuleArgs(table Table, chain string, args []string) (*Rule, error) {
	r := &Rule{Table: table, Chain: chain, Args: args}
	negate := false
	cur := -1 // index into r.Matches of the module receiving options
	for i := 0; i < len(args); i++ {
		tok := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", tok)
			}
			i++
			return args[i], nil
		}
		switch tok {
		case "!":
			negate = true
			continue
		case "-s", "--source", "--src", "-d", "--destination", "--dst":
			v, err := next()
			if err != nil {
				return nil, err
			}
			p, err := parseAddrOrPrefix(v)
			if err != nil {
				return nil, fmt.Errorf("option %s: %w", tok, err)
			}
			m := AddrMatch{Prefix: p, Negate: negate}
			if tok[1] == 's' || tok == "--source" || tok == "--src" {
				r.Source = m
			} else {
				r.Destination = m
			}
		case "-p", "--protocol":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.Protocol = strings.ToLower(v)
			r.ProtocolNegate = negate
		case "-i", "--in-interface":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.InIface, r.InNegate = v, negate
		case "-o", "--out-interface":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.OutIface, r.OutNegate = v, negate
		case "-m", "--match":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.Matches = append(r.Matches, Match{Module: v})
			cur = len(r.Matches) - 1
		case "-j", "--jump", "-g", "--goto":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.Target = v
			r.Goto = tok == "-g" || tok == "--goto"
			r.TargetArgs = append([]string(nil), args[i+1:]...)
			i = len(args)
		case "-c", "--set-counters":
			if i+2 >= len(args) {
				return nil, errors.New("-c needs packets and bytes")
			}
			pk, err1 := strconv.ParseUint(args[i+1], 10, 64)
			by, err2 := strconv.ParseUint(args[i+2], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, errors.New("bad -c counters")
			}
			r.Counters = &Counters{Packets: pk, Bytes: by}
			// Not part of the rule: Args stay what iptables-save prints after "-A CHAIN".
			r.Args = slices.Delete(slices.Clone(r.Args), i, i+3)
			args, i = r.Args, i-1
		default:
			if !strings.HasPrefix(tok, "-") {
				r.Unknown = append(r.Unknown, tok)
				break
			}
			opt := Option{Name: tok, Negate: negate}
			if !flagOptions[tok] {
				for i+1 < len(args) && args[i+1] != "!" && !strings.HasPrefix(args[i+1], "-") {
					i++
					opt.Values = append(opt.Values, args[i])
				}
			}
			if cur < 0 {
				// Implicit protocol match ("-p tcp --dport 80").
				if r.Protocol == "tcp" || r.Protocol == "udp" || r.Protocol == "sctp" {
					r.Matches = append(r.Matches, Match{Module: r.Protocol})
					cur = len(r.Matches) - 1
				} else {
					r.Unknown = append(r.Unknown, tok)
					break
				}
			}
			r.Matches[cur].Options = append(r.Matches[cur].Options, opt)
		}
		negate = false
	}
	if err := r.decode(); err != nil {
		return nil, err
	}
	return r, nil
}

func parseAddrOrPrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			// iptables also accepts dotted masks (10.0.0.0/255.0.0.0).
			a, m, _ := strings.Cut(v, "/")
			addr, err1 := netip.ParseAddr(a)
			mask, err2 := netip.ParseAddr(m)
			if err1 != nil || err2 != nil || !mask.Is4() {
				return netip.Prefix{}, err
			}
			b := mask.As4()
			bits := 0
			for _, x := range b {
				for x&0x80 != 0 {
					bits++
					x <<= 1
				}
			}
			return netip.PrefixFrom(addr, bits).Masked(), nil
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseMarkValue(s string) (value, mask uint32, err error) {
	v, m, hasMask := strings.Cut(s, "/")
	vv, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad mark %q", s)
	}
	mask = math.MaxUint32
	if hasMask {
		mm, err := strconv.ParseUint(m, 0, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("bad mark %q", s)
		}
		mask = uint32(mm)
	}
	return uint32(vv), mask, nil
}

func parsePortRange(s string) (uint16, uint16, error) {
	a, b, isRange := strings.Cut(s, ":")
	first, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("bad port %q", s)
	}
	last := first
	if isRange {
		if last, err = strconv.ParseUint(b, 10, 16); err != nil {
			return 0, 0, fmt.Errorf("bad port %q", s)
		}
	}
	return uint16(first), uint16(last), nil
}

// decode fills the decoded match and target fields from Matches/TargetArgs.
func (r *Rule) decode() error {
	for _, m := range r.Matches {
		for _, o := range m.Options {
			val := ""
			if len(o.Values) > 0 {
				val = o.Values[0]
			}
			switch m.Module {
			case "comment":
				if o.Name == "--comment" {
					r.Comment = strings.Join(o.Values, " ")
				}
			case "tcp", "udp", "sctp", "multiport":
				switch o.Name {
				case "--dport", "--destination-port", "--sport", "--source-port":
					f, l, err := parsePortRange(val)
					if err != nil {
						return err
					}
					pm := &PortMatch{First: f, Last: l, Negate: o.Negate}
					if strings.HasPrefix(o.Name, "--d") {
						r.DPort = pm
					} else {
						r.SPort = pm
					}
				}
			case "statistic":
				if r.Statistic == nil {
					r.Statistic = &StatisticMatch{}
				}
				switch o.Name {
				case "--mode":
					r.Statistic.Mode = val
				case "--probability":
					p, err := strconv.ParseFloat(val, 64)
					if err != nil {
						return fmt.Errorf("bad probability %q", val)
					}
					r.Statistic.Probability = p
					r.Statistic.Negate = o.Negate
				case "--every":
					r.Statistic.Every, _ = strconv.Atoi(val)
					r.Statistic.Negate = o.Negate
				case "--packet":
					r.Statistic.Packet, _ = strconv.Atoi(val)
				}
			case "recent":
				if r.Recent == nil {
					r.Recent = &RecentMatch{Name: "DEFAULT"}
				}
				switch o.Name {
				case "--name":
					r.Recent.Name = val
				case "--set":
					r.Recent.Set, r.Recent.Negate = true, o.Negate
				case "--rcheck":
					r.Recent.RCheck, r.Recent.Negate = true, o.Negate
				case "--update":
					r.Recent.Update, r.Recent.Negate = true, o.Negate
				case "--remove":
					r.Recent.Remove, r.Recent.Negate = true, o.Negate
				case "--seconds":
					r.Recent.Seconds, _ = strconv.Atoi(val)
				case "--reap":
					r.Recent.Reap = true
				}
			case "addrtype":
				if r.AddrType == nil {
					r.AddrType = &AddrTypeMatch{}
				}
				switch o.Name {
				case "--src-type":
					r.AddrType.SrcType, r.AddrType.SrcNegate = val, o.Negate
				case "--dst-type":
					r.AddrType.DstType, r.AddrType.DstNegate = val, o.Negate
				}
			case "mark":
				if o.Name == "--mark" {
					v, mk, err := parseMarkValue(val)
					if err != nil {
						return err
					}
					r.Mark = &MarkMatch{Value: v, Mask: mk, Negate: o.Negate}
				}
			case "conntrack", "state":
				if o.Name == "--ctstate" || o.Name == "--state" {
					r.CTState = &CTStateMatch{States: strings.Split(val, ","), Negate: o.Negate}
				}
			}
		}
	}
	switch r.Target {
	case "DNAT":
		for i := 0; i+1 < len(r.TargetArgs); i++ {
			if r.TargetArgs[i] == "--to-destination" || r.TargetArgs[i] == "--to" {
				r.ToDestination = r.TargetArgs[i+1]
			}
		}
	case "MARK":
		for i := 0; i+1 < len(r.TargetArgs); i++ {
			v, mk, err := parseMarkValue(r.TargetArgs[i+1])
			switch r.TargetArgs[i] {
			case "--set-xmark":
			case "--set-mark":
				// mark = (mark & ~mask) | value: with value ⊆ mask this is the
				// xmark form value/mask.
			case "--or-mark":
				mk = v
			case "--xor-mark":
				mk = 0
			case "--and-mark":
				mk, v = ^v, 0
			default:
				continue
			}
			if err != nil {
				return err
			}
			r.SetMark = &MarkTarget{Value: v, Mask: mk}
			i++
		}
	case "REJECT":
		r.RejectWith = "icmp-port-unreachable"
		for i := 0; i+1 < len(r.TargetArgs); i++ {
			if r.TargetArgs[i] == "--reject-with" {
				r.RejectWith = r.TargetArgs[i+1]
			}
		}
	}
	return nil
}

// ctStateOrder is the order in which iptables prints conntrack states.
var ctStateOrder = []string{"INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT"}

// SaveText returns the rule as iptables-save prints it after the kernel has
// stored it: basic matches first (-s, -d, -i, -o, -p), addresses with their
// prefix length, then the match modules in order with their options in
// iptables' order, then the target with normalised options (MARK as
// --set-xmark, REJECT with its default --reject-with, probabilities as the
// kernel's 31-bit fraction). Counters are not included. Rules that use
// options this parser does not know are printed with those options as given.
func (r *Rule) SaveText() string {
	w := []string{"-A", r.Chain}
	neg := func(b bool) {
		if b {
			w = append(w, "!")
		}
	}
	if r.Source.Prefix.IsValid() {
		neg(r.Source.Negate)
		w = append(w, "-s", r.Source.Prefix.String())
	}
	if r.Destination.Prefix.IsValid() {
		neg(r.Destination.Negate)
		w = append(w, "-d", r.Destination.Prefix.String())
	}
	if r.InIface != "" {
		neg(r.InNegate)
		w = append(w, "-i", r.InIface)
	}
	if r.OutIface != "" {
		neg(r.OutNegate)
		w = append(w, "-o", r.OutIface)
	}
	if r.Protocol != "" {
		neg(r.ProtocolNegate)
		w = append(w, "-p", r.Protocol)
	}
	for _, m := range r.Matches {
		w = append(w, "-m", m.Module)
		w = append(w, saveMatchOptions(m)...)
	}
	if r.Target != "" {
		if r.Goto {
			w = append(w, "-g", r.Target)
		} else {
			w = append(w, "-j", r.Target)
		}
		w = append(w, r.saveTargetOptions()...)
	}
	return strings.Join(w, " ")
}

func optWords(o Option, values ...string) []string {
	var w []string
	if o.Negate {
		w = append(w, "!")
	}
	w = append(w, o.Name)
	return append(w, values...)
}

func saveMatchOptions(m Match) []string {
	var w []string
	find := func(names ...string) *Option {
		for i := range m.Options {
			if slices.Contains(names, m.Options[i].Name) {
				return &m.Options[i]
			}
		}
		return nil
	}
	switch m.Module {
	case "comment":
		if o := find("--comment"); o != nil {
			w = append(w, "--comment", quoteArg(strings.Join(o.Values, " ")))
		}
		return w
	case "tcp", "udp", "sctp":
		if o := find("--sport", "--source-port"); o != nil {
			o2 := *o
			o2.Name = "--sport"
			w = append(w, optWords(o2, o.Values...)...)
		}
		if o := find("--dport", "--destination-port"); o != nil {
			o2 := *o
			o2.Name = "--dport"
			w = append(w, optWords(o2, o.Values...)...)
		}
		for _, o := range m.Options {
			if !slices.Contains([]string{"--sport", "--source-port", "--dport", "--destination-port"}, o.Name) {
				w = append(w, optWords(o, o.Values...)...)
			}
		}
		return w
	case "statistic":
		mode := find("--mode")
		if mode != nil {
			w = append(w, "--mode", strings.Join(mode.Values, " "))
		}
		if o := find("--probability"); o != nil && len(o.Values) > 0 {
			p, err := strconv.ParseFloat(o.Values[0], 64)
			if err == nil {
				// The kernel keeps lround(p * 2^31) and iptables prints it back
				// with %.11f.
				k := math.Round(p * 0x80000000)
				w = append(w, optWords(*o, strconv.FormatFloat(k/0x80000000, 'f', 11, 64))...)
			} else {
				w = append(w, optWords(*o, o.Values...)...)
			}
		}
		if o := find("--every"); o != nil {
			w = append(w, optWords(*o, o.Values...)...)
			p := "0"
			if q := find("--packet"); q != nil && len(q.Values) > 0 {
				p = q.Values[0]
			}
			w = append(w, "--packet", p)
		}
		return w
	case "recent":
		for _, n := range []string{"--set", "--rcheck", "--update", "--remove"} {
			if o := find(n); o != nil {
				w = append(w, optWords(*o)...)
			}
		}
		if o := find("--seconds"); o != nil {
			w = append(w, "--seconds", strings.Join(o.Values, " "))
		}
		if o := find("--hitcount"); o != nil {
			w = append(w, "--hitcount", strings.Join(o.Values, " "))
		}
		if find("--rttl") != nil {
			w = append(w, "--rttl")
		}
		if find("--reap") != nil {
			w = append(w, "--reap")
		}
		name := "DEFAULT"
		if o := find("--name"); o != nil && len(o.Values) > 0 {
			name = o.Values[0]
		}
		w = append(w, "--name", name)
		mask := "255.255.255.255"
		if o := find("--mask"); o != nil && len(o.Values) > 0 {
			mask = o.Values[0]
		}
		w = append(w, "--mask", mask)
		if find("--rdest") != nil {
			w = append(w, "--rdest")
		} else {
			w = append(w, "--rsource")
		}
		return w
	case "addrtype":
		if o := find("--src-type"); o != nil {
			w = append(w, optWords(*o, o.Values...)...)
		}
		if o := find("--dst-type"); o != nil {
			w = append(w, optWords(*o, o.Values...)...)
		}
		for _, o := range m.Options {
			if o.Name != "--src-type" && o.Name != "--dst-type" {
				w = append(w, optWords(o, o.Values...)...)
			}
		}
		return w
	case "mark":
		if o := find("--mark"); o != nil && len(o.Values) > 0 {
			v, mk, err := parseMarkValue(o.Values[0])
			if err == nil {
				s := fmt.Sprintf("%#x", v)
				if mk != math.MaxUint32 {
					s += fmt.Sprintf("/%#x", mk)
				}
				return optWords(*o, s)
			}
		}
	case "conntrack", "state":
		if o := find("--ctstate", "--state"); o != nil && len(o.Values) > 0 {
			have := strings.Split(o.Values[0], ",")
			var states []string
			for _, s := range ctStateOrder {
				if slices.Contains(have, s) {
					states = append(states, s)
				}
			}
			return optWords(*o, strings.Join(states, ","))
		}
	}
	for _, o := range m.Options {
		w = append(w, optWords(o, o.Values...)...)
	}
	return w
}

func (r *Rule) saveTargetOptions() []string {
	switch r.Target {
	case "MARK":
		if r.SetMark != nil {
			return []string{"--set-xmark", fmt.Sprintf("%#x/%#x", r.SetMark.Value, r.SetMark.Mask)}
		}
	case "REJECT":
		return []string{"--reject-with", r.RejectWith}
	}
	out := make([]string, len(r.TargetArgs))
	for i, a := range r.TargetArgs {
		if strings.ContainsAny(a, " \t\"'\\") {
			out[i] = quoteArg(a)
		} else {
			out[i] = a
		}
	}
	return out
}
