package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Echo is the built-in "echo" workload. On every TCP port of the pod it
// serves HTTP/1.1: the response tells who answered and which client
// address it saw, as plain text lines
//
//	pod: myapp-0
//	namespace: default
//	node: node-1
//	hostname: myapp-0
//	ip: 10.244.1.2
//	port: 80/TCP
//	client: 172.29.0.1:41234
//
// or as JSON with the same fields when the request accepts
// application/json. A TCP client that does not speak HTTP (its first bytes
// are not an HTTP method), or says nothing for 2 s, gets the identity as
// one line ("pod=myapp-0 namespace=default … client=…") and the
// connection is closed. On every UDP port each datagram is answered with
// that line. SCTP ports are skipped with a log line (Go has no SCTP
// sockets). A pod without ports serves nothing and still runs.
type Echo struct{}

var _ Workload = Echo{}

// sniffTimeout is how long a TCP connection may stay silent before the
// echo answers it with the identity line (a variable for tests).
var sniffTimeout = 2 * time.Second

// EchoReply is what the echo workload answers; its JSON form is the HTTP
// body for clients that accept application/json.
type EchoReply struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Node      string `json:"node"`
	Hostname  string `json:"hostname"`
	IP        string `json:"ip"`
	Port      int32  `json:"port"`
	Protocol  string `json:"protocol"`
	Client    string `json:"client"`
}

// Text renders r as the plain-text HTTP body: one "key: value" per line.
func (r EchoReply) Text() string {
	return fmt.Sprintf("pod: %s\nnamespace: %s\nnode: %s\nhostname: %s\nip: %s\nport: %d/%s\nclient: %s\n",
		r.Pod, r.Namespace, r.Node, r.Hostname, r.IP, r.Port, r.Protocol, r.Client)
}

// Line renders r as the one-line answer to raw TCP and UDP clients.
func (r EchoReply) Line() string {
	return fmt.Sprintf("pod=%s namespace=%s node=%s hostname=%s ip=%s port=%d/%s client=%s\n",
		r.Pod, r.Namespace, r.Node, r.Hostname, r.IP, r.Port, r.Protocol, r.Client)
}

func echoReply(p PodSpec, port PortSpec, client string) EchoReply {
	r := EchoReply{Pod: p.Name, Namespace: p.Namespace, Node: p.Node, Hostname: p.Hostname, IP: p.IP.String(), Port: port.Port, Protocol: port.Protocol, Client: client}
	if r.Protocol == "" {
		r.Protocol = "TCP"
	}
	if r.Hostname == "" {
		r.Hostname = r.Pod
	}
	return r
}

// Run serves every port of env.Pod until ctx is done. It fails when a
// port cannot be opened.
func (Echo) Run(ctx context.Context, env WorkloadEnv) error {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var servers []func() // each blocks serving; stopped by closing
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	seen := map[string]bool{}
	for _, pt := range env.Pod.Ports {
		if pt.Protocol == "" {
			pt.Protocol = "TCP"
		}
		key := fmt.Sprintf("%d/%s", pt.Port, pt.Protocol)
		if seen[key] {
			continue
		}
		seen[key] = true
		addr := ":" + strconv.Itoa(int(pt.Port))
		switch pt.Protocol {
		case "TCP":
			ln, err := env.Listen("tcp", addr)
			if err != nil {
				closeAll()
				return fmt.Errorf("echo: listen on %s: %w", key, err)
			}
			s := newTCPEcho(env.Pod, pt, ln, log)
			servers = append(servers, s.serve)
			closers = append(closers, s.close)
		case "UDP":
			pc, err := env.ListenPacket("udp", addr)
			if err != nil {
				closeAll()
				return fmt.Errorf("echo: listen on %s: %w", key, err)
			}
			servers = append(servers, func() { serveUDPEcho(env.Pod, pt, pc, log) })
			closers = append(closers, func() { pc.Close() })
		default:
			log.Info("echo: SCTP is not supported; port not served", "port", pt.Port, "protocol", pt.Protocol)
		}
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(s)
	}
	if env.Ready != nil {
		env.Ready()
	}
	<-ctx.Done()
	closeAll()
	wg.Wait()
	return nil
}

