package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestServingCertNames(t *testing.T) {
	_, certPEM, err := ServingCert("cluster.local", []netip.Addr{netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("172.29.0.1")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("the PEM holds no certificate")
	}
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("want exactly one CERTIFICATE block (no private key), got %q", certPEM)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1", "172.29.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", name, err)
		}
	}
	for _, name := range []string{"example.com", "10.96.0.10", "kubernetes.default.svc.other.local"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err == nil {
			t.Errorf("certificate verifies for %s, want an error", name)
		}
	}
}

// TestSourceFilter serves TLS on loopback through SourceFilter: a client
// from an allowed range gets the API's answer with the certificate verified;
// from elsewhere the connection is closed before any answer.
func TestSourceFilter(t *testing.T) {
	cert, certPEM, err := ServingCert("cluster.local", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	serve := func(allowed ...netip.Prefix) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
		go srv.Serve(tls.NewListener(SourceFilter(ln, allowed, nil), &tls.Config{Certificates: []tls.Certificate{cert}}))
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "kubernetes.default.svc"},
	}}

	open := serve(netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("127.0.0.0/8"))
	resp, err := client.Get("https://" + open + "/")
	if err != nil {
		t.Fatalf("GET from an allowed source: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("body %q, want ok", body)
	}

	closed := serve(netip.MustParsePrefix("10.244.0.0/16"))
	if resp, err := client.Get("https://" + closed + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET from 127.0.0.1 outside the allowed range answered %s, want the connection closed", resp.Status)
	}
}
