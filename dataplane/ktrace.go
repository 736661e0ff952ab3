package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-iptables/iptables"
)

// ErrKernelTraceUnsupported is returned by StartKernelTrace when the kernel's
// packet trace cannot be read: xtables-monitor is not installed or iptables
// is the legacy (non-nf_tables) variant, whose TRACE goes to the kernel log.
var ErrKernelTraceUnsupported = errors.New("kernel packet trace needs iptables-nft and xtables-monitor")

// TraceMatch selects the packets the kernel traces: what the TRACE rules in
// the raw table match.
type TraceMatch struct {
	// Proto is "tcp", "udp" or "sctp" (required).
	Proto string
	// Dst is the destination the probe is sent to, before any DNAT
	// (required): a cluster IP, a node IP, a load-balancer IP, …
	Dst netip.Addr
	// DstPort is the destination port; 0 matches every port.
	DstPort uint16
	// Src restricts the trace to packets from this source; the zero Addr
	// matches every source.
	Src netip.Addr
}

// ruleArgs returns the iptables match arguments for m, before the comment.
func (m TraceMatch) ruleArgs() []string {
	var args []string
	if m.Src.IsValid() {
		args = append(args, "-s", m.Src.String())
	}
	args = append(args, "-d", m.Dst.String(), "-p", m.Proto)
	if m.DstPort != 0 {
		args = append(args, "-m", m.Proto, "--dport", strconv.Itoa(int(m.DstPort)))
	}
	return args
}

func (m TraceMatch) validate() error {
	switch m.Proto {
	case "tcp", "udp", "sctp":
	default:
		return fmt.Errorf("trace match: protocol %q is not tcp, udp or sctp", m.Proto)
	}
	if !m.Dst.Is4() {
		return fmt.Errorf("trace match: destination %v is not an IPv4 address", m.Dst)
	}
	if m.Src.IsValid() && !m.Src.Is4() {
		return fmt.Errorf("trace match: source %v is not an IPv4 address", m.Src)
	}
	return nil
}

// Kinds of KernelHit, as xtables-monitor prints them.
const (
	KernelHitRule   = "rule"   // the packet matched a rule
	KernelHitReturn = "return" // the packet fell off the end of a chain (or hit RETURN)
	KernelHitPolicy = "policy" // a built-in chain's policy decided
)

// KernelHit is one event of the kernel's trace of a packet: a rule it
// matched, the end of a chain it returned from, or the policy of a
// built-in chain.
type KernelHit struct {
	Table Table
	Chain string
	// Kind is KernelHitRule, KernelHitReturn or KernelHitPolicy.
	Kind string
	// Handle is the nf_tables rule handle (Kind rule only).
	Handle uint64
	// Verdict is what the kernel decided at this point: CONTINUE (a rule
	// without a terminal target, e.g. MARK), JUMP, GOTO, ACCEPT (also the
	// end of a nat DNAT/MASQUERADE rule), DROP (also REJECT), RETURN, …
	Verdict string
	// JumpTarget is the chain of a JUMP or GOTO verdict.
	JumpTarget string
	// Text is the rule as iptables-save prints it ("-A CHAIN …"), "" for
	// return and policy events.
	Text string
	// Num is the rule's 1-based position in its chain, found by matching
	// Text against `iptables -t TABLE -S CHAIN` right after the trace; 0
	// when unknown (the chain changed in between, or not a rule event).
	Num int
	// Rule is Text parsed (with Num set), nil for return and policy events
	// or when Text does not parse.
	Rule *Rule
}

// KernelPacket is one traced packet of the probe: xtables-monitor's trace
// id, how the packet looked each time it entered a hook, and the events in
// order. The first packet of a connection is the one that goes through the
// nat table.
type KernelPacket struct {
	// ID is the kernel's trace id (hex, as printed).
	ID string
	// Headers are the monitor's PACKET lines without the "PACKET: 2 ID "
	// prefix, e.g. "IN=eth0 OUT= SRC=… DST=… … DPORT=80 SYN", one per hook
	// the packet entered; a DNAT shows as a changed DST in later headers.
	Headers []string
	// Src, Dst, SrcPort, DstPort are from the first header.
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Hits             []KernelHit
}

