package e2e

// The README walkthrough as data: parsing the section between the walkthrough markers into
// command blocks and expected outputs, rewriting a user's command for a test lab, matching
// outputs, and checking that commands only name lab addresses. Nothing here needs root.

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
)

// The markers that delimit the walkthrough in README.md; the lead owns everything outside them.
const (
	wtBegin = "<!-- BEGIN walkthrough -->"
	wtEnd   = "<!-- END walkthrough -->"
	// wtNeedsPrefix starts a directive placed right before a ```sh block:
	// "<!-- walkthrough: needs /lab/v1/graph -->" runs the block only when GET of that path on
	// the lab's API answers something other than 404 (the endpoint exists); otherwise the block
	// is skipped with that reason.
	wtNeedsPrefix = "<!-- walkthrough: needs "
	// wtAnyOrder, placed right before a ```sh block, lets the essential lines of its expected
	// output appear in any order: for listings whose order is not significant, such as
	// KUBE-SERVICES, where kube-proxy's order between Services is Go map order and svclab
	// inserts a new Service's rules at the top.
	wtAnyOrder = "<!-- walkthrough: any order -->"
	// wtEllipsis in an expected-output line matches any text; a line that is only wtEllipsis
	// stands for lines that are left out.
	wtEllipsis = "…"
)

// wtBlock is one ```sh (or ```console) block of the walkthrough and the ```text block that
// follows it, if any.
type wtBlock struct {
	heading string   // the nearest heading above the block
	line    int      // README line number of the opening fence
	cmds    []string // commands as a user types them: continuation lines joined, comments dropped
	expect  []string // lines of the following ```text block; nil when there is none
	needs   string   // API path from a "walkthrough: needs" directive, or ""
	// anyOrder is set by a "walkthrough: any order" directive.
	anyOrder bool
}

// name is a subtest name for the block: its README line and the first words of its heading.
func (b wtBlock) name() string {
	words := strings.Fields(strings.TrimLeft(b.heading, "# "))
	if len(words) > 3 {
		words = words[:3]
	}
	return fmt.Sprintf("L%d-%s", b.line, strings.Join(words, "_"))
}

// readWalkthrough reads the README at path and returns the command blocks between the markers,
// in order. It fails when a marker is missing, a fence is unclosed, or a ```text block does not
// follow a command block.
func readWalkthrough(path string) ([]wtBlock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read walkthrough: %w", err)
	}
	return parseWalkthrough(string(b))
}

// parseWalkthrough is readWalkthrough over the README's text.
func parseWalkthrough(readme string) ([]wtBlock, error) {
	lines := strings.Split(readme, "\n")
	begin, end := -1, -1
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case wtBegin:
			begin = i
		case wtEnd:
			end = i
		}
	}
	if begin < 0 || end < begin {
		return nil, fmt.Errorf("walkthrough markers %q … %q not found in order", wtBegin, wtEnd)
	}
	var (
		blocks  []wtBlock
		heading string
		needs   string
		anyOrd  bool
		// lastCmd is the index in blocks of the last command block while only blank lines or
		// directives have followed it: a ```text block there is its expected output.
		lastCmd = -1
	)
	for i := begin + 1; i < end; i++ {
		l := lines[i]
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "#!"):
			heading, lastCmd = t, -1
			continue
		case t == wtAnyOrder:
			anyOrd = true
			continue
		case strings.HasPrefix(t, wtNeedsPrefix):
			needs = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(t, wtNeedsPrefix), "-->"))
			continue
		case t == "":
			continue
		case !strings.HasPrefix(t, "```"):
			lastCmd, needs, anyOrd = -1, "", false
			continue
		}
		lang := strings.TrimSpace(strings.TrimPrefix(t, "```"))
		start := i
		var body []string
		for i++; i < end && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i >= end {
			return nil, fmt.Errorf("README line %d: ``` block is not closed before the end marker", start+1)
		}
		switch lang {
		case "sh", "console", "bash":
			blocks = append(blocks, wtBlock{heading: heading, line: start + 1, cmds: splitCommands(body), needs: needs, anyOrder: anyOrd})
			lastCmd = len(blocks) - 1
		case "text":
			if lastCmd < 0 {
				return nil, fmt.Errorf("README line %d: a ```text block (expected output) must follow a ```sh block", start+1)
			}
			if blocks[lastCmd].expect != nil {
				return nil, fmt.Errorf("README line %d: two ```text blocks after one ```sh block", start+1)
			}
			blocks[lastCmd].expect = append([]string{}, body...)
		default:
			lastCmd = -1 // YAML, mermaid and other illustrations are not run
		}
		needs, anyOrd = "", false
	}
	return blocks, nil
}

