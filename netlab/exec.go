package netlab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ExecInPod replaces the calling process with argv run inside the pod's
// network namespace, like `ip netns exec <pod netns> argv…`: in a private
// mount namespace, the files of /etc/netns/<pod netns>/ (resolv.conf,
// hosts, hostname) are bind-mounted over /etc, /sys is remounted for the
// namespace, and in a private UTS namespace the hostname is the pod's. The
// command's exit code becomes the process's. argv[0] is looked up in PATH.
// On success it does not return; it fails with ErrNotFound when the pod's
// namespace does not exist.
func ExecInPod(cfg Config, namespace, name string, argv []string) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	return execIn(cfg, PodNetnsName(cfg.Name, namespace, name), argv)
}

// ExecInNode is ExecInPod for a node's namespace (`svclab exec --node
// node-1 -- iptables-save`); a node has no /etc/netns files, so it sees
// the host's /etc.
func ExecInNode(cfg Config, node string, argv []string) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	return execIn(cfg, NodeNetnsName(cfg.Name, node), argv)
}

func execIn(cfg Config, nsName string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("exec: no command given")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	nsPath := filepath.Join(cfg.NetnsDir, nsName)
	ns, err := netns.GetFromPath(nsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: netns %s", ErrNotFound, nsName)
	}
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer ns.Close()
	etcDir := filepath.Join(cfg.EtcNetnsDir, nsName)
	hostname := ""
	if b, err := os.ReadFile(filepath.Join(etcDir, "hostname")); err == nil {
		hostname = strings.TrimSpace(string(b))
	}
	env := os.Environ()
	// The thread is not reusable afterwards: its mount and UTS namespaces
	// are private. On success Exec replaces the whole process.
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter netns %s: %w", nsName, err)
		}
		return nil
	}, func() error {
		flags := unix.CLONE_NEWNS
		if hostname != "" {
			flags |= unix.CLONE_NEWUTS
		}
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("unshare mount namespace: %w", err)
		}
		// mount --make-rslave /: nothing below leaks back to the host.
		if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("make / a slave mount: %w", err)
		}
		// A sysfs of this netns, so /sys/class/net lists its links.
		unix.Unmount("/sys", unix.MNT_DETACH)
		if err := unix.Mount(nsName, "/sys", "sysfs", 0, ""); err != nil {
			return fmt.Errorf("mount sysfs: %w", err)
		}
		if err := bindEtc(etcDir); err != nil {
			return err
		}
		if hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("set hostname %q: %w", hostname, err)
			}
		}
		if err := syscall.Exec(path, argv, env); err != nil {
			return fmt.Errorf("exec %s: %w", path, err)
		}
		return nil
	}, false)
}

// bindEtc bind-mounts every file of dir over the same name in /etc, as `ip
// netns exec` does; files without a counterpart in /etc are skipped.
func bindEtc(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range ents {
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		if _, err := os.Stat(dst); err != nil {
			continue
		}
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s -> %s: %w", src, dst, err)
		}
	}
	return nil
}
