package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apiclient"
	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/resource"
)

var topicKind = kind[resource.Topic]{
	name: "topic", collection: "topics",
	itemName: func(t resource.Topic) string { return t.Name },
	header:   func(bool) []any { return []any{"NAME", "DELIVERY", "RETENTION"} },
	row: func(t resource.Topic, _ bool) []any {
		return []any{t.Name, t.Spec.Delivery, t.Spec.Retention}
	},
}

var queueKind = kind[resource.Queue]{
	name: "queue", collection: "queues",
	itemName: func(q resource.Queue) string { return q.Name },
	header:   func(bool) []any { return []any{"NAME", "DELIVERY"} },
	row:      func(q resource.Queue, _ bool) []any { return []any{q.Name, q.Spec.Delivery} },
}

var subscriptionKind = kind[resource.Subscription]{
	name: "subscription", collection: "subscriptions",
	itemName: func(s resource.Subscription) string { return s.Name },
	header: func(wide bool) []any {
		h := []any{"NAME", "TOPIC", "QUEUE", "SINK"}
		if wide {
			h = append(h, "RETRIES", "BACKOFF", "BACKOFF DELAY", "DEAD LETTER")
		}
		return h
	},
	row: func(s resource.Subscription, wide bool) []any {
		r := []any{s.Name, orDash(s.Spec.Topic), orDash(s.Spec.Queue), s.Spec.Sink}
		if wide {
			r = append(r, s.Spec.Retry, s.Spec.Backoff, s.Spec.BackoffDelay, orDash(s.Spec.DeadLetter))
		}
		return r
	},
}

// createEventCmd is "KIND create NAME": it puts obj, named by the argument,
// after fill has set what the flags say.
func createEventCmd[T any](k kind[T], use, short, example string, obj interface {
	SetName(string)
	Default() error
}, fill func() error) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			obj.SetName(args[0])
			if fill != nil {
				if err := fill(); err != nil {
					return err
				}
			}
			got, _, existed, err := k.create(cmd.Context(), args[0], obj)
			if err != nil {
				return err
			}
			if format != formatTable {
				return output(g.stdout, format, got, nil)
			}
			k.done(g.stdout, args[0], existed, "")
			return nil
		},
	}
	addOutputFlag(cmd, &format, formatTable, formatJSON, formatYAML)
	return cmd
}

func newTopicCmd() *cobra.Command {
	var (
		t         resource.Topic
		retention time.Duration
	)
	create := createEventCmd(topicKind, "create NAME", "Create or update a topic (a multicast event address)",
		`  weft --site ~/weft/east topic create orders.created
  weft --site ~/weft/east topic create orders.created --delivery persisted --retention 24h`,
		&t, func() error {
			t.Spec.Retention = retention.String()
			return nil
		})
	create.Flags().StringVar(&t.Spec.Delivery, "delivery", resource.DeliveryVolatile, "volatile (at most once) or persisted (at least once, stored before it is accepted)")
	create.Flags().DurationVar(&retention, "retention", 24*time.Hour, "how long persisted events are kept for destinations that are away")
	create.RegisterFlagCompletionFunc("delivery", deliveryCompletion)
	return group(&cobra.Command{
		Use:   "topic",
		Short: "Topics: multicast event addresses (a name is a topic or a queue, never both)",
		Example: `  weft --site ~/weft/east topic create orders.created --delivery persisted
  weft --site ~/weft/east topic list
  weft --site ~/weft/east topic delete orders.created`,
	}, create,
		listCmd(topicKind, `  weft --site ~/weft/east topic list`),
		deleteCmd(topicKind, "Delete topics' configuration (publishing to them goes on, volatile)", `  weft --site ~/weft/east topic delete orders.created`))
}

func newQueueCmd() *cobra.Command {
	var q resource.Queue
	create := createEventCmd(queueKind, "create NAME", "Create or update a queue (an anycast event address: each event to one consumer)",
		`  weft --site ~/weft/east queue create jobs
  weft --site ~/weft/east queue create jobs --delivery persisted`, &q, nil)
	create.Flags().StringVar(&q.Spec.Delivery, "delivery", resource.DeliveryVolatile, "volatile (at most once) or persisted (at least once, stored before it is accepted)")
	create.RegisterFlagCompletionFunc("delivery", deliveryCompletion)
	return group(&cobra.Command{
		Use:   "queue",
		Short: "Queues: anycast event addresses (a name is a topic or a queue, never both)",
		Example: `  weft --site ~/weft/east queue create jobs
  weft --site ~/weft/east queue list
  weft --site ~/weft/east queue delete jobs`,
	}, create,
		listCmd(queueKind, `  weft --site ~/weft/east queue list`),
		deleteCmd(queueKind, "Delete queues' configuration (what is queued is still handed out)", `  weft --site ~/weft/east queue delete jobs`))
}