// DNAT returns the destination of the first DNAT rule the packet hit, and
// false when it hit none (or the rule's destination does not parse).
func (p *KernelPacket) DNAT() (netip.AddrPort, bool) {
	for _, h := range p.Hits {
		if h.Rule == nil || h.Rule.Target != "DNAT" {
			continue
		}
		if ap, err := netip.ParseAddrPort(h.Rule.ToDestination); err == nil {
			return ap, true
		}
		if a, err := netip.ParseAddr(h.Rule.ToDestination); err == nil {
			return netip.AddrPortFrom(a, p.DstPort), true
		}
	}
	return netip.AddrPort{}, false
}

// Verdict returns the packet's fate as far as the trace shows it: "DROP"
// or "REJECT" when a hit dropped it (a REJECT rule shows as DROP in
// nf_tables), "ACCEPT" otherwise.
func (p *KernelPacket) Verdict() Verdict {
	for _, h := range p.Hits {
		if h.Verdict != "DROP" {
			continue
		}
		if h.Rule != nil && h.Rule.Target == "REJECT" {
			return VerdictReject
		}
		return VerdictDrop
	}
	return VerdictAccept
}

// KernelTraceResult is what the kernel reported for the probe's packets.
type KernelTraceResult struct {
	// Packets are the probe's packets in order of first appearance; the
	// first is the connection's first packet. Empty when the probe never
	// reached the namespace (e.g. it entered the cluster on another node).
	Packets []KernelPacket
	// Lines are xtables-monitor's lines for those packets, as printed.
	Lines []string
}

// First returns the first traced packet, nil when none was traced.
func (r *KernelTraceResult) First() *KernelPacket {
	if r == nil || len(r.Packets) == 0 {
		return nil
	}
	return &r.Packets[0]
}

// KernelTracer is a kernel packet trace in progress in one network
// namespace (see StartKernelTrace). Stop must be called exactly once.
type KernelTracer struct {
	netnsPath   string
	match       TraceMatch
	comment     string // on the probe TRACE rules
	markerRule  string // comment on the marker TRACE rule
	markerPort  uint16
	probeSpec   []string
	markerSpec  []string
	cancel      context.CancelFunc
	cmd         *exec.Cmd
	readerDone  chan struct{}
	readerErr   error
	stderr      lockedBuffer
	mu          sync.Mutex
	lines       []string
	changed     chan struct{} // closed and replaced when lines grows
	stopped     bool
	iptablesBin string
}

// traceTables are the tables whose rules KernelHit.Num is looked up in.
var traceTables = map[Table]bool{TableNAT: true, TableFilter: true, TableMangle: true}

// KernelTrace records the kernel's own trace of the packets probe sends,
// inside the network namespace at netnsPath (a node): it inserts iptables
// TRACE rules matching m at the top of raw PREROUTING and raw OUTPUT
// (`iptables -t raw -I PREROUTING 1 … -j TRACE`), starts `xtables-monitor
// --trace` in the namespace, runs probe, collects the monitor's lines for
// the probe's packets, stops the monitor and deletes the TRACE rules again
// (also when probe or anything else fails). Hits are mapped back to the
// rules' iptables-save text and position.
//
// When probe fails, the trace is still returned, with probe's error wrapped
// ("probe: …"): a rejected or dropped probe is exactly what one wants to see.
// Any other failure returns a nil result. It needs root, iptables-nft and
// xtables-monitor (ErrKernelTraceUnsupported otherwise) and an up loopback
// interface in the namespace (the marker packets that fence the trace are
// sent to 127.0.0.1 there).
func KernelTrace(ctx context.Context, netnsPath string, m TraceMatch, probe func(ctx context.Context) error) (*KernelTraceResult, error) {
	kt, err := StartKernelTrace(ctx, netnsPath, m)
	if err != nil {
		return nil, err
	}
	probeErr := probe(ctx)
	res, err := kt.Stop(ctx)
	if err != nil {
		return nil, errors.Join(err, probeErr)
	}
	if probeErr != nil {
		return res, fmt.Errorf("probe: %w", probeErr)
	}
	return res, nil
}

