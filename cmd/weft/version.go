package main

import (
	"io"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/buildinfo"
)

func newVersionCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this weft binary: module version, commit and Go version",
		Long: `Print what the Go toolchain stamped into this binary: the weft module's version
(a tag, a pseudo-version, or (devel)), the commit it was built from, and the Go
version. A running site answers the same at its admin address's /version, and
logs it when it starts.`,
		Example: `  weft version
  weft version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildinfo.Get()
			return output(g.stdout, format, v, func(w io.Writer, wide bool) {
				row(w, "weft", v.Module)
				row(w, "commit", orDash(v.Revision)+modified(v.Modified))
				if v.RevisionTime != "" {
					row(w, "commit time", v.RevisionTime)
				}
				row(w, "go", v.Go)
			})
		},
	}
	addOutputFlag(cmd, &format, formatTable, formatJSON, formatYAML)
	return cmd
}

func modified(m bool) string {
	if m {
		return " (with uncommitted changes)"
	}
	return ""
}