var deliveryCompletion = cobra.FixedCompletions([]string{resource.DeliveryVolatile, resource.DeliveryPersisted}, cobra.ShellCompDirectiveNoFileComp)

func newSubscriptionCmd() *cobra.Command {
	var (
		s     resource.Subscription
		delay time.Duration
	)
	create := createEventCmd(subscriptionKind, "create NAME (--topic PATTERN | --queue QUEUE) --sink URL",
		"Push the events of a topic pattern or a queue to a sink URL (CloudEvents binary mode, Knative's delivery contract)",
		`  weft --site ~/weft/west subscription create audit --topic 'orders.>' --sink http://127.0.0.1:9000/
  weft --site ~/weft/west subscription create worker --queue jobs --sink http://127.0.0.1:9000/ \
      --retries 5 --backoff exponential --backoff-delay 500ms --dead-letter http://127.0.0.1:9001/`,
		&s, func() error {
			s.Spec.BackoffDelay = delay.String()
			return nil
		})
	f := create.Flags()
	f.StringVar(&s.Spec.Topic, "topic", "", "topic or pattern ('*' one token, '>' the rest)")
	f.StringVar(&s.Spec.Queue, "queue", "", "queue")
	f.StringVar(&s.Spec.Sink, "sink", "", "URL that receives each event (CloudEvents binary mode)")
	f.IntVar(&s.Spec.Retry, "retries", 3, "retries after the first attempt")
	// --retry was this flag's name before --retries became the one
	// spelling everywhere.
	f.IntVar(&s.Spec.Retry, "retry", 3, "retries after the first attempt")
	f.MarkDeprecated("retry", "use --retries")
	f.StringVar(&s.Spec.Backoff, "backoff", "exponential", "exponential or linear")
	f.DurationVar(&delay, "backoff-delay", 500*time.Millisecond, "first retry delay")
	f.StringVar(&s.Spec.DeadLetter, "dead-letter", "", "URL for events that could not be delivered")
	create.MarkFlagRequired("sink")
	create.MarkFlagsOneRequired("topic", "queue")
	create.MarkFlagsMutuallyExclusive("topic", "queue")
	create.RegisterFlagCompletionFunc("queue", completeNames(queueKind))
	create.RegisterFlagCompletionFunc("topic", completeNames(topicKind))
	create.RegisterFlagCompletionFunc("backoff", cobra.FixedCompletions([]string{"exponential", "linear"}, cobra.ShellCompDirectiveNoFileComp))
	return group(&cobra.Command{
		Use:   "subscription",
		Short: "Push subscriptions: events of a topic pattern or a queue, delivered to a URL",
		Example: `  weft --site ~/weft/west subscription create audit --topic 'orders.>' --sink http://127.0.0.1:9000/
  weft --site ~/weft/west subscription list
  weft --site ~/weft/west subscription delete audit`,
	}, create,
		listCmd(subscriptionKind, `  weft --site ~/weft/west subscription list -o wide`),
		deleteCmd(subscriptionKind, "Delete push subscriptions", `  weft --site ~/weft/west subscription delete audit`))
}

// completeNames completes a flag with the names of a kind's items.
func completeNames[T any](k kind[T]) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return k.complete(cmd, nil, toComplete)
	}
}

// completeEventNames completes a topic or queue name for publish and
// subscribe.
func completeEventNames(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ts, _ := topicKind.complete(cmd, nil, toComplete)
	qs, d := queueKind.complete(cmd, nil, toComplete)
	return append(ts, qs...), d
}

// eventPath is where a name is published or subscribed to: the kind the
// user named, or /v1/events/NAME, where the site finds it (a name is a
// topic or a queue, never both).
func eventPath(name string, topic, queue bool) string {
	switch {
	case topic:
		return "/v1/topics/" + url.PathEscape(name)
	case queue:
		return "/v1/queues/" + url.PathEscape(name)
	}
	return "/v1/events/" + url.PathEscape(name)
}

