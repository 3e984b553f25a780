package main

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/vl3"
)

var networkKind = kind[vl3.Network]{
	name: "network", collection: "networks",
	itemName: func(n vl3.Network) string { return n.Name },
	header:   func(_ bool) []any { return []any{"NAME", "CIDR", "MTU", "PREFIX", "ATTACHMENTS"} },
	row: func(n vl3.Network, _ bool) []any {
		var atts []string
		for _, a := range n.Attachments {
			atts = append(atts, fmt.Sprintf("%s=%s(netns %s)", a.Name, a.IP, a.Netns))
		}
		prefix := "-"
		if n.Prefix.IsValid() {
			prefix = n.Prefix.String()
		}
		return []any{n.Name, n.CIDR, n.MTU, prefix, orDash(strings.Join(atts, " "))}
	},
}

func newNetworkCmd() *cobra.Command {
	var (
		cidr string
		mtu  int
	)
	create := &cobra.Command{
		Use:   "create NAME --cidr CIDR [--mtu 1400]",
		Short: "Define a vL3 network: a flat IPv4 network across every site",
		Long: `Define a vL3 network at this site; every reachable site learns it from this
site's record and can attach namespaces to it. Each site with attachments owns
a prefix of the CIDR 8 bits longer (at most a /28).`,
		Example: `  weft --site ~/weft/east network create blue --cidr 100.100.0.0/16`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := netip.ParsePrefix(cidr)
			if err != nil {
				return fmt.Errorf("--cidr %q: %w (for example 100.100.0.0/16)", cidr, err)
			}
			c, err := siteClient()
			if err != nil {
				return err
			}
			if err := c.json(cmd.Context(), "PUT", "/v1/networks/"+url.PathEscape(args[0]), vl3.Network{CIDR: p, MTU: mtu}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "network/%s created\n", args[0])
			return nil
		},
	}
	create.Flags().StringVar(&cidr, "cidr", "", "the network's IPv4 CIDR, /8 to /24 (required)")
	create.Flags().IntVar(&mtu, "mtu", vl3.DefaultMTU, "MTU of the network's devices")
	create.MarkFlagRequired("cidr")

	var (
		b    apitype.NetworkAttach
		ip   string
		amtu int
	)
	attach := &cobra.Command{
		Use:   "attach NETWORK --netns NAME [--ip ADDR] [--name NAME] [--dns]",
		Short: "Give a network namespace a device on a vL3 network",
		Long: `Create a TUN device vl3-NETWORK in the network namespace (ip netns) with an
address from this site's prefix of the network (or --ip), and route the whole
network into it. The site must run as root. With --dns, NAME.NETWORK.weft
names resolve in the namespace.`,
		Example: `  ip netns add app1
  weft --site ~/weft/east network attach blue --netns app1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("--ip %q: %w", ip, err)
				}
				b.IP = a
			}
			b.MTU = amtu
			c, err := siteClient()
			if err != nil {
				return err
			}
			var got vl3.Attachment
			if err := c.json(cmd.Context(), "POST", "/v1/networks/"+url.PathEscape(args[0])+"/attachments", b, &got); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "network/%s attached: netns %s, %s, address %s\n", args[0], got.Netns, got.Name, got.IP)
			return nil
		},
	}
	attach.Flags().StringVar(&b.Netns, "netns", "", "the network namespace (ip netns) to attach (required)")
	attach.Flags().StringVar(&b.Name, "name", "", "the attachment's name, its DNS label (default: the namespace's name)")
	attach.Flags().StringVar(&ip, "ip", "", "the address to take, in this site's prefix (default: the next free one)")
	attach.Flags().BoolVar(&b.DNS, "dns", false, "resolve NAME.NETWORK.weft inside the namespace")
	attach.Flags().IntVar(&amtu, "mtu", 0, "MTU of the network's devices at this site (default: the network's)")
	attach.MarkFlagRequired("netns")

	var detachNetns string
	detach := &cobra.Command{
		Use:     "detach NETWORK --netns NAME",
		Short:   "Remove a namespace's device from a vL3 network and free its address",
		Example: `  weft --site ~/weft/east network detach blue --netns app1`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			if err := c.json(cmd.Context(), "DELETE", "/v1/networks/"+url.PathEscape(args[0])+"/attachments/"+url.PathEscape(detachNetns), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "network/%s detached: netns %s\n", args[0], detachNetns)
			return nil
		},
	}
	detach.Flags().StringVar(&detachNetns, "netns", "", "the attached network namespace (required)")
	detach.MarkFlagRequired("netns")

	return group(&cobra.Command{
		Use:   "network",
		Short: "vL3 networks: flat IPv4 networks across sites, attached to network namespaces",
		Example: `  weft --site ~/weft/east network create blue --cidr 100.100.0.0/16
  weft --site ~/weft/east network attach blue --netns app1
  weft --site ~/weft/east network list`,
	}, create, attach, detach,
		listCmd(networkKind, `  weft --site ~/weft/east network list`),
		deleteCmd(networkKind, "Delete networks at this site (their attachments are detached)", `  weft --site ~/weft/east network delete blue`))
}
