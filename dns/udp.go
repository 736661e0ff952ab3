package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ServePacketConn serves DNS over UDP on pc until ctx is done, then waits for
// queries in flight and returns nil. It takes ownership of pc and closes it.
// pc may have been opened in another network namespace: a socket stays bound
// to the namespace it was created in.
//
// Unlike miekg/dns's server, which starts a goroutine per packet, a few
// workers read the socket and answer in-zone queries inline (this roughly
// halves the CPU per query); queries that may wait on an upstream are
// handed to their own goroutine. Requests are screened like miekg/dns's
// DefaultMsgAcceptFunc. Replies are sent with WriteTo, so the kernel picks
// the source address: on a multi-homed host bind pc to a specific address.
func (s *Server) ServePacketConn(ctx context.Context, pc net.PacketConn) error {
	defer pc.Close()
	addr := pc.LocalAddr().String()
	workers := max(4, 2*runtime.GOMAXPROCS(0))
	var (
		wg       sync.WaitGroup // workers and upstream goroutines
		mu       sync.Mutex
		firstErr error
	)
	stop := context.AfterFunc(ctx, func() {
		_ = pc.SetReadDeadline(time.Unix(1, 0)) // unblock the readers
	})
	defer stop()
	s.log.Info("serving", "proto", "udp", "addr", addr)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.udpWorker(ctx, pc, &wg); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				_ = pc.SetReadDeadline(time.Unix(1, 0)) // stop the other workers too
			}
		}()
	}
	wg.Wait()
	s.log.Info("stopped", "proto", "udp", "addr", addr)
	if firstErr != nil && ctx.Err() == nil {
		return fmt.Errorf("serve dns over udp on %s: %w", addr, firstErr)
	}
	return nil
}

// udpWorker reads and answers queries until ctx is done or the socket fails.
func (s *Server) udpWorker(ctx context.Context, pc net.PacketConn, wg *sync.WaitGroup) error {
	if udp, ok := pc.(*net.UDPConn); ok && runtime.GOOS == "linux" {
		return s.udpBatchWorker(ctx, udp, wg)
	}
	buf := make([]byte, udpReadSize)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if stop, err := s.readFailed(ctx, err); stop {
				return err
			}
			continue
		}
		w := &udpWriter{pc: pc, to: from}
		s.handlePacket(buf[:n], w, wg)
	}
}

// readFailed decides what a read error means: stop (nil error when ctx is
// done) or drop the packet and go on.
func (s *Server) readFailed(ctx context.Context, err error) (bool, error) {
	if ctx.Err() != nil {
		return true, nil
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true, errors.New("read deadline set by someone else")
	}
	if errors.Is(err, net.ErrClosed) {
		return true, err
	}
	return false, nil // e.g. a message larger than the buffer: drop it
}

// handlePacket screens and answers one packet, inline unless the answer may
// wait on an upstream.
func (s *Server) handlePacket(b []byte, w *udpWriter, wg *sync.WaitGroup) {
	req, reply := acceptPacket(b)
	if reply != nil {
		_ = w.WriteMsg(reply)
		return
	}
	if req == nil {
		return
	}
	if s.mayWaitUpstream(req) {
		wg.Add(1)
		go func(w udpWriter) {
			defer wg.Done()
			w.batch = nil // write directly, the batch is long gone
			w.buf = nil
			s.ServeDNS(&w, req)
		}(*w)
		return
	}
	s.ServeDNS(w, req)
}

// udpBatch is how many datagrams one recvmmsg/sendmmsg moves at most.
const udpBatch = 32

// udpBatchWorker is udpWorker on Linux UDP sockets: it reads up to udpBatch
// queries per recvmmsg and sends their replies with one sendmmsg.
func (s *Server) udpBatchWorker(ctx context.Context, udp *net.UDPConn, wg *sync.WaitGroup) error {
	var bc interface {
		ReadBatch([]ipv4.Message, int) (int, error)
		WriteBatch([]ipv4.Message, int) (int, error)
	}
	if a, ok := udp.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil && !a.IP.IsUnspecified() {
		bc = ipv6.NewPacketConn(udp)
	} else {
		bc = ipv4.NewPacketConn(udp)
	}
	in := make([]ipv4.Message, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpReadSize)}
	}
	b := &udpBatchOut{msgs: make([]ipv4.Message, udpBatch), bufs: make([][]byte, udpBatch)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, 0, mdns.MinMsgSize)
		b.msgs[i].Buffers = make([][]byte, 1)
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if stop, err := s.readFailed(ctx, err); stop {
				return err
			}
			continue
		}
		b.n = 0
		for i := range in[:n] {
			w := &udpWriter{pc: udp, to: in[i].Addr, batch: b}
			s.handlePacket(in[i].Buffers[0][:in[i].N], w, wg)
		}
		for sent := 0; sent < b.n; {
			k, err := bc.WriteBatch(b.msgs[sent:b.n], 0)
			if err != nil {
				s.log.Debug("send replies", "err", err)
				break
			}
			sent += k
		}
		for i := range b.msgs[:b.n] {
			b.msgs[i].Addr = nil
		}
	}
}

