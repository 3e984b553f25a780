// Command weft runs weft sites and the controller, and talks to their admin APIs.
// It is thin: flags become calls into the internal packages or API requests.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// globals are the persistent flags every subcommand may use.
type globals struct {
	site       string // a site's data directory, to find its admin API
	controller string // the controller's URL
	data       string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "weft:", err)
		os.Exit(1)
	}
}

var g globals

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "A hybrid-cloud service and event mesh",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.site, "site", os.Getenv("WEFT_SITE"), "data directory of the site to talk to (env WEFT_SITE)")
	pf.StringVar(&g.controller, "controller", os.Getenv("WEFT_CONTROLLER"), "URL of the weft controller (env WEFT_CONTROLLER)")
	pf.StringVar(&g.data, "data", "", "data directory")
	root.AddCommand(newSiteCmd(), newTokenCmd(), newLinkCmd(), newConnectorCmd(), newListenerCmd(),
		newStatusCmd(), newApplyCmd(), newDemoCmd())
	root.AddCommand(newEventCmds()...)
	root.AddCommand(newControllerCmd(), newIntentCmd(), newPlanCmd())

	return root
}