// StartKernelTrace starts a kernel trace in the namespace at netnsPath and
// returns once the monitor is known to receive trace events (a marker
// packet it was sent has come back as a trace line). Send the probe, then
// call Stop. Several tracers (in several namespaces) may run at once, e.g.
// when it is not known on which node a probe enters the cluster. On error
// nothing is left behind.
func StartKernelTrace(ctx context.Context, netnsPath string, m TraceMatch) (_ *KernelTracer, err error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	if netnsPath == "" {
		return nil, ErrNoNetns
	}
	monitor, err := exec.LookPath("xtables-monitor")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKernelTraceUnsupported, err)
	}
	iptBin, err := exec.LookPath("iptables")
	if err != nil {
		return nil, fmt.Errorf("%w: iptables: %v", ErrToolMissing, err)
	}
	if out, err := exec.CommandContext(ctx, iptBin, "-V").Output(); err != nil || !bytes.Contains(out, []byte("nf_tables")) {
		return nil, fmt.Errorf("%w: `iptables -V` says %q", ErrKernelTraceUnsupported, strings.TrimSpace(string(out)))
	}
	id, err := randomHex(4)
	if err != nil {
		return nil, err
	}
	port, err := rand.Int(rand.Reader, big.NewInt(20000))
	if err != nil {
		return nil, fmt.Errorf("pick marker port: %w", err)
	}
	kt := &KernelTracer{
		netnsPath:   netnsPath,
		match:       m,
		comment:     "svclab-ktrace-" + id + " probe",
		markerRule:  "svclab-ktrace-" + id + " marker",
		markerPort:  uint16(40000 + port.Int64()),
		changed:     make(chan struct{}),
		readerDone:  make(chan struct{}),
		iptablesBin: iptBin,
	}
	kt.probeSpec = append(m.ruleArgs(), "-m", "comment", "--comment", kt.comment, "-j", "TRACE")
	kt.markerSpec = []string{"-d", "127.0.0.1", "-p", "udp", "-m", "udp", "--dport", strconv.Itoa(int(kt.markerPort)),
		"-m", "comment", "--comment", kt.markerRule, "-j", "TRACE"}

	// The monitor lives until Stop, or until ctx is done.
	monCtx, cancel := context.WithCancel(ctx)
	kt.cancel = cancel
	defer func() {
		if err != nil {
			kt.cleanup()
		}
	}()

	var stdout io.ReadCloser
	err = inNetns(netnsPath, func() error {
		ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(5))
		if err != nil {
			return fmt.Errorf("init go-iptables: %w", err)
		}
		// iptables -t raw -I PREROUTING 1 … -j TRACE, and the same in OUTPUT.
		for _, c := range []string{"PREROUTING", "OUTPUT"} {
			if err := ipt.Insert("raw", c, 1, kt.probeSpec...); err != nil {
				return fmt.Errorf("insert TRACE rule in raw %s: %w", c, err)
			}
		}
		if err := ipt.Insert("raw", "OUTPUT", 1, kt.markerSpec...); err != nil {
			return fmt.Errorf("insert marker TRACE rule in raw OUTPUT: %w", err)
		}
		// Started from this thread, so the monitor runs in the namespace.
		cmd := exec.CommandContext(monCtx, monitor, "--trace")
		cmd.Stderr = &kt.stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("xtables-monitor stdout: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start xtables-monitor: %w", err)
		}
		kt.cmd = cmd
		stdout = out
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start kernel trace in %s: %w", netnsPath, err)
	}
	go kt.read(stdout)

	// Readiness: the monitor subscribes to trace events some time after it
	// starts. Send marker packets until one is seen.
	if err := kt.fence(ctx, 5*time.Second); err != nil {
		return nil, fmt.Errorf("start kernel trace in %s: xtables-monitor did not report the marker packet: %w", netnsPath, err)
	}
	return kt, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// read collects the monitor's output lines until it exits.
func (kt *KernelTracer) read(r io.Reader) {
	defer close(kt.readerDone)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		kt.mu.Lock()
		kt.lines = append(kt.lines, sc.Text())
		close(kt.changed)
		kt.changed = make(chan struct{})
		kt.mu.Unlock()
	}
	kt.readerErr = sc.Err()
}

