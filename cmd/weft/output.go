package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats of -o. Not every command has every one: a listing has
// table, wide, json, yaml and name; a single answer json and yaml.
const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatYAML  = "yaml"
	formatName  = "name"
)

// listFormats are the formats of every list command.
var listFormats = []string{formatTable, formatWide, formatJSON, formatYAML, formatName}

// addOutputFlag adds -o/--output, the output format, checked before the
// command runs.
func addOutputFlag(cmd *cobra.Command, p *string, formats ...string) {
	cmd.Flags().StringVarP(p, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if !slices.Contains(formats, *p) {
			return fmt.Errorf("-o %s: use one of %s", *p, strings.Join(formats, ", "))
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}

// output writes v as JSON or YAML, or calls table for the human forms
// (table and wide).
func output(w io.Writer, format string, v any, table func(w io.Writer, wide bool)) error {
	switch format {
	case formatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case formatYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := newTable(w)
	table(tw, format == formatWide)
	return tw.Flush()
}

// newTable is the tabwriter every table is written with.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// row writes one tab-separated table row.
func row(w io.Writer, cells ...any) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	io.WriteString(w, "\n")
}

// orDash shows an empty cell as "-", so that columns stay readable.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
