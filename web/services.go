package web

import (
	"slices"
	"strings"

	"github.com/svclab/svclab/dataplane"
)

// ServiceEntry is one Service found in a node's rules.
type ServiceEntry struct {
	// Service is "namespace/name".
	Service string `json:"service"`
	// Ports are the ServicePortNames ("ns/name:port", or "ns/name").
	Ports []string `json:"ports"`
	// Rules counts the Service's rules in the shared chains.
	Rules int `json:"rules"`
}

// ServiceList is the answer of /lab/v1/services.
type ServiceList struct {
	Node string `json:"node"`
	// Total is the number of Services in the node's rules, Matched how
	// many match the query; Items holds at most the requested limit.
	Total   int            `json:"total"`
	Matched int            `json:"matched"`
	Items   []ServiceEntry `json:"items"`
}

// indexServices lists the Services named in the comments of the shared
// chains kube-proxy writes (nat KUBE-SERVICES and KUBE-NODEPORTS, filter
// KUBE-SERVICES, KUBE-EXTERNAL-SERVICES and KUBE-PROXY-FIREWALL), sorted by
// name. Services without rules (ExternalName, headless) are not listed.
func indexServices(rs *dataplane.Ruleset) []ServiceEntry {
	byName := map[string]*ServiceEntry{}
	var order []string
	scan := func(table dataplane.Table, chain string) {
		c := rs.Chain(table, chain)
		if c == nil {
			return
		}
		for _, r := range c.Rules {
			spn := ServicePortFromComment(r.Comment)
			if spn == "" {
				continue
			}
			svc := serviceOf(spn)
			e := byName[svc]
			if e == nil {
				e = &ServiceEntry{Service: svc}
				byName[svc] = e
				order = append(order, svc)
			}
			e.Rules++
			if !slices.Contains(e.Ports, spn) {
				e.Ports = append(e.Ports, spn)
			}
		}
	}
	scan(dataplane.TableNAT, dataplane.ChainServices)
	scan(dataplane.TableNAT, dataplane.ChainNodePorts)
	scan(dataplane.TableFilter, dataplane.ChainServices)
	scan(dataplane.TableFilter, dataplane.ChainExternalServices)
	scan(dataplane.TableFilter, dataplane.ChainProxyFirewall)
	slices.Sort(order)
	out := make([]ServiceEntry, 0, len(order))
	for _, s := range order {
		e := byName[s]
		slices.Sort(e.Ports)
		out = append(out, *e)
	}
	return out
}

// searchServices filters entries whose name contains every word of q
// (case-insensitive) and returns at most limit of them with the match count.
func searchServices(entries []ServiceEntry, q string, limit int) ([]ServiceEntry, int) {
	words := strings.Fields(strings.ToLower(q))
	var out []ServiceEntry
	matched := 0
	for _, e := range entries {
		name := strings.ToLower(e.Service)
		ok := true
		for _, w := range words {
			if !strings.Contains(name, w) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		matched++
		if len(out) < limit {
			out = append(out, e)
		}
	}
	if out == nil {
		out = []ServiceEntry{}
	}
	return out, matched
}
