// Package apiserver assembles svclab's control plane: the bbolt store (apiserver/store) with
// kube-apiserver's defaulting, validation and allocation as admitters (apiserver/admission), the
// objects a cluster starts with (namespaces, nodes, the kubernetes and kube-dns Services), the
// controllers that make pods and Services live (apiserver/controllers: scheduler, node side,
// EndpointSlices, Endpoints) and the Kubernetes-shaped REST API (apiserver/rest).
//
// It never touches the kernel: the node side is a controllers.PodRuntime handed to Run, which is
// netlab's in a real lab and controllers.SimulatedRuntime with --no-network.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/svclab/svclab/apiserver/admission"
	"github.com/svclab/svclab/apiserver/controllers"
	"github.com/svclab/svclab/apiserver/rest"
	"github.com/svclab/svclab/apiserver/store"
)

// Config describes one lab's control plane. Zero ranges take the defaults of ARCHITECTURE.md.
type Config struct {
	// Path is the bbolt file; its directory is created when missing.
	Path string
	// Nodes is the number of nodes (node-1…node-N).
	Nodes         int
	ServiceCIDR   netip.Prefix
	PodCIDR       netip.Prefix
	Underlay      netip.Prefix
	LBPool        netip.Prefix
	NodePortRange utilnet.PortRange
	// DNSReplicas is the number of CoreDNS pods behind kube-dns (0 = kubeadm's 2, <0 = none).
	DNSReplicas int
	// APIServerAddress, when valid, becomes the endpoint of the default/kubernetes Service.
	APIServerAddress netip.Addr
	APIServerPort    int32
	Logger           *slog.Logger
	// Registerer receives the API's request metrics; nil = none.
	Registerer prometheus.Registerer
}

// Server is an open control plane. Open it, start Run, serve Handler; Close it after Run returned.
type Server struct {
	Store     *store.Store
	Admission *admission.Admission
	cfg       Config
	log       *slog.Logger
	manager   *controllers.Manager
	running   chan struct{} // closed by Run once manager is set
}

// Open opens (or creates) the store with its admitters, rebuilding every allocator from the stored
// objects, and bootstraps the cluster's own objects (idempotent: a restart converges them), so that
// Nodes can be listed as soon as Open returns.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	adm, err := admission.New(admission.Config{
		ServiceCIDR:   cfg.ServiceCIDR,
		NodePortRange: cfg.NodePortRange,
		LBPool:        cfg.LBPool,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("configure admission: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	st, err := store.Open(cfg.Path, store.Options{Logger: log, Admitters: adm.Admitters()})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Path, err)
	}
	eff := adm.Config()
	boot := controllers.BootstrapConfig{
		Nodes:               cfg.Nodes,
		PodCIDR:             cfg.PodCIDR,
		Underlay:            cfg.Underlay,
		ServiceCIDR:         eff.ServiceCIDR,
		KubernetesServiceIP: admission.KubernetesServiceIP(eff.ServiceCIDR),
		DNSServiceIP:        admission.DNSServiceIP(eff.ServiceCIDR),
		APIServerAddress:    cfg.APIServerAddress,
		APIServerPort:       cfg.APIServerPort,
		DNSReplicas:         cfg.DNSReplicas,
		Logger:              log,
	}
	if err := controllers.Bootstrap(ctx, st, boot); err != nil {
		return nil, errors.Join(fmt.Errorf("bootstrap the cluster objects: %w", err), st.Close())
	}
	return &Server{Store: st, Admission: adm, cfg: cfg, log: log, running: make(chan struct{})}, nil
}

// Run runs the controllers, driving rt as the node side (nil = simulated), until ctx is done.
// Call it once.
func (s *Server) Run(ctx context.Context, rt controllers.PodRuntime) error {
	s.manager = controllers.NewManager(s.Store, controllers.Config{}, rt, s.log)
	close(s.running)
	return s.manager.Run(ctx)
}

// WaitSynced blocks until Run has started and the controllers have processed the initial state,
// or ctx is done.
func (s *Server) WaitSynced(ctx context.Context) error {
	select {
	case <-s.running:
	case <-ctx.Done():
		return fmt.Errorf("wait for the controllers to start: %w", ctx.Err())
	}
	return s.manager.WaitSynced(ctx)
}

// Handler returns the REST API, with extra routes (the lab's own endpoints, /metrics, the UI)
// mounted after the API's.
func (s *Server) Handler(extra func(r *mux.Router), ready func() error) http.Handler {
	return rest.NewHandler(s.Store, rest.Options{
		Logger:     s.log,
		Registerer: s.cfg.Registerer,
		Ready:      ready,
		Extra:      extra,
	})
}

// Close closes the store. Call it after Run returned.
func (s *Server) Close() error {
	return s.Store.Close()
}
