// Package web serves svclab's browser UI and the /lab/v1 endpoints behind
// it: the chain graph of a node's live iptables rules (JSON, DOT, SVG,
// Mermaid), live counters, explanations of every chain and rule, real and
// simulated packet traces, the lab's topology and an apply form. The UI is
// plain HTML, CSS and JavaScript embedded with go:embed; it fetches nothing
// from outside the server. web reaches the kernel only through dataplane
// (the kernel trace) and the Backend it is given.
package web