// fence sends marker packets (UDP to 127.0.0.1:markerPort inside the
// namespace, matched by the marker TRACE rule) until the monitor prints one
// of them. Netlink delivers trace events in order, so once the marker shows
// up every event emitted before it has been printed.
func (kt *KernelTracer) fence(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	sent := map[uint16]bool{}
	seenFrom := 0
	for {
		sport, err := kt.sendMarker()
		if err != nil {
			return err
		}
		sent[sport] = true
		// Wait a little for this marker, then send another: the first
		// ones may predate the monitor's subscription.
		retry := time.Now().Add(100 * time.Millisecond)
		for {
			kt.mu.Lock()
			lines, changed := kt.lines, kt.changed
			kt.mu.Unlock()
			for _, l := range lines[seenFrom:] {
				if p, ok := parsePacketLine(l); ok && kt.isMarker(p) && sent[p.sport] {
					return nil
				}
			}
			seenFrom = len(lines)
			now := time.Now()
			if now.After(deadline) {
				return fmt.Errorf("no marker trace within %s (is lo up in the namespace?): %s", timeout, strings.TrimSpace(kt.stderrText()))
			}
			wait := time.Until(retry)
			if wait <= 0 {
				break
			}
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-kt.readerDone:
				timer.Stop()
				return fmt.Errorf("xtables-monitor exited: %s", strings.TrimSpace(kt.stderrText()))
			case <-changed:
			case <-timer.C:
			}
			timer.Stop()
		}
	}
}

func (kt *KernelTracer) stderrText() string { return kt.stderr.String() }

// lockedBuffer is a bytes.Buffer safe for the exec package's copying
// goroutine and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sendMarker sends one marker datagram from inside the namespace and returns
// its source port.
func (kt *KernelTracer) sendMarker() (uint16, error) {
	var sport uint16
	err := inNetns(kt.netnsPath, func() error {
		// The socket is created on this thread, i.e. in the namespace.
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(kt.markerPort)})
		if err != nil {
			return fmt.Errorf("marker socket: %w", err)
		}
		defer c.Close()
		sport = uint16(c.LocalAddr().(*net.UDPAddr).Port)
		if _, err := c.Write([]byte("svclab ktrace marker")); err != nil {
			return fmt.Errorf("send marker: %w", err)
		}
		return nil
	})
	return sport, err
}

// Stop fences the trace (a last marker packet), stops the monitor, deletes
// the TRACE rules and returns the probe's packets with their hits mapped to
// rule positions. The rules are deleted and the monitor is stopped also
// when Stop returns an error.
func (kt *KernelTracer) Stop(ctx context.Context) (*KernelTraceResult, error) {
	kt.mu.Lock()
	if kt.stopped {
		kt.mu.Unlock()
		return nil, errors.New("kernel trace already stopped")
	}
	kt.stopped = true
	kt.mu.Unlock()

	fenceErr := kt.fence(ctx, 3*time.Second)
	cleanupErr := kt.cleanup()
	kt.mu.Lock()
	lines := kt.lines
	kt.mu.Unlock()
	if fenceErr != nil {
		return nil, errors.Join(fmt.Errorf("finish kernel trace in %s: %w", kt.netnsPath, fenceErr), cleanupErr)
	}
	if cleanupErr != nil {
		return nil, cleanupErr
	}
	res := parseKernelTrace(lines, kt.isOwnLine, kt.isMarker)
	if err := kt.number(ctx, res); err != nil {
		return res, fmt.Errorf("map trace to rules in %s: %w", kt.netnsPath, err)
	}
	return res, nil
}

// isOwnLine reports whether a TRACE line comes from this tracer's own TRACE
// rules (they are not part of the packet's path worth showing).
func (kt *KernelTracer) isOwnLine(text string) bool {
	return strings.Contains(text, kt.comment) || strings.Contains(text, kt.markerRule)
}

// isMarker reports whether a packet is one of this tracer's markers.
func (kt *KernelTracer) isMarker(p packetLine) bool {
	return p.dst == netip.AddrFrom4([4]byte{127, 0, 0, 1}) && p.dport == kt.markerPort
}

