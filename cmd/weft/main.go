// Command weft runs weft sites and the controller, and talks to their admin APIs.
// It is thin: flags become calls into the internal packages or API requests.
//
// Every kind of site resource has the same verbs (create, list or get,
// delete, and apply -f); -o is the output format everywhere; every command
// has examples; errors say what to do next.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopProfile := startProfile(os.Getenv("WEFT_PROFILE_DIR"))
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft:", err)
		os.Exit(1)
	}
}

// globals are the persistent flags every subcommand may use.
type globals struct {
	site       string // a site's data directory, to find its admin API
	controller string // the controller's URL or data directory
	data       string // the data directory of `site run` and `controller run`
	stdout     io.Writer
	stderr     io.Writer
}

// g is filled by the root command's flags; a test builds a fresh root with
// newRootCmd, which resets it.
var g globals

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g = globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "weft",
		Short: "A hybrid-cloud service and event mesh",
		Long: `weft joins workloads in many clusters, clouds and hosts into one network for
services and events. A site (weft site run) runs per cluster, cloud or host;
every other command talks to a site's admin API (--site DIR, the site's --data
directory) or to the controller (--controller URL or DIR).`,
		Example: `  weft site run --name east --data ~/weft/east
  weft --site ~/weft/east status
  weft --site ~/weft/east listener create orders --port 9090`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// A mistyped command is an error with suggestions, never help and
		// exit 0.
		SuggestionsMinimumDistance: 2,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.site, "site", os.Getenv("WEFT_SITE"), "data directory of the site to talk to (env WEFT_SITE)")
	pf.StringVar(&g.controller, "controller", os.Getenv("WEFT_CONTROLLER"), "the controller: its URL or its data directory (env WEFT_CONTROLLER)")
	pf.StringVar(&g.data, "data", "", "data directory of site run and controller run")
	root.AddCommand(
		newVersionCmd(),
		newSiteCmd(), newDemoCmd(), newStatusCmd(), newApplyCmd(),
		newTokenCmd(), newLinkCmd(), newRevocationCmd(), newListenerCmd(), newConnectorCmd(),
		newTopicCmd(), newQueueCmd(), newSubscriptionCmd(), newPublishCmd(), newSubscribeCmd(), newCredentialCmd(),
		newBridgeCmd(), newOrgCmd(), newPolicyCmd(), newBenchCmd(), newNetworkCmd(),
		newControllerCmd(), newIntentCmd(), newPlanCmd(),
	)
	return root
}

// group makes cmd a command that only holds subcommands: without one it
// prints its help; with an unknown one it fails with suggestions, where
// cobra would print help and exit 0.
func group(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.SuggestionsMinimumDistance = 2
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
		}
		return fmt.Errorf("%s\nRun '%s --help' for its commands", msg, c.CommandPath())
	}
	cmd.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
	// Runnable only to catch mistypes: its usage is its subcommands.
	cmd.DisableFlagsInUseLine = true
	cmd.AddCommand(subs...)
	return cmd
}
