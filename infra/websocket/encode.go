package websocket

import (
	"encoding/json"
	"reflect"
)

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// marshal encodes a transport message. gqlgen's messages carry the response
// as an already-encoded json.RawMessage field named Payload; encoding/json
// would validate and re-compact those bytes, the largest cost of streaming
// output. marshal encodes the message without its payload and splices the
// payload in as it is. Any other value is encoded normally.
func marshal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return json.Marshal(v)
	}
	field, ok := rv.Type().FieldByName("Payload")
	if !ok || field.Type != rawMessageType || field.Tag.Get("json") != "payload,omitempty" {
		return json.Marshal(v)
	}
	payload := rv.FieldByIndex(field.Index).Bytes()
	if len(payload) == 0 {
		return json.Marshal(v)
	}
	head := reflect.New(rv.Type()).Elem()
	head.Set(rv)
	head.FieldByIndex(field.Index).SetBytes(nil)
	b, err := json.Marshal(head.Interface())
	if err != nil || len(b) < 2 || b[len(b)-1] != '}' {
		return json.Marshal(v)
	}
	out := make([]byte, 0, len(b)+len(payload)+12)
	out = append(out, b[:len(b)-1]...)
	if len(b) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"payload":`...)
	out = append(out, payload...)
	return append(out, '}'), nil
}
