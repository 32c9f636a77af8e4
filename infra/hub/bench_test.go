package hub_test

import (
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/hub"
)

// BenchmarkHub_Publish measures fan-out: each op publishes one event to
// subs subscribers, and every subscriber receives it. Receiving happens in
// the benchmark's goroutine, a buffer-full at a time, so that no subscriber
// lags and every op does the full fan-out. The "chan" runs do the same with
// plain buffered channels (one send and one receive per subscriber), the
// floor that the hub's locking and bookkeeping add to. msgs/s counts
// deliveries: ops × subscribers per second.
func BenchmarkHub_Publish(b *testing.B) {
	const buffer = 64
	e := domain.Event{Kind: domain.EventOutput, CommandID: "c1", UpTo: 1}
	for _, subs := range []int{1, 100, 1000} {
		b.Run("chan/subs="+strconv.Itoa(subs), func(b *testing.B) {
			chans := make([]chan domain.Event, subs)
			for i := range chans {
				chans[i] = make(chan domain.Event, buffer)
			}
			n := 0
			for b.Loop() {
				for _, ch := range chans {
					select {
					case ch <- e:
					default:
						b.Fatal("full")
					}
				}
				if n++; n == buffer {
					n = 0
					for _, ch := range chans {
						for range buffer {
							<-ch
						}
					}
				}
			}
			reportMsgs(b, subs)
		})
		b.Run("hub/subs="+strconv.Itoa(subs), func(b *testing.B) {
			h := hub.New()
			all := make([]domain.HubSubscription, subs)
			for i := range all {
				all[i] = h.Subscribe("t", buffer)
			}
			n := 0
			for b.Loop() {
				h.Publish("t", e)
				if n++; n == buffer {
					n = 0
					for _, sub := range all {
						for range buffer {
							<-sub.Events()
						}
					}
				}
			}
			for _, sub := range all {
				if sub.Lagged() {
					b.Fatal("a subscriber lagged: the numbers are wrong")
				}
				sub.Close()
			}
			reportMsgs(b, subs)
		})
	}
}

func reportMsgs(b *testing.B, subs int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)*float64(subs)/s, "msgs/s")
	}
}

// BenchmarkHub_IdleSubscription measures the memory an idle subscription
// holds: the heap growth from 10,000 subscriptions, each on a topic of its
// own (as for one command's output) or all on one topic, with the default
// buffer and with a buffer of one event. B/sub includes the channel buffer;
// B/sub-excl-buffer subtracts the buffer's events (not the allocator's
// rounding of them).
func BenchmarkHub_IdleSubscription(b *testing.B) {
	const n = 10000
	for _, bc := range []struct {
		name   string
		shared bool
		buffer int
	}{
		{"topic-per-sub/buffer=default", false, 0},
		{"shared-topic/buffer=default", true, 0},
		{"topic-per-sub/buffer=1", false, 1},
		{"shared-topic/buffer=1", true, 1},
	} {
		shared, buffer := bc.shared, bc.buffer
		bufferBytes := float64(max(buffer, 0)) * float64(unsafe.Sizeof(domain.Event{}))
		if buffer <= 0 {
			bufferBytes = float64(hub.DefaultBuffer) * float64(unsafe.Sizeof(domain.Event{}))
		}
		b.Run(bc.name, func(b *testing.B) {
			topics := make([]string, n)
			for i := range topics {
				topics[i] = domain.CommandTopic("01HZX3J6Q0ABCDEFGHJKMNPQR" + strconv.Itoa(i))
				if shared {
					topics[i] = domain.QueueTopic
				}
			}
			subs := make([]domain.HubSubscription, n)
			var total float64
			for b.Loop() {
				h := hub.New()
				before := heapAlloc()
				for i := range subs {
					subs[i] = h.Subscribe(topics[i], buffer)
				}
				total += float64(heapAlloc()-before) / n
				for _, sub := range subs {
					sub.Close()
				}
				clear(subs) // or the next round's "before" counts them
				runtime.KeepAlive(h)
			}
			perSub := total / float64(b.N)
			b.ReportMetric(perSub, "B/sub")
			b.ReportMetric(perSub-bufferBytes, "B/sub-excl-buffer")
		})
	}
}

func heapAlloc() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
