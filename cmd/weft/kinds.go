package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apitype"
)

// kind is one kind of site resource as the command line sees it: where the
// admin API keeps it and how a listing shows it. Every kind gets the same
// list (alias get) and delete verbs from it, and completion of its names.
type kind[T any] struct {
	name       string // singular, as in "listener/orders created"
	collection string // the admin API's /v1/{collection}
	itemName   func(T) string
	header     func(wide bool) []any
	row        func(item T, wide bool) []any
	deleted    string // what delete prints it did; default "deleted"
}

// list fetches every item of the kind.
func (k kind[T]) list(ctx context.Context, c *adminClient) ([]T, error) {
	var out apitype.List[T]
	if err := c.json(ctx, "GET", "/v1/"+k.collection, nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// table writes items as a table.
func (k kind[T]) table(w io.Writer, items []T, wide bool) {
	row(w, k.header(wide)...)
	for _, it := range items {
		row(w, k.row(it, wide)...)
	}
}

// put creates or replaces the item name with obj and decodes the stored
// object into out. It reports whether an item of that name existed, for the
// created or configured that the command prints.
func (k kind[T]) put(ctx context.Context, c *adminClient, name string, obj any, out any) (existed bool, err error) {
	items, err := k.list(ctx, c)
	if err != nil {
		return false, err
	}
	existed = slices.ContainsFunc(items, func(it T) bool { return k.itemName(it) == name })
	return existed, c.json(ctx, "PUT", "/v1/"+k.collection+"/"+url.PathEscape(name), obj, out)
}

// create validates obj (filling its defaults) and creates or replaces it
// at the site as name (put), returning the stored object.
func (k kind[T]) create(ctx context.Context, name string, obj interface{ Default() error }) (got T, c *adminClient, existed bool, err error) {
	if err = obj.Default(); err != nil {
		return got, nil, false, err
	}
	if c, err = siteClient(); err != nil {
		return got, nil, false, err
	}
	existed, err = k.put(ctx, c, name, obj, &got)
	return got, c, existed, err
}

// done prints what a create did, kubectl's way: "listener/orders created".
func (k kind[T]) done(w io.Writer, name string, existed bool, detail string) {
	verb := apitype.ApplyCreated
	if existed {
		verb = apitype.ApplyConfigured
	}
	if detail != "" {
		detail = " (" + detail + ")"
	}
	fmt.Fprintf(w, "%s/%s %s%s\n", k.name, name, verb, detail)
}

// listCmd is "KIND list [NAME...]", alias get: every item, or the named ones.
func listCmd[T any](k kind[T], example string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:               "list [NAME...]",
		Aliases:           []string{"get", "ls"},
		Short:             fmt.Sprintf("List %s (all, or the ones named)", k.collection),
		Example:           example,
		ValidArgsFunction: k.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			items, err := k.list(cmd.Context(), c)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				items = slices.DeleteFunc(items, func(it T) bool { return !slices.Contains(args, k.itemName(it)) })
				for _, a := range args {
					if !slices.ContainsFunc(items, func(it T) bool { return k.itemName(it) == a }) {
						return fmt.Errorf("no %s %q at this site: `weft %s list` shows them all", k.name, a, k.name)
					}
				}
			}
			if format == formatName {
				for _, it := range items {
					fmt.Fprintf(g.stdout, "%s/%s\n", k.name, k.itemName(it))
				}
				return nil
			}
			return output(g.stdout, format, apitype.List[T]{Items: items}, func(w io.Writer, wide bool) { k.table(w, items, wide) })
		},
	}
	addOutputFlag(cmd, &format, listFormats...)
	return cmd
}

// deleteCmd is "KIND delete NAME...": it prints each item it deleted.
func deleteCmd[T any](k kind[T], short, example string) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME...",
		Aliases:           []string{"rm"},
		Short:             short,
		Example:           example,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: k.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := c.json(cmd.Context(), "DELETE", "/v1/"+k.collection+"/"+url.PathEscape(name), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s/%s %s\n", k.name, name, cmp.Or(k.deleted, "deleted"))
			}
			return nil
		},
	}
}

// complete completes the names of the kind's items at the site named by
// --site, from its admin API; with no site to ask it completes nothing.
func (k kind[T]) complete(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, err := siteClient()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	items, err := k.list(cmd.Context(), c)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, it := range items {
		n := k.itemName(it)
		if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
