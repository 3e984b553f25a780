package canonjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	apinet "istio.io/api/networking/v1alpha3"
	apisec "istio.io/api/security/v1beta1"
)

// protoJSON is an Istio API message: its MarshalJSON is the default
// jsonpb.Marshaler's.
type protoJSON interface {
	json.Marshaler
	ProtoReflect() protoreflect.Message
}

// roundTrip is what Proto replaces: jsonpb's JSON, read by json.Unmarshal
// and written again by json.Marshal.
func roundTrip(m protoJSON) ([]byte, error) {
	data, err := m.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// checkSame fails unless Proto writes what the JSON round trip gives,
// wherever it does not leave m to that round trip, and reports whether it
// wrote m.
func checkSame(t *testing.T, m protoJSON) bool {
	t.Helper()
	want, wantErr := roundTrip(m)
	var w Writer
	err := w.Proto(m.ProtoReflect())
	if errors.Is(err, ErrUnsupported) {
		return false
	}
	if err != nil || wantErr != nil {
		t.Fatalf("Proto: %v; round trip: %v", err, wantErr)
	}
	if !bytes.Equal(w.Buf, want) {
		t.Fatalf("Proto(%T)\n got %s\nwant %s", m, w.Buf, want)
	}
	return true
}

func TestProtoIsTheJSONRoundTrip(t *testing.T) {
	value, err := structpb.NewStruct(map[string]any{"s": "x<y", "n": 1.5, "b": true, "null": nil, "list": []any{"a", 2.0, map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []protoJSON{
		&apinet.DestinationRule{},
		&apinet.DestinationRule{
			Host: "orders.shop.svc.cluster.local", ExportTo: []string{".", "*"},
			TrafficPolicy: &apinet.TrafficPolicy{
				ConnectionPool: &apinet.ConnectionPoolSettings{
					Tcp:  &apinet.ConnectionPoolSettings_TCPSettings{MaxConnections: 10, ConnectTimeout: durationpb.New(1500e6)},
					Http: &apinet.ConnectionPoolSettings_HTTPSettings{IdleTimeout: &durationpb.Duration{Seconds: -3, Nanos: -5000}},
				},
				OutlierDetection: &apinet.OutlierDetection{
					ConsecutiveErrors: 5, Consecutive_5XxErrors: wrapperspb.UInt32(0), Interval: durationpb.New(10e9),
					MaxEjectionPercent: 50, MinHealthPercent: -1,
				},
				LoadBalancer: &apinet.LoadBalancerSettings{
					LbPolicy: &apinet.LoadBalancerSettings_Simple{Simple: apinet.LoadBalancerSettings_SimpleLB(99)},
					LocalityLbSetting: &apinet.LocalityLoadBalancerSetting{
						Distribute: []*apinet.LocalityLoadBalancerSetting_Distribute{{From: "r1/*", To: map[string]uint32{"r1/*": 80, "r2/*": 20}}},
						Enabled:    wrapperspb.Bool(false),
					},
				},
				Tls: &apinet.ClientTLSSettings{Mode: apinet.ClientTLSSettings_ISTIO_MUTUAL, Sni: "é\u2028"},
			},
		},
		&apisec.AuthorizationPolicy{},
		&apisec.AuthorizationPolicy{Action: apisec.AuthorizationPolicy_DENY, Rules: []*apisec.Rule{{
			From: []*apisec.Rule_From{{Source: &apisec.Source{Principals: []string{"cluster.local/ns/a/sa/b"}}}},
			To:   []*apisec.Rule_To{{Operation: &apisec.Operation{Ports: []string{"8080"}}}},
		}}},
		&apinet.EnvoyFilter{ConfigPatches: []*apinet.EnvoyFilter_EnvoyConfigObjectPatch{{Patch: &apinet.EnvoyFilter_Patch{Value: value}}}},
		&apinet.ServiceEntry{Hosts: []string{"api.example.net"}, Endpoints: []*apinet.WorkloadEntry{{Address: "10.0.0.1", Ports: map[string]uint32{"http": 80, "grpc": 81}, Weight: 3, Labels: map[string]string{"b": "c", "a": "b"}}}},
	} {
		if !checkSame(t, m) {
			t.Errorf("%T left to the round trip", m)
		}
	}
	// Left to the round trip: a Value with no kind (jsonpb refuses it), a
	// duration out of range.
	noKind := &apinet.EnvoyFilter{ConfigPatches: []*apinet.EnvoyFilter_EnvoyConfigObjectPatch{{Patch: &apinet.EnvoyFilter_Patch{
		Value: &structpb.Struct{Fields: map[string]*structpb.Value{"x": {}}}}}}}
	if err := new(Writer).Proto(noKind.ProtoReflect()); !errors.Is(err, ErrUnsupported) {
		t.Errorf("a Value with no kind: %v, want ErrUnsupported", err)
	}
	badDuration := &apinet.DestinationRule{TrafficPolicy: &apinet.TrafficPolicy{OutlierDetection: &apinet.OutlierDetection{Interval: &durationpb.Duration{Seconds: 1, Nanos: -1}}}}
	if err := new(Writer).Proto(badDuration.ProtoReflect()); !errors.Is(err, ErrUnsupported) {
		t.Errorf("a duration with mixed signs: %v, want ErrUnsupported", err)
	}
	inf := &apinet.EnvoyFilter{ConfigPatches: []*apinet.EnvoyFilter_EnvoyConfigObjectPatch{{Patch: &apinet.EnvoyFilter_Patch{
		Value: &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(math.Inf(1))}}}}}}
	checkSame(t, inf)
}

// FuzzProto decodes arbitrary protobuf into Istio messages and compares
// Proto with the JSON round trip it replaces.
func FuzzProto(f *testing.F) {
	kinds := []func() protoJSON{
		func() protoJSON { return &apinet.DestinationRule{} },
		func() protoJSON { return &apinet.ServiceEntry{} },
		func() protoJSON { return &apinet.VirtualService{} },
		func() protoJSON { return &apinet.EnvoyFilter{} },
		func() protoJSON { return &apinet.Gateway{} },
		func() protoJSON { return &apisec.AuthorizationPolicy{} },
		func() protoJSON { return &apisec.PeerAuthentication{} },
	}
	seed, err := proto.Marshal(&apinet.DestinationRule{Host: "h", TrafficPolicy: &apinet.TrafficPolicy{
		OutlierDetection: &apinet.OutlierDetection{Interval: durationpb.New(1e9), Consecutive_5XxErrors: wrapperspb.UInt32(3)}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(byte(0), seed)
	f.Add(byte(3), []byte{0x0a, 0x02, 0x22, 0x00})
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		m := kinds[int(kind)%len(kinds)]()
		if proto.Unmarshal(data, m) != nil {
			return
		}
		checkSame(t, m)
	})
}
