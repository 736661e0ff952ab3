package netlab

import (
	"errors"
	"strings"
	"testing"
)

func TestNetnsNames(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"node-1", NodeNetnsName("svclab", "node-1"), "svclab-node-1"},
		{"node-12", NodeNetnsName("lab2", "node-12"), "lab2-node-12"},
		{"other node name", NodeNetnsName("svclab", "worker"), "svclab-node-worker-" + shortHash("node/worker", 10)},
		{"node name with odd chars", NodeNetnsName("svclab", "Node_1"), "svclab-node-node-1-" + shortHash("node/Node_1", 10)},
		{"pod", PodNetnsName("svclab", "default", "myapp-0"), "svclab-pod-default-myapp-0"},
		{"pod name with dots", PodNetnsName("svclab", "default", "web.v1"), "svclab-pod-default-web.v1"},
		{"namespace with a dash", PodNetnsName("svclab", "kube-system", "coredns"), "svclab-pod-kube-system-coredns-" + shortHash("pod/kube-system/coredns", 10)},
		{"underlay netns", NetNetnsName("svclab"), "svclab-net"},
		{"host link", HostLinkName("svclab"), "svclab0"},
		{"host link of a 14-char lab", HostLinkName("abcdefghijklmn"), "abcdefghijklmn0"},
		{"host link of a long lab", HostLinkName("abcdefghijklmnopq"), "abcdefg" + shortHash("abcdefghijklmnopq", 6) + "0"},
		{"underlay port", underlayPortName("node-1"), "node-1"},
		{"underlay port of a long node", underlayPortName("node-12345678901"), "n" + shortHash("node/node-12345678901", 12)},
		{"underlay port of a node named host", underlayPortName("host"), "n" + shortHash("node/host", 12)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	if n := PodNetnsName("svclab", "default", long); len(n) > maxNetnsName {
		t.Errorf("long pod name gives a %d-char netns name", len(n))
	}
}

// TestNetnsNamesUnique: pairs that a naive "<ns>-<name>" join would merge
// get different names.
func TestNetnsNamesUnique(t *testing.T) {
	pairs := [][2]string{
		{"a-b", "c"}, {"a", "b-c"}, {"a", "b"}, {"a-b-c", "d"}, {"kube-system", "x"}, {"kube", "system-x"},
		{"default", strings.Repeat("y", 120)}, {"default", strings.Repeat("y", 121)},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		n := PodNetnsName("svclab", p[0], p[1])
		if prev, ok := seen[n]; ok {
			t.Errorf("%v and %v both map to %s", prev, p, n)
		}
		seen[n] = p
	}
	nodes := []string{"node-1", "1", "node-node-1", "worker-1", "node-worker-1"}
	seenNode := map[string]string{}
	for _, node := range nodes {
		n := NodeNetnsName("svclab", node)
		if prev, ok := seenNode[n]; ok {
			t.Errorf("nodes %q and %q both map to %s", prev, node, n)
		}
		seenNode[n] = node
	}
}

func TestInterfaceNamesFit(t *testing.T) {
	for _, n := range []string{
		HostLinkName(strings.Repeat("a", maxLabName)),
		underlayPortName(strings.Repeat("n", 100)),
		podVethName(PodNetnsName("svclab", "default", "web")),
	} {
		if len(n) > maxIfName {
			t.Errorf("interface name %q is longer than %d", n, maxIfName)
		}
	}
}

func TestLabNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"svclab", true},
		{"slt1a2b3", true},
		{"lab-b", true},
		{"svclab-nodes", true},
		{"", false},
		{"Svclab", false},
		{"1lab", false},
		{"lab_b", false},
		{"lab-", false},
		{"svclab-pod", false},
		{"svclab-node", false},
		{"a-net-b", false},
		{strings.Repeat("a", 33), false},
	}
	for _, tt := range tests {
		err := validateLabName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("validateLabName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("validateLabName(%q) error does not match ErrInvalidConfig", tt.name)
		}
	}
}

// TestOwnedNetnsNeverCrossesLabs: Down of one valid lab never matches a
// name another valid lab creates.
func TestOwnedNetnsNeverCrossesLabs(t *testing.T) {
	labs := []string{"svclab", "svclab-2", "svclab2", "svclab-nodes", "a", "a-b"}
	for _, owner := range labs {
		names := []string{
			NetNetnsName(owner), NodeNetnsName(owner, "node-1"), NodeNetnsName(owner, "x"),
			PodNetnsName(owner, "default", "p"), PodNetnsName(owner, "kube-system", "p"),
		}
		for _, other := range labs {
			for _, n := range names {
				if got, want := ownedNetns(other, n), other == owner; got != want {
					t.Errorf("ownedNetns(%q, %q) = %v, want %v", other, n, got, want)
				}
			}
		}
	}
}

func TestBridgeMAC(t *testing.T) {
	a, b := bridgeMAC("svclab-node-1", "cni0"), bridgeMAC("svclab-node-2", "cni0")
	if a.String() == b.String() {
		t.Errorf("two bridges share MAC %s", a)
	}
	if a[0]&1 != 0 || a[0]&2 == 0 {
		t.Errorf("MAC %s is not unicast and locally administered", a)
	}
	if a.String() != bridgeMAC("svclab-node-1", "cni0").String() {
		t.Error("bridge MAC is not stable")
	}
}