// heredocRE finds a here-document's delimiter in a command line (<<EOF, <<'EOF', <<-"EOF").
var heredocRE = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)

// splitCommands turns a block's lines into commands the way an interactive shell reads them:
// a line ending in a backslash continues on the next, a here-document runs to its delimiter,
// and blank lines and # comments are not commands.
func splitCommands(lines []string) []string {
	var cmds []string
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], " \t")
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		cmd := t
		for strings.HasSuffix(cmd, `\`) && i+1 < len(lines) {
			i++
			cmd = strings.TrimSpace(strings.TrimSuffix(cmd, `\`)) + " " + strings.TrimSpace(lines[i])
		}
		if m := heredocRE.FindStringSubmatch(cmd); m != nil {
			for i+1 < len(lines) {
				i++
				cmd += "\n" + lines[i]
				if strings.TrimSpace(lines[i]) == m[1] {
					break
				}
			}
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// wtRewriter turns a command as the README shows it (for a lab started with
// `sudo svclab up --demo`: lab name svclab, svclab in PATH, a root shell via sudo) into the
// command the test runs against its own lab. The test lab has the default addresses (it runs
// inside its own host namespace), so addresses stay as they are. What changes:
//
//   - "sudo " is dropped: the test already runs as root;
//   - the svclab command becomes the freshly built binary, and `svclab exec` / `svclab down`
//     get --name <lab>, because the test lab has a unique name;
//   - namespace names svclab-node-N, svclab-net and svclab-pod-… get the lab's prefix;
//   - scripts/linear-scan with any N list runs with small N (linearScanNs), since the README's
//     1 1000 5000 is a measurement, not a check.
type wtRewriter struct {
	bin          string // the svclab binary
	lab          string // the lab name
	linearScanNs string // N list for scripts/linear-scan, e.g. "1 50"
}

var (
	wtSudoRE       = regexp.MustCompile(`(^|[|;&(]\s*|\$\(\s*)sudo\s+`)
	wtSvclabNameRE = regexp.MustCompile(`(^|[|;&(]\s*|\$\(\s*)svclab\s+(exec|down)(\s|$)`)
	wtSvclabRE     = regexp.MustCompile(`(^|[|;&(]\s*|\$\(\s*)svclab(\s|$)`)
	wtNetnsRE      = regexp.MustCompile(`\bsvclab-(node-[0-9]+|net\b|pod-)`)
	wtLinearRE     = regexp.MustCompile(`((?:^|\s|/)scripts/linear-scan)((?:\s+[0-9]+)*)(\s|$)`)
)

// rewrite returns cmd adapted to the test lab; see wtRewriter.
func (r wtRewriter) rewrite(cmd string) string {
	cmd = wtSudoRE.ReplaceAllString(cmd, "$1")
	cmd = wtSvclabNameRE.ReplaceAllString(cmd, "${1}"+r.bin+" $2 --name "+r.lab+"$3")
	cmd = wtSvclabRE.ReplaceAllString(cmd, "${1}"+r.bin+"$2")
	cmd = wtNetnsRE.ReplaceAllString(cmd, r.lab+"-$1")
	if r.linearScanNs != "" {
		cmd = wtLinearRE.ReplaceAllString(cmd, "${1} "+r.linearScanNs+"$3")
	}
	return cmd
}

// wtMutatingRE matches commands that change the lab. A block without one may be run again until
// its output matches (the lab converges asynchronously, as a real cluster does); a block with one
// runs exactly once.
var wtMutatingRE = regexp.MustCompile(`-X\s*(POST|PUT|PATCH|DELETE)\b|/lab/v1/apply|\bkubectl\b.*\s(apply|create|delete|replace|patch|label|annotate|edit|scale)\s|linear-scan|\bsvclab\s+(up|down)\b`)

func isMutating(cmd string) bool { return wtMutatingRE.MatchString(cmd) }

// Output normalisation: what differs from run to run, or from machine to machine, is replaced by
// a placeholder in both the expected and the actual output.
var (
	wtSpaceRE   = regexp.MustCompile(`\s+`)
	wtIPv4RE    = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)
	wtSEPRE     = regexp.MustCompile(`\bKUBE-SEP-[A-Z2-7]{16}\b`)
	wtProtoRE   = regexp.MustCompile(`^(\S* )?(0|6|17) --( |$)`)
	wtProtoName = map[string]string{"0": "all", "6": "tcp", "17": "udp"}
	// Addresses that the demo fixes; other addresses in these ranges are allocated at random
	// (cluster IPs) or by scheduling order (pod IPs).
	wtFixedIPs     = map[string]bool{"10.96.0.1": true, "10.96.0.10": true, "10.96.0.100": true}
	wtServiceRange = netip.MustParsePrefix("10.96.0.0/12")
	wtPodRange     = netip.MustParsePrefix("10.244.0.0/16")
)

// normaliseLine collapses whitespace and replaces run-dependent parts of one output line:
// pod IPs become <podIP>, cluster IPs other than the demo's fixed ones become <clusterIP>,
// KUBE-SEP hashes (which hash the pod IP) become KUBE-SEP-<hash>, iptables' numeric protocol
// column (iptables 1.8.9 prints 6, older ones tcp) becomes its name, and the lab's name
// becomes svclab.
func normaliseLine(s, lab string) string {
	s = strings.TrimSpace(wtSpaceRE.ReplaceAllString(s, " "))
	if lab != "" && lab != "svclab" {
		s = strings.ReplaceAll(s, lab, "svclab")
	}
	s = wtIPv4RE.ReplaceAllStringFunc(s, func(ip string) string {
		a, err := netip.ParseAddr(ip)
		switch {
		case err != nil || wtFixedIPs[ip]:
			return ip
		case wtPodRange.Contains(a):
			return "<podIP>"
		case wtServiceRange.Contains(a):
			return "<clusterIP>"
		}
		return ip
	})
	s = wtSEPRE.ReplaceAllString(s, "KUBE-SEP-<hash>")
	if m := wtProtoRE.FindStringSubmatchIndex(s); m != nil {
		s = s[:m[4]] + wtProtoName[s[m[4]:m[5]]] + s[m[5]:]
	}
	return s
}

// expectedRE compiles one expected line (already normalised) into an anchored regexp in which
// each … matches any text, spaces around it included.
func expectedRE(line string) *regexp.Regexp {
	line = strings.ReplaceAll(line, " "+wtEllipsis, wtEllipsis)
	line = strings.ReplaceAll(line, wtEllipsis+" ", wtEllipsis)
	parts := strings.Split(line, wtEllipsis)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// matchExpected checks that every essential line of expect (all but blank lines and lines
// that are only …) matches a line of actual, in order, after both are normalised. It returns
// nil or an error naming the first expected line it could not find.
func matchExpected(expect []string, actual, lab string) error {
	var got []string
	sc := bufio.NewScanner(strings.NewReader(actual))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		got = append(got, normaliseLine(sc.Text(), lab))
	}
	j := 0
	for _, e := range expect {
		n := normaliseLine(e, "")
		if n == "" || n == wtEllipsis {
			continue
		}
		re := expectedRE(n)
		found := false
		for ; j < len(got); j++ {
			if re.MatchString(got[j]) {
				found, j = true, j+1
				break
			}
		}
		if !found {
			return fmt.Errorf("expected line %q (normalised %q) not found in order in the output", e, n)
		}
	}
	return nil
}

// matchExpectedAnyOrder is matchExpected for listings whose order is not significant: every
// essential expected line must match a distinct line of actual, wherever it stands.
func matchExpectedAnyOrder(expect []string, actual, lab string) error {
	var got []string
	sc := bufio.NewScanner(strings.NewReader(actual))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		got = append(got, normaliseLine(sc.Text(), lab))
	}
	used := make([]bool, len(got))
	for _, e := range expect {
		n := normaliseLine(e, "")
		if n == "" || n == wtEllipsis {
			continue
		}
		re := expectedRE(n)
		found := false
		for j, g := range got {
			if !used[j] && re.MatchString(g) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			return fmt.Errorf("expected line %q (normalised %q) not found in the output", e, n)
		}
	}
	return nil
}

// The lab's default ranges: the only addresses the walkthrough's commands may name.
var wtLabPrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),   // the API, the host DNS listener
	netip.MustParsePrefix("172.29.0.0/16"), // underlay: host .1, nodes .2…, LoadBalancer pool .255.0/24
	netip.MustParsePrefix("10.96.0.0/12"),  // cluster IPs
	netip.MustParsePrefix("10.244.0.0/16"), // pods
}

var (
	wtAddrRE  = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b`)
	wtURLRE   = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s'"]+`)
	wtTokenRE = regexp.MustCompile(`'[^']*'|"[^"]*"|\S+`)
	// wtNetTools are commands that reach the network by a name or an address given as argument.
	wtNetTools = map[string]bool{"dig": true, "curl": true, "wget": true, "nc": true, "ping": true,
		"host": true, "nslookup": true, "kubectl": true, "ssh": true, "telnet": true}
)

// wtClusterName reports whether name is a fully qualified name in the cluster's zone, which only
// the lab's DNS answers.
func wtClusterName(name string) bool {
	return strings.HasSuffix(name, ".cluster.local") || strings.HasSuffix(name, ".cluster.local.")
}

func wtLabAddr(s string) bool {
	if p, err := netip.ParsePrefix(s); err == nil {
		for _, lp := range wtLabPrefixes {
			if lp.Bits() <= p.Bits() && lp.Contains(p.Addr()) {
				return true
			}
		}
		return false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	for _, lp := range wtLabPrefixes {
		if lp.Contains(a) {
			return true
		}
	}
	return false
}

// labOnlyProblems lists what in cmd could reach outside the lab: an IPv4 address or CIDR
// outside the lab's ranges, a URL whose host is not a lab address, localhost or a cluster.local
// name, a name given to
// dig (or any name-taking tool) outside cluster.local, a DNS server (@…) outside the lab, and
// kubectl without an explicit lab --server (a user's kubeconfig may point at a real cluster).
func labOnlyProblems(cmd string) []string {
	var probs []string
	for _, a := range wtAddrRE.FindAllString(cmd, -1) {
		if !wtLabAddr(a) {
			probs = append(probs, "address "+a+" is outside the lab")
		}
	}
	for _, u := range wtURLRE.FindAllString(cmd, -1) {
		rest := u[strings.Index(u, "://")+3:]
		host := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			host = rest[:i]
		}
		if h, _, ok := strings.Cut(strings.TrimPrefix(host, "["), "]:"); ok {
			host = h
		} else if i := strings.LastIndex(host, ":"); i >= 0 {
			host = host[:i]
		}
		if host != "localhost" && !wtLabAddr(host) && !wtClusterName(host) {
			probs = append(probs, "URL "+u+" is not a lab address")
		}
	}
	// Walk the simple commands of the line (split at | ; && ||) and look at network tools.
	for _, part := range regexp.MustCompile(`\|\||&&|[|;]`).Split(cmd, -1) {
		toks := wtTokenRE.FindAllString(part, -1)
		for i, t := range toks {
			if !wtNetTools[t] {
				continue
			}
			args := toks[i+1:]
			if t == "kubectl" && !strings.Contains(part, "-s http://127.0.0.1:") && !strings.Contains(part, "--server") {
				probs = append(probs, "kubectl without -s http://127.0.0.1:PORT may talk to a real cluster from a kubeconfig")
			}
			for k, a := range args {
				a = strings.Trim(a, `'"`)
				switch {
				case t == "dig" && strings.HasPrefix(a, "@"):
					if !wtLabAddr(a[1:]) {
						probs = append(probs, "DNS server "+a+" is outside the lab")
					}
				case t == "dig" && k > 0 && (args[k-1] == "-t" || args[k-1] == "-p"):
				case t == "dig" && !strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "+") && strings.Contains(a, "."):
					if !wtClusterName(a) && !wtLabAddr(a) {
						probs = append(probs, "dig name "+a+" is not a cluster.local name")
					}
				}
			}
			break
		}
	}
	return probs
}
