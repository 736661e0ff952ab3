package netlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// loopbackEcho runs the echo for pod on loopback sockets and returns where
// each "port/PROTO" listens. It stops at cleanup.
func loopbackEcho(t *testing.T, pod PodSpec) (addrs map[string]string, stop func() error) {
	t.Helper()
	var mu sync.Mutex
	addrs = map[string]string{}
	record := func(network, address, got string) {
		mu.Lock()
		addrs[strings.TrimPrefix(address, ":")+"/"+strings.ToUpper(network)] = got
		mu.Unlock()
	}
	ready := make(chan struct{})
	env := WorkloadEnv{
		Pod: pod,
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, "127.0.0.1:0")
			if err == nil {
				record(network, address, ln.Addr().String())
			}
			return ln, err
		},
		ListenPacket: func(network, address string) (net.PacketConn, error) {
			pc, err := net.ListenPacket(network, "127.0.0.1:0")
			if err == nil {
				record(network, address, pc.LocalAddr().String())
			}
			return pc, err
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Ready:  func() { close(ready) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Echo{}.Run(ctx, env) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("echo failed to start: %v", err)
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return addrs, stop
}

var echoPod = PodSpec{
	Namespace: "default", Name: "myapp-0", Node: "node-1", Hostname: "myapp-0", IP: mustAddr("10.244.1.2"),
	Ports: []PortSpec{{Port: 80, Protocol: "TCP"}, {Port: 53, Protocol: "UDP"}, {Port: 80, Protocol: "TCP"}, {Port: 9000, Protocol: "SCTP"}},
}

func TestEchoHTTP(t *testing.T) {
	addrs, _ := loopbackEcho(t, echoPod)
	tests := []struct {
		name    string
		accept  string
		wantCT  string
		render  func(EchoReply) string
		comment string
	}{
		{"plain text", "", "text/plain; charset=utf-8", EchoReply.Text, ""},
		{"json", "application/json", "application/json", func(r EchoReply) string {
			b, _ := json.Marshal(r)
			return string(b) + "\n"
		}, ""},
		{"json among others", "text/html, application/json;q=0.9", "application/json", func(r EchoReply) string {
			b, _ := json.Marshal(r)
			return string(b) + "\n"
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var local string
			client := &http.Client{Transport: &http.Transport{
				DisableKeepAlives: true,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err == nil {
						local = c.LocalAddr().String()
					}
					return c, err
				},
			}}
			req, _ := http.NewRequest("GET", "http://"+addrs["80/TCP"]+"/path?q=1", nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := tt.render(EchoReply{Pod: "myapp-0", Namespace: "default", Node: "node-1", Hostname: "myapp-0", IP: "10.244.1.2", Port: 80, Protocol: "TCP", Client: local})
			if diff := cmp.Diff(want, string(body)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.wantCT {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantCT)
			}
		})
	}
}

func TestEchoRawTCP(t *testing.T) {
	old := sniffTimeout
	sniffTimeout = 200 * time.Millisecond
	t.Cleanup(func() { sniffTimeout = old })
	addrs, _ := loopbackEcho(t, echoPod)
	tests := []struct {
		name  string
		send  string
		close bool // half-close after sending
	}{
		{"a line", "hello\n", false},
		{"looks like HTTP at first", "GETTING\n", false},
		{"a partial method, then silence", "PO", false},
		{"nothing, then EOF", "", true},
		{"nothing at all (times out, still answered)", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addrs["80/TCP"])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.send)
			if tt.close {
				c.(*net.TCPConn).CloseWrite()
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("pod=myapp-0 namespace=default node=node-1 hostname=myapp-0 ip=10.244.1.2 port=80/TCP client=%s\n", c.LocalAddr())
			if diff := cmp.Diff(want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestEchoUDP(t *testing.T) {
	addrs, _ := loopbackEcho(t, echoPod)
	c, err := net.Dial("udp", addrs["53/UDP"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for range 2 {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("pod=myapp-0 namespace=default node=node-1 hostname=myapp-0 ip=10.244.1.2 port=53/UDP client=%s\n", c.LocalAddr())
		if diff := cmp.Diff(want, string(buf[:n])); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

func TestEchoPortsAndShutdown(t *testing.T) {
	addrs, stop := loopbackEcho(t, echoPod)
	if diff := cmp.Diff([]string{"53/UDP", "80/TCP"}, sortedKeys(addrs)); diff != "" {
		t.Errorf("opened ports (duplicates once, SCTP skipped) (-want +got):\n%s", diff)
	}
	// An idle raw connection is closed by shutdown too.
	idle, err := net.Dial("tcp", addrs["80/TCP"])
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(idle); err != nil {
		t.Errorf("idle connection after shutdown: %v, want EOF", err)
	}
	if c, err := net.Dial("tcp", addrs["80/TCP"]); err == nil {
		c.Close()
		t.Error("port still open after shutdown")
	}
}

func TestEchoListenFailure(t *testing.T) {
	env := WorkloadEnv{
		Pod:          echoPod,
		Listen:       func(string, string) (net.Listener, error) { return nil, errFake },
		ListenPacket: func(network, _ string) (net.PacketConn, error) { return net.ListenPacket(network, "127.0.0.1:0") },
	}
	if err := (Echo{}).Run(context.Background(), env); !errors.Is(err, errFake) {
		t.Errorf("Run = %v, want the listen error", err)
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