// cleanup stops the monitor and deletes the TRACE rules; it is idempotent.
func (kt *KernelTracer) cleanup() error {
	var errs []error
	if kt.cmd != nil && kt.cmd.Process != nil {
		kt.cancel() // kills the monitor (CommandContext)
		<-kt.readerDone
		_ = kt.cmd.Wait() // "signal: killed" is the expected outcome
		kt.cmd = nil
	}
	kt.cancel()
	err := inNetns(kt.netnsPath, func() error {
		ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(5))
		if err != nil {
			return fmt.Errorf("init go-iptables: %w", err)
		}
		var errs []error
		// iptables -t raw -D PREROUTING … -j TRACE (missing rules are fine).
		for _, c := range []string{"PREROUTING", "OUTPUT"} {
			if err := ipt.DeleteIfExists("raw", c, kt.probeSpec...); err != nil {
				errs = append(errs, fmt.Errorf("delete TRACE rule in raw %s: %w", c, err))
			}
		}
		if err := ipt.DeleteIfExists("raw", "OUTPUT", kt.markerSpec...); err != nil {
			errs = append(errs, fmt.Errorf("delete marker TRACE rule: %w", err))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("clean up kernel trace in %s: %w", kt.netnsPath, err))
	}
	return errors.Join(errs...)
}

