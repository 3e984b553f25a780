package main

import (
	"os"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/site"
)

func newDemoCmd() *cobra.Command {
	var o site.DemoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a demo network of three sites on this host, with a service to try",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return site.Demo(cmd.Context(), os.Stdout, o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "keep the sites' data here (default: a temporary directory, removed at exit)")
	cmd.Flags().IntVar(&o.Port, "port", 0, "port of the demo listener (0 picks a free one)")
	return cmd
}
