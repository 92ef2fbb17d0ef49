// Command consumer_group is the seed's consumer group: it joins group -group (group-1), consumes
// topic -topic (test0), prints every message as the seed's consumers do and marks it consumed, and
// sarama commits the marked offsets every second. A group with no committed offset for a partition
// starts there from the newest offset (-oldest: the oldest), as in the seed.
//
// The seed used bsm/sarama-cluster, which Debian does not ship; this is the same consumer written
// with sarama's own ConsumerGroup API (sarama 1.19 and later; Debian ships 1.22.1). Where the seed
// read sarama-cluster's Notifications() channel, this prints the partitions it is given (claims)
// on stderr at the start of each session.
//
// Unlike the seed, which runs forever, it stops after -count messages or after -timeout. On stop
// it ends its session, which commits the marked offsets one last time, and leaves the group.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

// defaultVersion is the Kafka version sarama is told it talks to. sarama's ConsumerGroup needs
// at least 0.10.2 (its own default, 0.8.2, is refused by NewConsumerGroup). At 2.1.0 this sarama
// sends FindCoordinator v0, JoinGroup v1, SyncGroup, Heartbeat and LeaveGroup v0, OffsetFetch v1,
// Fetch v4 and, with Consumer.Offsets.Retention at its default of 0, OffsetCommit v1 (a commit
// timestamp per partition, Kafka 3.9 serves it; Kafka 4 removed it).
const defaultVersion = "2.1.0"

// handler prints and marks the messages of every claim, and counts them all.
type handler struct {
	count int // 0: no limit

	mu   sync.Mutex
	seen int
	done chan struct{} // closed once count messages have been printed
}

// Setup reports the partitions this member was given; sarama-cluster's notifications in the seed.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	fmt.Fprintf(os.Stderr, "session: member %s generation %d claims %v\n",
		sess.MemberID(), sess.GenerationID(), sess.Claims())
	return nil
}

func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	fmt.Fprintf(os.Stderr, "session end: generation %d\n", sess.GenerationID())
	return nil
}

// take prints msg unless -count messages were printed already; last tells that it was the
// count-th.
func (h *handler) take(msg *sarama.ConsumerMessage) (ok bool, last bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count > 0 && h.seen >= h.count {
		return false, false
	}
	h.seen++
	fmt.Printf("Partition:%d, Offset:%d, key:%s, value:%s\n",
		msg.Partition, msg.Offset, string(msg.Key), string(msg.Value))
	return true, h.count > 0 && h.seen == h.count
}

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil // a rebalance, or the session is ending
			}
			printed, last := h.take(msg)
			if !printed {
				// Past -count: neither printed nor marked, so not committed either.
				return nil
			}
			// Marked, not committed: sarama commits what is marked every CommitInterval and
			// when the session ends. A crash in between loses the marks since the last commit
			// (the seed says as much), and those messages come again.
			sess.MarkMessage(msg, "")
			if last {
				close(h.done)
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated bootstrap brokers")
	group := flag.String("group", "group-1", "consumer group to join")
	topic := flag.String("topic", "test0", "topic to consume")
	oldest := flag.Bool("oldest", false, "start from the oldest offset where the group has none committed (default: the newest)")
	count := flag.Int("count", 0, "stop after this many messages (0: no limit)")
	timeout := flag.Duration("timeout", 0, "stop after this long (0: no limit); exit 1 if -count was not reached")
	version := flag.String("version", defaultVersion, "Kafka version sarama assumes the broker speaks")
	verbose := flag.Bool("verbose", false, "log sarama's internals to stderr")
	flag.Parse()

	if *verbose {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}
	kafkaVersion, err := sarama.ParseKafkaVersion(*version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad -version:", err)
		os.Exit(2)
	}

	config := sarama.NewConfig()
	config.Version = kafkaVersion
	config.Consumer.Return.Errors = true
	// The seed's settings: commit the marked offsets every second, and start from the newest
	// offset where the group has committed none.
	config.Consumer.Offsets.CommitInterval = time.Second
	config.Consumer.Offsets.Initial = sarama.OffsetNewest
	if *oldest {
		config.Consumer.Offsets.Initial = sarama.OffsetOldest
	}

	consumerGroup, err := sarama.NewConsumerGroup(strings.Split(*brokers, ","), *group, config)
	if err != nil {
		fmt.Println("Failed open consumer:", err)
		os.Exit(1)
	}
	go func() {
		for err := range consumerGroup.Errors() {
			fmt.Fprintln(os.Stderr, "consumer group error:", err)
		}
	}()

	h := &handler{count: *count, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	// Consume returns at every rebalance; a member calls it again to rejoin, until it stops.
	consumed := make(chan error, 1)
	go func() {
		for {
			err := consumerGroup.Consume(ctx, []string{*topic}, h)
			if ctx.Err() != nil {
				consumed <- nil
				return
			}
			if err != nil {
				consumed <- err
				return
			}
		}
	}()

	var deadline <-chan time.Time
	if *timeout > 0 {
		deadline = time.After(*timeout)
	}
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)

	status := 0
	select {
	case <-h.done:
	case err := <-consumed:
		fmt.Fprintln(os.Stderr, "consuming failed:", err)
		status = 1
	case <-deadline:
		if *count > 0 {
			h.mu.Lock()
			seen := h.seen
			h.mu.Unlock()
			fmt.Fprintf(os.Stderr, "timed out after %v with %d of %d messages\n", *timeout, seen, *count)
			status = 1
		}
	case <-interrupt:
	}

	// Ending the session commits the marked offsets one last time; Close leaves the group.
	cancel()
	if status == 0 {
		if err := <-consumed; err != nil {
			fmt.Fprintln(os.Stderr, "consuming failed:", err)
			status = 1
		}
	}
	if err := consumerGroup.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "closing the consumer group:", err)
		status = 1
	}
	os.Exit(status)
}