// number fills Num and Rule of the rule hits from `iptables -t T -S CHAIN`
// of every chain the packets went through.
func (kt *KernelTracer) number(ctx context.Context, res *KernelTraceResult) error {
	type tc struct {
		t Table
		c string
	}
	chains := map[tc]*Chain{}
	for _, p := range res.Packets {
		for _, h := range p.Hits {
			if h.Kind == KernelHitRule && traceTables[h.Table] {
				chains[tc{h.Table, h.Chain}] = nil
			}
		}
	}
	if len(chains) == 0 {
		return nil
	}
	err := inNetns(kt.netnsPath, func() error {
		for k := range chains {
			// iptables -t TABLE -S CHAIN
			out, err := exec.CommandContext(ctx, kt.iptablesBin, "-w", "5", "-t", string(k.t), "-S", k.c).Output()
			if err != nil {
				continue // the chain is gone (a resync); leave Num 0
			}
			rs, err := ParseSave([]byte("*" + string(k.t) + "\n" + string(out) + "COMMIT\n"))
			if err != nil {
				return fmt.Errorf("parse iptables -t %s -S %s: %w", k.t, k.c, err)
			}
			chains[k] = rs.Chain(k.t, k.c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range res.Packets {
		for j := range res.Packets[i].Hits {
			h := &res.Packets[i].Hits[j]
			if c := chains[tc{h.Table, h.Chain}]; c != nil && h.Kind == KernelHitRule {
				for _, r := range c.Rules {
					if r.Text == h.Text {
						h.Num, h.Rule = r.Num, r
						break
					}
				}
			}
		}
	}
	return nil
}

// packetLine is the parsed part of a PACKET line used for fencing.
type packetLine struct {
	id           string
	rest         string
	src, dst     netip.Addr
	sport, dport uint16
}

// parsePacketLine parses "PACKET: FAMILY ID KEY=VALUE … FLAGS".
func parsePacketLine(line string) (packetLine, bool) {
	rest, ok := strings.CutPrefix(line, "PACKET: ")
	if !ok {
		return packetLine{}, false
	}
	f := strings.SplitN(rest, " ", 3)
	if len(f) < 3 {
		return packetLine{}, false
	}
	p := packetLine{id: f[1], rest: strings.TrimSpace(f[2])}
	for _, kv := range strings.Fields(f[2]) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case "SRC":
			p.src, _ = netip.ParseAddr(v)
		case "DST":
			p.dst, _ = netip.ParseAddr(v)
		case "SPORT":
			n, _ := strconv.ParseUint(v, 10, 16)
			p.sport = uint16(n)
		case "DPORT":
			n, _ := strconv.ParseUint(v, 10, 16)
			p.dport = uint16(n)
		}
	}
	return p, true
}

// parseKernelTrace groups `xtables-monitor --trace` output lines into
// packets by trace id and parses their TRACE events:
//
//	PACKET: 2 96126de2 OUT=lo SRC=10.96.5.1 DST=10.96.5.5 … SPORT=37242 DPORT=80 SYN
//	 TRACE: 2 96126de2 nat:OUTPUT:rule:0x3:JUMP:KUBE-SVC-X  -4 -t nat -A OUTPUT … -j KUBE-SVC-X
//	 TRACE: 2 96126de2 nat:KUBE-SVC-X:return:
//	 TRACE: 2 96126de2 raw:OUTPUT:policy:ACCEPT
//
// Packets for which isMarker(first PACKET line) is true are dropped, and
// so are rule events for which isOwn(rule text) is true (the tracer's own
// TRACE rules); either func may be nil. Lines that fit neither form are
// ignored. Hit.Rule is set from the event's text when it parses; Num is
// left for the caller (KernelTracer fills it from the live chains).
func parseKernelTrace(lines []string, isOwn func(ruleText string) bool, isMarker func(packetLine) bool) *KernelTraceResult {
	res := &KernelTraceResult{}
	idx := map[string]int{}
	var pktLines [][]string
	marker := map[string]bool{}
	get := func(id string) int {
		if i, ok := idx[id]; ok {
			return i
		}
		idx[id] = len(res.Packets)
		res.Packets = append(res.Packets, KernelPacket{ID: id})
		pktLines = append(pktLines, nil)
		return idx[id]
	}
	for _, line := range lines {
		if p, ok := parsePacketLine(line); ok {
			i := get(p.id)
			kp := &res.Packets[i]
			if len(kp.Headers) == 0 {
				kp.Src, kp.Dst, kp.SrcPort, kp.DstPort = p.src, p.dst, p.sport, p.dport
				marker[p.id] = isMarker != nil && isMarker(p)
			}
			kp.Headers = append(kp.Headers, p.rest)
			pktLines[i] = append(pktLines[i], line)
			continue
		}
		h, id, ok := parseTraceLine(line)
		if !ok {
			continue
		}
		i := get(id)
		if h.Kind == KernelHitRule && isOwn != nil && isOwn(h.Text) {
			continue
		}
		pktLines[i] = append(pktLines[i], line)
		res.Packets[i].Hits = append(res.Packets[i].Hits, h)
	}
	out := res.Packets[:0]
	for i, p := range res.Packets {
		if marker[p.ID] {
			continue
		}
		out = append(out, p)
		res.Lines = append(res.Lines, pktLines[i]...)
	}
	res.Packets = out
	return res
}

// parseTraceLine parses one " TRACE: FAMILY ID TABLE:CHAIN:KIND…" line.
func parseTraceLine(line string) (KernelHit, string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimLeft(line, " "), "TRACE: ")
	if !ok {
		return KernelHit{}, "", false
	}
	f := strings.SplitN(rest, " ", 3)
	if len(f) < 3 {
		return KernelHit{}, "", false
	}
	id := f[1]
	head, text, _ := strings.Cut(strings.TrimSpace(f[2]), " ")
	parts := strings.Split(head, ":")
	if len(parts) < 3 {
		return KernelHit{}, "", false
	}
	h := KernelHit{Table: Table(parts[0]), Chain: parts[1], Kind: parts[2]}
	switch h.Kind {
	case KernelHitRule:
		if len(parts) < 5 {
			return KernelHit{}, "", false
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(parts[3], "0x"), 16, 64)
		if err != nil {
			return KernelHit{}, "", false
		}
		h.Handle = n
		h.Verdict = parts[4]
		if len(parts) > 5 {
			h.JumpTarget = strings.Join(parts[5:], ":")
		}
		h.Text = ruleTextFromMonitor(strings.TrimSpace(text))
		if h.Text != "" {
			if rs, err := ParseSave([]byte("*" + string(h.Table) + "\n" + h.Text + "\nCOMMIT\n")); err == nil {
				if c := rs.Chain(h.Table, h.Chain); c != nil && len(c.Rules) == 1 {
					h.Rule = c.Rules[0]
					h.Rule.Num = 0
				}
			}
		}
	case KernelHitPolicy:
		if len(parts) > 3 {
			h.Verdict = parts[3]
		}
	case KernelHitReturn:
		h.Verdict = "RETURN"
	default:
		return KernelHit{}, "", false
	}
	return h, id, true
}

// ruleTextFromMonitor turns xtables-monitor's "-4 -t nat -A CHAIN …" into
// iptables-save's "-A CHAIN …".
func ruleTextFromMonitor(s string) string {
	s = strings.TrimPrefix(s, "-4 ")
	s = strings.TrimPrefix(s, "-6 ")
	if strings.HasPrefix(s, "-t ") {
		f := strings.SplitN(s, " ", 3)
		if len(f) == 3 {
			s = f[2]
		}
	}
	return strings.TrimSpace(s)
}
