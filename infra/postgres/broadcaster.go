package postgres

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
)

// channelSQL names the notification channel of the rdev deployment whose
// tables are in the session's current schema: "rdev_events_" and a digest of
// the schema's name. Notification channels span the database, so
// deployments in different schemas of one database (see WithSchema) would
// otherwise hear each other.
const channelSQL = `'rdev_events_' || left(md5(current_schema()), 16)`

// maxPayload is Postgres's limit on a NOTIFY payload (8000 bytes, less one).
const maxPayload = 7999

// listenBuffer is how many notifications wait for Listen's handler before
// pgdriver drops new ones.
const listenBuffer = 4096

// eventKinds names the kinds of domain.Event on the wire, so that processes
// of different versions agree even if the constants are renumbered.
var eventKinds = map[domain.EventKind]string{
	domain.EventOutput: "OUTPUT",
	domain.EventStatus: "STATUS",
	domain.EventCancel: "CANCEL",
	domain.EventQueued: "QUEUED",
	domain.EventKey:    "KEY",
}

// Broadcaster carries hub events to the other rdev processes sharing the
// database (and schema), with Postgres NOTIFY on one channel. Only what names the change
// travels (topic, kind, command or key ID, highest stored output seq), never output
// or a command's fields: receivers read those from storage. Each Broadcaster
// has a random origin, so that its Listen skips what it broadcast itself.
type Broadcaster struct {
	db     *bun.DB
	origin string
}

var _ domain.Broadcaster = (*Broadcaster)(nil)

// notification is a NOTIFY payload, as JSON.
type notification struct {
	Origin    string `json:"origin"`
	Topic     string `json:"topic"`
	Kind      string `json:"kind"`
	CommandID string `json:"commandId,omitempty"`
	UpTo      int64  `json:"upTo,omitempty"`
	KeyID     string `json:"keyId,omitempty"`
}

// NewBroadcaster returns a broadcaster on store's database, which must be a
// Postgres one opened by Open. It holds no connection until Listen.
func NewBroadcaster(store *bunstore.Store) *Broadcaster {
	return &Broadcaster{db: store.DB(), origin: rand.Text()}
}

// Origin returns the random ID that marks this broadcaster's notifications.
func (b *Broadcaster) Origin() string {
	return b.origin
}

// Broadcast sends e's kind, command ID and UpTo, under topic, to every
// process listening on the database, this one included (its Listen skips
// it). Delivery is at most once: a process whose listening connection is
// down at the time misses it. It returns EINVALID for an unknown event kind
// or a topic too long for a notification.
func (b *Broadcaster) Broadcast(ctx context.Context, topic string, e domain.Event) error {
	kind, ok := eventKinds[e.Kind]
	if !ok {
		return domain.Errorf(domain.EINVALID, "broadcast: unknown event kind %d", e.Kind)
	}
	n := notification{Origin: b.origin, Topic: topic, Kind: kind, CommandID: e.CommandID, UpTo: e.UpTo, KeyID: e.KeyID}
	if n.CommandID == "" && e.Command != nil {
		n.CommandID = e.Command.ID
	}
	payload, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	if len(payload) > maxPayload {
		return domain.Errorf(domain.EINVALID, "broadcast: the notification would have %d bytes, over Postgres's limit of %d", len(payload), maxPayload)
	}
	if _, err := b.db.ExecContext(ctx, "SELECT pg_notify("+channelSQL+", ?)", string(payload)); err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	return nil
}

// Channel returns the name of the notification channel of the deployment
// whose tables the database's search_path finds.
func (b *Broadcaster) Channel(ctx context.Context) (string, error) {
	var name string
	if err := b.db.NewRaw("SELECT "+channelSQL).Scan(ctx, &name); err != nil {
		return "", fmt.Errorf("notification channel: %w", err)
	}
	return name, nil
}

// Listen calls handle with every event other processes broadcast, in the
// order they arrive, until ctx ends; then it returns nil. handle runs on
// Listen's goroutine and should be quick: while it runs, up to a few
// thousand notifications wait, and later ones are dropped. Events carry only
// Kind, CommandID and UpTo: a receiver loads commands and output from
// storage.
//
// Listen holds one connection of its own, outside the store's pool. It
// waits for notifications without a read deadline (pgdriver's read timeout
// does not apply), pings it when idle, and reconnects when it breaks,
// listening again; notifications sent while it was down are lost. It
// returns an error only if it cannot start listening.
func (b *Broadcaster) Listen(ctx context.Context, handle func(topic string, e domain.Event)) error {
	channel, err := b.Channel(ctx)
	if err != nil {
		return err
	}
	ln := pgdriver.NewListener(b.db)
	defer func() { _ = ln.Close() }()
	if err := ln.Listen(ctx, channel); err != nil {
		return fmt.Errorf("listen on %s: %w", channel, err)
	}
	ch := ln.Channel(pgdriver.WithChannelSize(listenBuffer))
	for {
		select {
		case <-ctx.Done():
			return nil
		case n, ok := <-ch:
			if !ok {
				return errors.New("listen: the listener closed")
			}
			if topic, e, ok := b.decode(channel, n); ok {
				handle(topic, e)
			}
		}
	}
}

// decode turns a notification from another origin into a hub event. It
// reports false for this broadcaster's own notifications and for ones it
// cannot read (from a newer version, say).
func (b *Broadcaster) decode(channel string, n pgdriver.Notification) (string, domain.Event, bool) {
	if n.Channel != channel {
		return "", domain.Event{}, false
	}
	var msg notification
	if err := json.Unmarshal([]byte(n.Payload), &msg); err != nil || msg.Origin == b.origin || msg.Topic == "" {
		return "", domain.Event{}, false
	}
	for kind, name := range eventKinds {
		if name == msg.Kind {
			return msg.Topic, domain.Event{Kind: kind, CommandID: msg.CommandID, UpTo: msg.UpTo, KeyID: msg.KeyID}, true
		}
	}
	return "", domain.Event{}, false
}
