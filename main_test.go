package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageErrors: bad input on the command line gets exit code 2 and one line naming the flag
// and what it wants, before anything is created (no store, no namespace; no root needed).
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--nodes", "0"}, "svclab up: --nodes 0: want 1 to 250"},
		{[]string{"up", "--nodes", "251"}, "svclab up: --nodes 251: want 1 to 250"},
		{[]string{"up", "--secure-port", "70000"}, "svclab up: --secure-port 70000: want 1 to 65535, or 0 for none"},
		{[]string{"up", "--service-cidr", "10.96.0.0"}, `svclab up: --service-cidr "10.96.0.0" is not a CIDR (e.g. 10.96.0.0/12)`},
		{[]string{"up", "--lb-pool", "nope"}, `svclab up: --lb-pool "nope" is not a CIDR (e.g. 10.96.0.0/12)`},
		{[]string{"up", "--node-port-range", "30000-"}, `svclab up: --node-port-range "30000-": want FIRST-LAST, e.g. 30000-32767`},
		{[]string{"up", "--iptables", "ebpf"}, `svclab up: --iptables "ebpf": want auto, nft or legacy`},
		{[]string{"up", "--log-level", "loud"}, `svclab up: --log-level "loud": want debug, info, warn or error`},
		{[]string{"up", "now"}, `svclab up: unexpected argument "now"`},
		{[]string{"rules"}, "svclab rules: -f FILE is required (a YAML with Services and EndpointSlices, e.g. examples/)"},
		{[]string{"rules", "-f", "examples/01-redis-clusterip.yaml", "--node-ip", "node-1"}, `svclab rules: --node-ip "node-1" is not an IP address`},
		{[]string{"rules", "-f", "examples/01-redis-clusterip.yaml", "--cluster-cidr", "10.244.0.0"}, `svclab rules: --cluster-cidr "10.244.0.0" is not a CIDR`},
		{[]string{"start"}, `svclab: unknown command "start"; run 'svclab help' for the list`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := tc.args
			if args[0] == "up" {
				args = append([]string{"up", "--data", data, "--no-network"}, args[1:]...)
			}
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr.String())
			}
			if got := strings.TrimSuffix(stderr.String(), "\n"); got != tc.want {
				t.Errorf("stderr:\n%s\nwant the one line:\n%s", got, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("the data directory exists after a usage error (stat: %v)", err)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 || stdout.String() != "svclab "+version+"\n" {
		t.Errorf("version: code %d, stdout %q", code, stdout.String())
	}
	stdout.Reset()
	if code := run(nil, &stdout, &stderr); code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "svclab up") {
		t.Errorf("no command: code %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout.String(), stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "svclab up") {
		t.Errorf("help: code %d, stdout %q", code, stdout.String())
	}
}
