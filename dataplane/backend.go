package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// IPTablesBackend selects which iptables implementation programs a node: the
// nf_tables one (iptables-nft, rules live in nftables tables that `nft list
// ruleset` and `xtables-monitor --trace` see) or the legacy x_tables one
// (iptables-legacy, rules live in the kernel's ip_tables blobs). Rules written
// with one are invisible to the other's `iptables -L`/`iptables-save`, so
// BackendAuto picks the one plain `iptables` runs on this machine: that is
// what a learner typing `iptables -t nat -nL` in the node will see.
type IPTablesBackend string

// The iptables backends.
const (
	// BackendAuto resolves to whatever `iptables` is on this machine (Debian:
	// /etc/alternatives/iptables → xtables-nft-multi or xtables-legacy-multi).
	BackendAuto IPTablesBackend = "auto"
	// BackendNFT is iptables-nft (`iptables-nft-restore`, …).
	BackendNFT IPTablesBackend = "nft"
	// BackendLegacy is iptables-legacy (`iptables-legacy-restore`, …).
	BackendLegacy IPTablesBackend = "legacy"
)

// ErrUnknownBackend is returned by ParseBackend for a name that is not an
// IPTablesBackend, and by DetectBackend when `iptables` is neither nft nor legacy.
var ErrUnknownBackend = errors.New("unknown iptables backend")

// ParseBackend parses "auto", "nft" or "legacy" (case-insensitive; "" means
// auto), e.g. the value of `svclab up --iptables`.
func ParseBackend(s string) (IPTablesBackend, error) {
	switch b := IPTablesBackend(strings.ToLower(strings.TrimSpace(s))); b {
	case "", BackendAuto:
		return BackendAuto, nil
	case BackendNFT, BackendLegacy:
		return b, nil
	}
	return "", fmt.Errorf("%w %q: want auto, nft or legacy", ErrUnknownBackend, s)
}

// String returns the backend's name ("auto" for the zero value).
func (b IPTablesBackend) String() string {
	if b == "" {
		return string(BackendAuto)
	}
	return string(b)
}

// backendTools are the binaries of one backend.
type backendTools struct {
	iptables, restore, save string
}

// tools returns the binaries b runs. BackendAuto uses the plain names, so it
// follows the machine's alternatives.
func (b IPTablesBackend) tools() backendTools {
	switch b {
	case BackendNFT:
		return backendTools{"iptables-nft", "iptables-nft-restore", "iptables-nft-save"}
	case BackendLegacy:
		return backendTools{"iptables-legacy", "iptables-legacy-restore", "iptables-legacy-save"}
	}
	return backendTools{"iptables", "iptables-restore", "iptables-save"}
}

// DetectBackend returns the backend plain `iptables` uses on this machine:
// it follows the symlinks of `iptables` on PATH (Debian alternatives end in
// xtables-nft-multi or xtables-legacy-multi, or in iptables-nft /
// iptables-legacy) and, when the name tells nothing, asks `iptables -V`
// ("iptables v1.8.9 (nf_tables)" or "(legacy)"). It returns ErrToolMissing
// (wrapped) when iptables is not installed and ErrUnknownBackend when the
// answer is neither.
func DetectBackend(ctx context.Context) (IPTablesBackend, error) {
	path, err := exec.LookPath("iptables")
	if err != nil {
		return "", fmt.Errorf("%w: iptables: %v", ErrToolMissing, err)
	}
	if b := backendFromName(path); b != "" {
		return b, nil
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		if b := backendFromName(real); b != "" {
			return b, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-V").Output()
	if err != nil {
		return "", fmt.Errorf("detect iptables backend: %s -V: %w", path, err)
	}
	if b := backendFromVersion(out); b != "" {
		return b, nil
	}
	return "", fmt.Errorf("%w: `%s -V` says %q", ErrUnknownBackend, path, strings.TrimSpace(string(out)))
}

// backendFromName recognises a backend from a binary's file name
// (xtables-nft-multi, iptables-legacy, …); "" when the name is neutral.
func backendFromName(path string) IPTablesBackend {
	base := filepath.Base(path)
	switch {
	case strings.Contains(base, "nft"):
		return BackendNFT
	case strings.Contains(base, "legacy"):
		return BackendLegacy
	}
	return ""
}

// backendFromVersion recognises a backend from `iptables -V` output; ""
// when it names neither (iptables before 1.8 prints no mode: legacy).
func backendFromVersion(out []byte) IPTablesBackend {
	switch {
	case bytes.Contains(out, []byte("(nf_tables)")):
		return BackendNFT
	case bytes.Contains(out, []byte("(legacy)")):
		return BackendLegacy
	case bytes.HasPrefix(bytes.TrimSpace(out), []byte("iptables v1.")) && !bytes.Contains(out, []byte("(")):
		return BackendLegacy
	}
	return ""
}

// resolveBackend turns BackendAuto into the machine's backend (DetectBackend)
// and validates the others.
func resolveBackend(ctx context.Context, b IPTablesBackend) (IPTablesBackend, error) {
	switch b {
	case "", BackendAuto:
		return DetectBackend(ctx)
	case BackendNFT, BackendLegacy:
		return b, nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownBackend, string(b))
}
