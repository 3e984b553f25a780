package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/resource"
)

func newEventCmds() []*cobra.Command {
	return []*cobra.Command{newTopicCmd(), newQueueCmd(), newSubscriptionCmd(), newPublishCmd(), newSubscribeCmd()}
}

// putEventObject creates or replaces a Topic, Queue or Subscription through
// the admin API and prints what the site stored.
func putEventObject(ctx context.Context, collection, name string, obj any) error {
	c, err := siteClient()
	if err != nil {
		return err
	}
	var out map[string]any
	if err := c.json(ctx, "PUT", "/v1/"+collection+"/"+name, obj, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout(), "%s/%s configured\n", strings.TrimSuffix(collection, "s"), name)
	return nil
}

// createCmd is a "create NAME" command that puts obj, named by its one
// argument, into the site's collection.
func createCmd(use, short, collection string, name *string, obj any) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			*name = args[0]
			return putEventObject(cmd.Context(), collection, args[0], obj)
		},
	}
}

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Manage topics (multicast event addresses)"}
	var t resource.Topic
	create := createCmd("create NAME", "Create or update a topic", "topics", &t.Name, &t)
	create.Flags().StringVar(&t.Spec.Delivery, "delivery", "volatile", "volatile (at most once) or persisted (at least once, stored before it is accepted)")
	create.Flags().StringVar(&t.Spec.Retention, "retention", "24h", "how long persisted events are kept for destinations that are away")
	cmd.AddCommand(create)
	return cmd
}

func newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "Manage queues (anycast event addresses)"}
	var q resource.Queue
	create := createCmd("create NAME", "Create or update a queue", "queues", &q.Name, &q)
	create.Flags().StringVar(&q.Spec.Delivery, "delivery", "volatile", "volatile (at most once) or persisted (at least once, stored before it is accepted)")
	cmd.AddCommand(create)
	return cmd
}

func newSubscriptionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "subscription", Short: "Manage push subscriptions"}
	var s resource.Subscription
	create := createCmd("create NAME --topic T|--queue Q --sink URL", "Push the events of a topic pattern or a queue to a sink URL", "subscriptions", &s.Name, &s)
	f := create.Flags()
	f.StringVar(&s.Spec.Topic, "topic", "", "topic or pattern ('*' one token, '>' the rest)")
	f.StringVar(&s.Spec.Queue, "queue", "", "queue")
	f.StringVar(&s.Spec.Sink, "sink", "", "URL that receives each event (CloudEvents binary mode)")
	f.IntVar(&s.Spec.Retry, "retry", 3, "retries after the first attempt")
	f.StringVar(&s.Spec.Backoff, "backoff", "exponential", "exponential or linear")
	f.StringVar(&s.Spec.BackoffDelay, "backoff-delay", "500ms", "first retry delay")
	f.StringVar(&s.Spec.DeadLetter, "dead-letter", "", "URL for events that could not be delivered")
	cmd.AddCommand(create, deleteCmd("subscriptions", "Delete a push subscription"))
	return cmd
}

// eventsURL is the event API of the site named by --site.
func eventsURL() (string, error) {
	if g.site == "" {
		return "", errors.New("which site? pass --site DIR (the site's --data directory) or set WEFT_SITE")
	}
	b, err := os.ReadFile(filepath.Join(g.site, "events.addr"))
	if err != nil {
		return "", fmt.Errorf("no running site found in %s (%v)", g.site, err)
	}
	return "http://" + strings.TrimSpace(string(b)), nil
}

// collection is "queues" for a name given with --queue, else "topics".
func collection(queue bool) string {
	if queue {
		return "queues"
	}
	return "topics"
}

func newPublishCmd() *cobra.Command {
	var typ, source, data, id, contentType string
	var queue bool
	cmd := &cobra.Command{
		Use:   "publish TOPIC_OR_QUEUE --type T --source S [--data @file|-|TEXT] [--id ID]",
		Short: "Publish one CloudEvent (binary mode) at this site",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := eventsURL()
			if err != nil {
				return err
			}
			var body []byte
			switch {
			case data == "-":
				body, err = io.ReadAll(os.Stdin)
			case strings.HasPrefix(data, "@"):
				body, err = os.ReadFile(data[1:])
			default:
				body = []byte(data)
			}
			if err != nil {
				return err
			}
			if id == "" {
				var b [16]byte
				rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			req, err := http.NewRequestWithContext(cmd.Context(), "POST", base+"/v1/"+collection(queue)+"/"+args[0], strings.NewReader(string(body)))
			if err != nil {
				return err
			}
			for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": id, "ce-type": typ, "ce-source": source, "Content-Type": contentType} {
				req.Header.Set(k, v)
			}
			resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				var e struct{ Error struct{ Message string } }
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
					return fmt.Errorf("%s: %s", resp.Status, e.Error.Message)
				}
				return fmt.Errorf("%s", resp.Status)
			}
			fmt.Fprintln(stdout(), id)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "CloudEvents type")
	f.StringVar(&source, "source", "", "CloudEvents source")
	f.StringVar(&data, "data", "", "event data: text, @file or - for stdin")
	f.StringVar(&id, "id", "", "CloudEvents id (default: random)")
	f.StringVar(&contentType, "content-type", "application/json", "data content type")
	f.BoolVar(&queue, "queue", false, "publish to a queue instead of a topic")
	return cmd
}

func newSubscribeCmd() *cobra.Command {
	var format string
	var queue bool
	cmd := &cobra.Command{
		Use:   "subscribe TOPIC_OR_QUEUE [-o json]",
		Short: "Print events as they arrive, until interrupted (a topic pattern may use '*' and '>')",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := eventsURL()
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(cmd.Context(), "GET", base+"/v1/"+collection(queue)+"/"+args[0]+"/events", nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("subscribe: %s", resp.Status)
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				if format == "json" {
					fmt.Fprintln(stdout(), data)
					continue
				}
				var e struct{ ID, Source, Type, Time string }
				json.Unmarshal([]byte(data), &e)
				fmt.Fprintf(stdout(), "%s\t%s\t%s\t%s\n", e.Time, e.Source, e.Type, e.ID)
			}
			if cmd.Context().Err() != nil {
				return nil
			}
			return sc.Err()
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "", "json prints each event as one line of structured JSON")
	cmd.Flags().BoolVar(&queue, "queue", false, "consume a queue instead of a topic")
	return cmd
}
