package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/resource"
)

var bridgeKind = kind[resource.Bridge]{
	name: "bridge", collection: "bridges",
	itemName: func(b resource.Bridge) string { return b.Name },
	header: func(wide bool) []any {
		h := []any{"NAME", "BROKER", "STATE", "IN", "OUT"}
		if wide {
			h = append(h, "MALFORMED", "RETRIES", "ERROR")
		}
		return h
	},
	row: func(b resource.Bridge, wide bool) []any {
		st := resource.BridgeStatus{State: "-"}
		if b.Status != nil {
			st = *b.Status
		}
		r := []any{b.Name, b.Spec.Broker, st.State, st.In, st.Out}
		if wide {
			r = append(r, st.Malformed, st.Retries, orDash(st.Error))
		}
		return r
	},
}

func newBridgeCmd() *cobra.Command {
	var (
		b        resource.Bridge
		ins      []string
		inQueue  []string
		outs     []string
		outQueue []string
	)
	create := createEventCmd(bridgeKind, "create NAME --broker URL [--in FROM=TOPIC]... [--in-queue FROM=QUEUE]... [--out TOPIC=TO]... [--out-queue QUEUE=TO]...",
		"Bridge a broker (Kafka, AMQP, MQTT, NATS) into and out of the event mesh",
		`  weft --site ~/weft/west bridge create plant --broker mqtt://127.0.0.1:1883 --in 'sensors/+/temp=plant.temp'
  weft --site ~/weft/west bridge create orders --broker nats://127.0.0.1:4222 --out 'orders.>=orders.weft'
  weft --site ~/weft/west bridge create rabbit --broker amqp://127.0.0.1:5672 --secret-file /etc/weft/rabbit.yaml \
      --in-queue jobs=jobs --out orders.created=orders`,
		&b, func() error {
			for _, v := range ins {
				from, to, err := splitPair("--in", v)
				if err != nil {
					return err
				}
				b.Spec.In = append(b.Spec.In, resource.BridgeIn{From: from, Topic: to})
			}
			for _, v := range inQueue {
				from, to, err := splitPair("--in-queue", v)
				if err != nil {
					return err
				}
				b.Spec.In = append(b.Spec.In, resource.BridgeIn{From: from, Queue: to})
			}
			for _, v := range outs {
				topic, to, err := splitPair("--out", v)
				if err != nil {
					return err
				}
				b.Spec.Out = append(b.Spec.Out, resource.BridgeOut{Topic: topic, To: to})
			}
			for _, v := range outQueue {
				queue, to, err := splitPair("--out-queue", v)
				if err != nil {
					return err
				}
				b.Spec.Out = append(b.Spec.Out, resource.BridgeOut{Queue: queue, To: to})
			}
			return nil
		})
	f := create.Flags()
	f.StringVar(&b.Spec.Broker, "broker", "", "broker URL: kafka://, amqp://, amqps://, mqtt://, mqtts:// or nats://, with host and port")
	f.StringVar(&b.Spec.Auth.SecretFile, "secret-file", "", "YAML file at the site with username, password, caFile, certFile, keyFile")
	f.StringArrayVar(&ins, "in", nil, "FROM=TOPIC: the broker's topic, queue or subject FROM into the weft topic TOPIC (repeatable)")
	f.StringArrayVar(&inQueue, "in-queue", nil, "FROM=QUEUE: the broker's FROM into the weft queue QUEUE (repeatable)")
	f.StringArrayVar(&outs, "out", nil, "TOPIC=TO: the weft topic pattern TOPIC out to the broker's TO (repeatable)")
	f.StringArrayVar(&outQueue, "out-queue", nil, "QUEUE=TO: consume the weft queue QUEUE here and send its events to the broker's TO (repeatable)")
	create.MarkFlagRequired("broker")
	create.MarkFlagsOneRequired("in", "in-queue", "out", "out-queue")
	return group(&cobra.Command{
		Use:   "bridge",
		Short: "Event bridges: a broker's topics, queues or subjects into and out of the mesh",
		Example: `  weft --site ~/weft/west bridge create plant --broker mqtt://127.0.0.1:1883 --in 'sensors/#=plant.sensors'
  weft --site ~/weft/west bridge list -o wide
  weft --site ~/weft/west bridge delete plant`,
	}, create,
		listCmd(bridgeKind, `  weft --site ~/weft/west bridge list -o wide`),
		deleteCmd(bridgeKind, "Delete bridges (what the broker holds for them stays there)", `  weft --site ~/weft/west bridge delete plant`))
}

// splitPair splits a flag's A=B at its last '=': a broker's names may hold
// '=' less often than weft's, which never do.
func splitPair(flag, v string) (string, string, error) {
	i := strings.LastIndexByte(v, '=')
	if i <= 0 || i == len(v)-1 {
		return "", "", fmt.Errorf("%s %q: write it as A=B", flag, v)
	}
	return v[:i], v[i+1:], nil
}