// serveUDPEcho answers every datagram with the identity line.
func serveUDPEcho(p PodSpec, pt PortSpec, pc net.PacketConn, log *slog.Logger) {
	buf := make([]byte, 64<<10)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("echo: udp read", "port", pt.Port, "err", err)
			}
			return
		}
		if _, err := pc.WriteTo([]byte(echoReply(p, pt, from.String()).Line()), from); err != nil {
			log.Debug("echo: udp reply", "to", from, "err", err)
		}
	}
}

// tcpEcho serves one TCP port: it sniffs each connection and hands HTTP
// ones to an http.Server, answering the rest with one line.
type tcpEcho struct {
	pod  PodSpec
	port PortSpec
	ln   net.Listener
	log  *slog.Logger
	http *http.Server
	q    *connQueue

	mu  sync.Mutex
	raw map[net.Conn]struct{}
	wg  sync.WaitGroup
}

func newTCPEcho(p PodSpec, pt PortSpec, ln net.Listener, log *slog.Logger) *tcpEcho {
	e := &tcpEcho{pod: p, port: pt, ln: ln, log: log, q: newConnQueue(ln.Addr()), raw: map[net.Conn]struct{}{}}
	e.http = &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return e
}

func (e *tcpEcho) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rep := echoReply(e.pod, e.port, r.RemoteAddr)
	w.Header().Set("X-Svclab-Pod", e.pod.Namespace+"/"+e.pod.Name)
	if acceptsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rep)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, rep.Text())
}

func acceptsJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "application/json") {
			return true
		}
	}
	return false
}

// serve accepts until the listener is closed.
func (e *tcpEcho) serve() {
	e.wg.Go(func() { e.http.Serve(e.q) })
	for {
		c, err := e.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				e.log.Warn("echo: accept", "port", e.port.Port, "err", err)
			}
			break
		}
		e.wg.Go(func() { e.handle(c) })
	}
	e.wg.Wait()
}

// close stops the port: listener, HTTP connections and raw connections.
func (e *tcpEcho) close() {
	e.ln.Close()
	e.http.Close()
	e.mu.Lock()
	for c := range e.raw {
		c.Close()
	}
	e.mu.Unlock()
}

// handle sniffs one connection.
func (e *tcpEcho) handle(c net.Conn) {
	e.mu.Lock()
	e.raw[c] = struct{}{}
	e.mu.Unlock()
	untrack := func() {
		e.mu.Lock()
		delete(e.raw, c)
		e.mu.Unlock()
	}
	br := bufio.NewReader(c)
	if looksLikeHTTP(c, br) {
		untrack()
		c.SetReadDeadline(time.Time{})
		e.q.push(&peekedConn{Conn: c, r: br})
		return
	}
	defer untrack()
	defer c.Close()
	// Consume the client's line (if any) so closing does not reset the
	// connection and lose the answer, then answer and half-close.
	if br.Buffered() > 0 {
		c.SetReadDeadline(time.Now().Add(sniffTimeout))
		br.ReadSlice('\n')
	}
	c.SetWriteDeadline(time.Now().Add(sniffTimeout))
	if _, err := c.Write([]byte(echoReply(e.pod, e.port, c.RemoteAddr().String()).Line())); err != nil {
		return
	}
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	// Drain until the client closes (or briefly), so our FIN is not
	// turned into a reset by unread data.
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	var buf [512]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

var httpMethods = []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "CONNECT ", "OPTIONS ", "TRACE ", "PATCH ", "PRI "}

// looksLikeHTTP reads as few bytes as needed to decide whether the
// connection starts with an HTTP method; silence for sniffTimeout, EOF or
// anything else means no.
func looksLikeHTTP(c net.Conn, br *bufio.Reader) bool {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	n := 1
	for {
		b, err := br.Peek(n)
		if len(b) < n {
			return false
		}
		s := string(b)
		undecided := false
		for _, m := range httpMethods {
			if strings.HasPrefix(s, m) {
				return true
			}
			if strings.HasPrefix(m, s) {
				undecided = true
			}
		}
		if !undecided || err != nil {
			return false
		}
		n = max(n+1, br.Buffered())
		if n > len("OPTIONS ") {
			n = len("OPTIONS ")
		}
	}
}

// peekedConn replays the bytes the sniffer buffered.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// connQueue is a net.Listener fed with already-accepted connections.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
