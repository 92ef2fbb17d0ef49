// Command async_producer is the seed's asynchronous sarama producer: it writes a message to
// Input() every -interval and, in the same select loop, drains Successes() and Errors(); an
// AsyncProducer whose result channels are not read stops accepting input. Unlike the seed, which
// runs forever, it stops once every one of its -n messages has succeeded or failed.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Shopify/sarama"
)

// parseVersion returns the Kafka version to tell sarama, or nil for "" to keep sarama's own
// default (Debian's sarama 1.22 assumes Kafka 0.8.2 and sends Produce v0 with magic 0 messages,
// Fetch v0, ListOffsets v0 and Metadata v0, all of which Kafka 3.9 and Rill serve). -version
// 2.2.0, the newest this sarama knows, gives Produce v3 with RecordBatch v2 and Fetch v4.
func parseVersion(version string) (*sarama.KafkaVersion, error) {
	if version == "" {
		return nil, nil
	}
	v, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated bootstrap brokers")
	topic := flag.String("topic", "test0", "topic to produce to")
	n := flag.Int("n", 10, "number of messages to send (0: keep sending until killed, as the seed does)")
	interval := flag.Duration("interval", time.Second, "pause between two messages")
	timeout := flag.Duration("timeout", 0, "give up if the messages are not all accounted for by then (0: never)")
	version := flag.String("version", "", "Kafka version sarama assumes the broker speaks (default: sarama's own, 0.8.2)")
	verbose := flag.Bool("verbose", false, "log sarama's internals to stderr")
	flag.Parse()

	if *verbose {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}
	kafkaVersion, err := parseVersion(*version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad -version:", err)
		os.Exit(2)
	}

	config := sarama.NewConfig()
	if kafkaVersion != nil {
		config.Version = *kafkaVersion
	}
	// Without this the Successes() channel stays silent.
	config.Producer.Return.Successes = true
	config.Producer.Timeout = 5 * time.Second

	producer, err := sarama.NewAsyncProducer(strings.Split(*brokers, ","), config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the producer:", err)
		os.Exit(1)
	}

	var deadline <-chan time.Time
	if *timeout > 0 {
		deadline = time.After(*timeout)
	}
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	random := rand.New(rand.NewSource(time.Now().UnixNano()))

	sent, successes, failures := 0, 0, 0
	// The next message, built on a tick and handed to Input() when the producer takes it. While
	// it waits, input is Input(); otherwise it is nil, and a nil channel never sends in a select.
	var next *sarama.ProducerMessage
	var input chan<- *sarama.ProducerMessage
	// Send the first message at once rather than after one interval.
	tick := make(chan time.Time, 1)
	tick <- time.Now()

loop:
	for *n == 0 || successes+failures < *n {
		select {
		case <-tick:
			tick = nil
		case <-ticker.C:
		case input <- next:
			sent++
			next, input = nil, nil
			continue
		case msg := <-producer.Successes():
			successes++
			value, _ := msg.Value.Encode()
			fmt.Printf("success: partition=%d offset=%d value=%s\n", msg.Partition, msg.Offset, value)
			continue
		case perr := <-producer.Errors():
			failures++
			fmt.Printf("error: %v\n", perr.Err)
			continue
		case <-deadline:
			fmt.Fprintf(os.Stderr, "timed out after %v with %d of %d messages accounted for\n",
				*timeout, successes+failures, *n)
			break loop
		}
		// A tick: build the next message, unless the previous one still waits or all are sent.
		if next == nil && (*n == 0 || sent < *n) {
			v := "async: " + strconv.Itoa(random.Intn(10000))
			fmt.Println(v)
			next = &sarama.ProducerMessage{Topic: *topic, Value: sarama.ByteEncoder(v)}
			input = producer.Input()
		}
	}

	// Close flushes what is buffered; the loop above already saw every result it waited for.
	if err := producer.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "closing the producer:", err)
	}
	fmt.Printf("done successes=%d errors=%d\n", successes, failures)
	if successes != *n {
		os.Exit(1)
	}
}
