package vl3

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// deviceName is the TUN device of network in a namespace: vl3-<network>
// where that fits a Linux interface name, else a hash of the name.
func deviceName(network string) string {
	if n := "vl3-" + network; len(n) < unix.IFNAMSIZ {
		return n
	}
	h := fnv.New32a()
	h.Write([]byte(network))
	return fmt.Sprintf("vl3-%08x", h.Sum32())
}

// openTUN creates the TUN device ifname in the network namespace nsName,
// gives it addr with the network's prefix length (so the whole network is
// routed into it), sets mtu and brings it up. The device lives as long as
// the returned file is open: closing it removes the device.
func openTUN(nsName, ifname string, addr netip.Addr, cidr netip.Prefix, mtu int) (*os.File, error) {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("network namespace %q: %w (create it with `ip netns add %s`)", nsName, err, nsName)
	}
	defer ns.Close()
	fd, err := createIn(ns, ifname)
	if err != nil {
		return nil, fmt.Errorf("creating TUN %s in namespace %s: %w", ifname, nsName, err)
	}
	f := os.NewFile(uintptr(fd), "tun:"+nsName+"/"+ifname)
	if err := configure(ns, ifname, addr, cidr, mtu); err != nil {
		f.Close()
		return nil, fmt.Errorf("configuring TUN %s in namespace %s: %w", ifname, nsName, err)
	}
	return f, nil
}

// inNamespace runs f on an OS thread that entered ns, so that what f
// creates (a device, a socket) is born there; it is used from any thread
// afterwards. A thread that cannot return to the site's namespace is left
// locked, so the runtime retires it; then the error says so and the caller
// must close what f made.
func inNamespace(ns netns.NsHandle, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			ch <- fmt.Errorf("returning to the site's namespace: %w", err)
			return // still locked: the thread ends with this goroutine
		}
		runtime.UnlockOSThread()
		ch <- ferr
	}()
	return <-ch
}

// createIn creates the TUN device ifname in ns and returns its descriptor.
func createIn(ns netns.NsHandle, ifname string) (int, error) {
	fd := -1
	err := inNamespace(ns, func() (err error) {
		fd, err = tunCreate(ifname)
		return err
	})
	if err != nil && fd >= 0 {
		unix.Close(fd)
	}
	return fd, err
}

func tunCreate(ifname string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF: %w (is a device %s there already?)", err, ifname)
	}
	return fd, nil
}

func configure(ns netns.NsHandle, ifname string, addr netip.Addr, cidr netip.Prefix, mtu int) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return err
	}
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return err
	}
	ipnet := &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(cidr.Bits(), 32)}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

// namespaceExists reports whether ip netns knows nsName.
func namespaceExists(nsName string) bool {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return false
	}
	ns.Close()
	return true
}
