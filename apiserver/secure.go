package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"time"
)

// ServingCert returns a self-signed serving certificate for the API's TLS
// listener and its PEM encoding (what `curl --cacert` and a kubeconfig's
// certificate-authority-data take). Like the certificate kubeadm issues to
// kube-apiserver, it names kubernetes, kubernetes.default,
// kubernetes.default.svc and kubernetes.default.svc.<clusterDomain> and the
// given IPs (the kubernetes Service's cluster IP, the address it listens
// on); it is an ECDSA P-256 key valid from now for a year.
func ServingCert(clusterDomain string, ips []netip.Addr, now time.Time) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate the API's serving key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate a certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kube-apiserver", Organization: []string{"svclab"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: it is its own trust anchor
		DNSNames: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc." + clusterDomain, "localhost"},
	}
	for _, ip := range ips {
		if ip.IsValid() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create the API's serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse the API's serving certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, certPEM, nil
}

// SourceFilter wraps ln so that it hands out only connections whose remote
// address is inside one of allowed; others are closed as soon as they are
// accepted and logged at debug level. The API has no authentication, so its
// listener on the lab's network (the kubernetes Service's endpoint) serves
// only pods and nodes, never a neighbour on a network the machine shares.
func SourceFilter(ln net.Listener, allowed []netip.Prefix, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &filteredListener{Listener: ln, allowed: allowed, log: log}
}

type filteredListener struct {
	net.Listener
	allowed []netip.Prefix
	log     *slog.Logger
}

func (l *filteredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ap, perr := netip.ParseAddrPort(c.RemoteAddr().String()); perr == nil && l.allows(ap.Addr().Unmap()) {
			return c, nil
		}
		l.log.Debug("refused an API connection from outside the lab", "remote", c.RemoteAddr().String())
		c.Close()
	}
}

func (l *filteredListener) allows(a netip.Addr) bool {
	for _, p := range l.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