// udpBatchOut collects the replies of one read batch for one sendmmsg.
type udpBatchOut struct {
	msgs []ipv4.Message
	bufs [][]byte
	n    int
}

// acceptPacket screens a raw query as miekg/dns's server does with
// DefaultMsgAcceptFunc: nothing back for runts and responses, FORMERR or
// NOTIMP for what it rejects or cannot unpack. It returns the request to
// serve, or the reply to send instead.
func acceptPacket(b []byte) (req, reply *mdns.Msg) {
	if len(b) < 12 {
		return nil, nil
	}
	dh := mdns.Header{
		Id:      binary.BigEndian.Uint16(b[0:]),
		Bits:    binary.BigEndian.Uint16(b[2:]),
		Qdcount: binary.BigEndian.Uint16(b[4:]),
		Ancount: binary.BigEndian.Uint16(b[6:]),
		Nscount: binary.BigEndian.Uint16(b[8:]),
		Arcount: binary.BigEndian.Uint16(b[10:]),
	}
	action := mdns.DefaultMsgAcceptFunc(dh)
	if action == mdns.MsgIgnore {
		return nil, nil
	}
	req = new(mdns.Msg)
	if action == mdns.MsgAccept {
		if err := req.Unpack(b); err == nil {
			return req, nil
		}
	}
	reply = new(mdns.Msg)
	reply.Id = dh.Id
	reply.Response = true
	reply.Opcode = int(dh.Bits>>11) & 0xF
	reply.Rcode = mdns.RcodeFormatError
	if action == mdns.MsgRejectNotImplemented {
		reply.Rcode = mdns.RcodeNotImplemented
	}
	return nil, reply
}

// mayWaitUpstream reports whether answering req may wait on an upstream:
// names outside the zone, the reverse zones (their misses are forwarded), and
// address queries for ExternalName Services (their targets are resolved).
func (s *Server) mayWaitUpstream(req *mdns.Msg) bool {
	if req.Opcode != mdns.OpcodeQuery || len(req.Question) != 1 {
		return false
	}
	q := req.Question[0]
	name := strings.ToLower(mdns.Fqdn(q.Name))
	zone, reverse := s.matchZone(name)
	if zone == "" || reverse {
		return true
	}
	if (q.Qtype != mdns.TypeA && q.Qtype != mdns.TypeAAAA) || s.idx.externalNames.Load() == 0 {
		return false
	}
	r, err := parseRequest(name, zone)
	if err != nil || r.podOrSvc != labelSvc || r.service == "" {
		return false
	}
	x := s.idx
	x.mu.RLock()
	svc := x.services[nsName{r.namespace, r.service}]
	x.mu.RUnlock()
	return svc != nil && svc.externalName
}

// udpWriter is the mdns.ResponseWriter of one UDP query. With a batch,
// the reply is queued for the worker's sendmmsg instead of sent at once.
type udpWriter struct {
	pc    net.PacketConn
	to    net.Addr
	batch *udpBatchOut
	buf   []byte // reused pack buffer when not batching
}

var _ mdns.ResponseWriter = (*udpWriter)(nil)

func (w *udpWriter) LocalAddr() net.Addr  { return w.pc.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return w.to }

func (w *udpWriter) WriteMsg(m *mdns.Msg) error {
	if b := w.batch; b != nil && b.n < len(b.msgs) {
		packed, err := m.PackBuffer(b.bufs[b.n][:cap(b.bufs[b.n])])
		if err != nil {
			return fmt.Errorf("pack reply: %w", err)
		}
		if cap(packed) <= mdns.MaxMsgSize {
			b.bufs[b.n] = packed[:0]
		}
		b.msgs[b.n].Buffers[0] = packed
		b.msgs[b.n].Addr = w.to
		b.n++
		return nil
	}
	packed, err := m.PackBuffer(w.buf[:cap(w.buf)])
	if err != nil {
		return fmt.Errorf("pack reply: %w", err)
	}
	w.buf = packed[:0]
	_, err = w.Write(packed)
	return err
}

func (w *udpWriter) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.to) }

func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return nil }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}