// dataContentType picks the content type of event data the user gave
// without one: JSON if it parses as JSON, text if it is UTF-8, else bytes.
func dataContentType(data []byte) string {
	switch {
	case len(data) == 0:
		return ""
	case json.Valid(data):
		return "application/json"
	case utf8.Valid(data):
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

func newPublishCmd() *cobra.Command {
	var (
		typ, source, data, id, contentType, credential string
		topic, queue                                   bool
	)
	cmd := &cobra.Command{
		Use:   "publish NAME [--data TEXT|@FILE|-]",
		Short: "Publish one CloudEvent to a topic or a queue at this site",
		Long: `Publish one CloudEvent (binary mode) at this site's event API. NAME is a topic
or a queue, never both: the site finds which (a Queue or Topic configured here,
else the consumers the network knows), so --topic and --queue are needed only
to insist on one. The data's content type is JSON if it parses as JSON, else
text, unless --content-type says otherwise.`,
		Example: `  weft --site ~/weft/east publish orders.created --data '{"id":1}'
  weft --site ~/weft/east publish jobs --data hello
  weft --site ~/weft/east publish orders.created --type com.example.order --source /shop --data @order.json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeEventNames,
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
				id = randomID()
			}
			if contentType == "" {
				contentType = dataContentType(body)
			}
			req, err := http.NewRequestWithContext(cmd.Context(), "POST", base+eventPath(args[0], topic, queue), strings.NewReader(string(body)))
			if err != nil {
				return err
			}
			auth, err := authorization(credential)
			if err != nil {
				return err
			}
			for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": id, "ce-type": typ, "ce-source": source,
				"ce-time": time.Now().UTC().Format(time.RFC3339Nano), "Content-Type": contentType, "Authorization": auth} {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
			kind, err := send(req)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "event %s published to %s %s\n", id, kind, args[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "dev.weft.message", "CloudEvents type")
	f.StringVar(&source, "source", "weft-cli", "CloudEvents source")
	f.StringVar(&data, "data", "", "event data: text, @FILE, or - for stdin")
	f.StringVar(&id, "id", "", "CloudEvents id (default: random)")
	f.StringVar(&contentType, "content-type", "", "data content type (default: application/json for JSON data, else text/plain)")
	f.BoolVar(&topic, "topic", false, "NAME must be a topic")
	f.BoolVar(&queue, "queue", false, "NAME must be a queue")
	cmd.MarkFlagsMutuallyExclusive("topic", "queue")
	addCredentialFlag(cmd, &credential)
	return cmd
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// send sends a publish request and returns the kind the site published
// to, or the API's error.
func send(req *http.Request) (string, error) {
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("the site's event API at %s does not answer (is the site running?): %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", eventAPIError(req, resp)
	}
	return cmp.Or(resp.Header.Get("Weft-Kind"), "topic"), nil
}

// eventAPIError reads the event API's error answer as apiclient does the
// admin API's.
func eventAPIError(req *http.Request, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &apiclient.Error{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode}
	var eb apitype.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message, e.Field = eb.Error.Code, eb.Error.Message, eb.Error.Field
	} else {
		e.Body = strings.TrimSpace(string(b))
	}
	return e
}

func newSubscribeCmd() *cobra.Command {
	var (
		format, credential string
		topic, queue       bool
	)
	cmd := &cobra.Command{
		Use:   "subscribe NAME|PATTERN",
		Short: "Print events of a topic (pattern) or a queue as they arrive, until interrupted",
		Long: `Print the events of a topic, a topic pattern ('*' one token, '>' the rest) or a
queue as they arrive, until interrupted. As for publish, the site finds whether
NAME is a topic or a queue.`,
		Example: `  weft --site ~/weft/west subscribe 'orders.*'
  weft --site ~/weft/west subscribe jobs -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeEventNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := eventsURL()
			if err != nil {
				return err
			}
			p := eventPath(args[0], topic, queue)
			if topic || queue {
				p += "/events"
			}
			auth, err := authorization(credential)
			if err != nil {
				return err
			}
			return subscribe(cmd.Context(), base+p, args[0], format, auth)
		},
	}
	addOutputFlag(cmd, &format, formatTable, formatJSON)
	cmd.Flags().BoolVar(&topic, "topic", false, "NAME must be a topic or pattern")
	cmd.Flags().BoolVar(&queue, "queue", false, "NAME must be a queue")
	cmd.MarkFlagsMutuallyExclusive("topic", "queue")
	addCredentialFlag(cmd, &credential)
	return cmd
}

// subscribe prints the Server-Sent Events at u until ctx ends; auth is the
// Authorization header, if any.
func subscribe(ctx context.Context, u, name, format, auth string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("the site's event API at %s does not answer (is the site running?): %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return eventAPIError(req, resp)
	}
	fmt.Fprintf(g.stderr, "subscribed to %s %s; Ctrl-C to stop\n", cmp.Or(resp.Header.Get("Weft-Kind"), "topic"), name)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if format == formatJSON {
			fmt.Fprintln(g.stdout, data)
			continue
		}
		var e struct {
			ID, Source, Type, Time string
			Data                   json.RawMessage
			DataBase64             string `json:"data_base64"`
		}
		json.Unmarshal([]byte(data), &e)
		fmt.Fprintf(g.stdout, "%s\t%s\t%s\t%s\t%s\n", e.Time, e.Source, e.Type, e.ID, eventData(e.Data, e.DataBase64))
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// eventData shows an event's data on one line: JSON as it is, a JSON
// string as its text.
func eventData(d json.RawMessage, b64 string) string {
	var s string
	if json.Unmarshal(d, &s) == nil {
		return strings.ReplaceAll(s, "\n", `\n`)
	}
	if len(d) > 0 {
		return string(d)
	}
	return b64
}
