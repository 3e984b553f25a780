package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apitype"
)

func newStatusCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the site, its links, the network's sites and every reachable address",
		Long: `Show the site named by --site: its links (state, cost, RTT), the sites of the
network with the path to each, every reachable address with the sites that serve
it, and its listeners, with a warning where one has nowhere to send its clients.

--site always means the site, even with WEFT_CONTROLLER set. For the intent
status of the controller, use 'weft controller status' (or 'weft --controller
URL status' without --site).`,
		Example: `  weft --site ~/weft/east status
  weft --site ~/weft/east status -o wide
  weft --site ~/weft/east status -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wantsController(cmd) {
				return controllerStatus(cmd, args)
			}
			if len(args) > 0 {
				return fmt.Errorf("status of a site takes no argument; for a traffic group's status, use `weft controller status %s`", args[0])
			}
			c, err := siteClient()
			if err != nil {
				return err
			}
			var st apitype.Status
			if err := c.json(cmd.Context(), "GET", "/v1/status", nil, &st); err != nil {
				return err
			}
			return output(g.stdout, format, st, func(w io.Writer, wide bool) { statusTable(w, st, wide) })
		},
	}
	addOutputFlag(cmd, &format, formatTable, formatWide, formatJSON, formatYAML)
	return cmd
}

func statusTable(w io.Writer, st apitype.Status, wide bool) {
	fmt.Fprintf(w, "Site %s (%s)\tadmin %s\tlink %s\tevents %s\n\n", st.Site.Name, st.Site.ID, st.Site.Admin, st.Site.Link, st.Site.Events)
	linkKind.table(w, st.Links, wide)
	fmt.Fprintln(w)
	row(w, "SITE", "COST", "PATH")
	for _, s := range st.Sites {
		row(w, s.Name, s.Cost, orDash(strings.Join(s.Path, " > ")))
	}
	fmt.Fprintln(w)
	row(w, "ADDRESS", "SERVED AT (COST[, LATENCY, SHARE OF THE LAST MINUTE])")
	for _, a := range st.Addresses {
		var at []string
		for _, s := range a.Sites {
			if s.EWMA == "" {
				at = append(at, fmt.Sprintf("%s (%d)", s.Name, s.Cost))
				continue
			}
			at = append(at, fmt.Sprintf("%s (%d, %s, %.0f%%)", s.Name, s.Cost, s.EWMA, s.Share))
		}
		row(w, a.Address, strings.Join(at, ", "))
	}
	if len(st.Listeners) > 0 {
		fmt.Fprintln(w)
		listenerKind.table(w, st.Listeners, wide)
		for _, l := range st.Listeners {
			if l.Warning != "" {
				fmt.Fprintf(w, "\nWARNING listener %s: %s\n", l.Name, l.Warning)
			}
		}
	}
	if len(st.Bridges) > 0 {
		fmt.Fprintln(w)
		bridgeKind.table(w, st.Bridges, wide)
	}
}
