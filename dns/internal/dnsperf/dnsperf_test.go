package dnsperf

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svclab/svclab/dns"
)

const services = 10000

// load fills idx with n ClusterIP Services over 100 namespaces, each with an
// EndpointSlice of two ready endpoints, and returns their names.
func load(idx *dns.Index, n int) []string {
	tcp := corev1.ProtocolTCP
	port, name := int32(8080), "http"
	ready := true
	names := make([]string, 0, n)
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("ns%d", i%100)
		svcName := fmt.Sprintf("svc-%d", i)
		ip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)}).String()
		idx.UpsertService(&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svcName},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: tcp}}},
		})
		idx.UpsertEndpointSlice(&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svcName + "-abcde",
				Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &tcp}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 128+i>>16, byte(i>>8), byte(i))}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
				{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 160+i>>16, byte(i>>8), byte(i))}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			},
		})
		names = append(names, svcName+"."+ns+".svc.cluster.local.")
	}
	return names
}

var qpsRe = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)

// TestDNSPerfFigure starts the server on 127.0.0.1 with 10,000 Services and
// runs dnsperf over A queries for all of them, logging the throughput. It
// asserts correctness only (every query answered NOERROR), never speed.
func TestDNSPerfFigure(t *testing.T) {
	if os.Getenv("SVCLAB_DNSPERF") != "1" {
		t.Skip("set SVCLAB_DNSPERF=1 to measure with dnsperf")
	}
	bin, err := exec.LookPath("dnsperf")
	if err != nil {
		t.Skip("dnsperf not installed (apt-get install dnsperf)")
	}
	idx := dns.NewIndex("cluster.local.")
	names := load(idx, services)
	srv := dns.NewServer(dns.Config{Upstreams: []string{}, Logger: slog.New(slog.DiscardHandler)}, idx)

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.ServePacketConn(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addr := pc.LocalAddr().(*net.UDPAddr)
	waitReady(t, addr.String())

	file := filepath.Join(t.TempDir(), "queries.txt")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	for _, n := range names {
		fmt.Fprintf(bw, "%s A\n", n)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	args := []string{"-s", "127.0.0.1", "-p", fmt.Sprint(addr.Port), "-d", file}
	extra := os.Getenv("SVCLAB_DNSPERF_ARGS")
	if extra == "" {
		extra = "-l 10 -c 4 -T 2 -q 200"
	}
	args = append(args, strings.Fields(extra)...)
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dnsperf %v: %v\n%s", args, err, out)
	}
	t.Logf("dnsperf %s (GOMAXPROCS=%d, %d CPUs):\n%s", strings.Join(args, " "), runtime.GOMAXPROCS(0), runtime.NumCPU(), out)
	m := qpsRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no qps in dnsperf output")
	}
	if !regexp.MustCompile(`NOERROR \d+ \(100\.00%\)`).Match(out) {
		t.Errorf("not every query answered NOERROR")
	}
	t.Logf("measured: %s queries/s", m[1])
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	c := &mdns.Client{Timeout: 200 * time.Millisecond}
	m := new(mdns.Msg)
	m.SetQuestion("dns-version.cluster.local.", mdns.TypeTXT)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, err := c.Exchange(m, addr); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s never answered", addr)
		}
	}
}
