// Command partition_consumer is the seed's partition consumer: it lists the partitions of a topic,
// consumes each one from the newest offset (or the oldest, with -oldest) in its own goroutine and
// prints every message. Unlike the seed, which runs forever, it can stop after -count messages or
// after -timeout.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"

	"../scram"
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
	topic := flag.String("topic", "test0", "topic to consume")
	oldest := flag.Bool("oldest", false, "start from the oldest offset instead of the newest")
	count := flag.Int("count", 0, "stop after this many messages (0: no limit)")
	timeout := flag.Duration("timeout", 0, "stop after this long (0: no limit); exit 1 if -count was not reached")
	version := flag.String("version", "", "Kafka version sarama assumes the broker speaks (default: sarama's own, 0.8.2)")
	verbose := flag.Bool("verbose", false, "log sarama's internals to stderr")
	saslUser := flag.String("sasl-user", "", "authenticate with SASL as this user")
	saslPassword := flag.String("sasl-password", "", "the -sasl-user's password")
	saslMechanism := flag.String("sasl-mechanism", "PLAIN", "PLAIN (sarama's default v0 handshake), SCRAM-SHA-256 or SCRAM-SHA-512")
	tlsCA := flag.String("tls-ca", "", "connect with TLS, trusting the CA certificates in this PEM file")
	flag.Parse()

	if *verbose {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}
	kafkaVersion, err := parseVersion(*version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad -version:", err)
		os.Exit(2)
	}
	start := sarama.OffsetNewest
	if *oldest {
		start = sarama.OffsetOldest
	}

	config := sarama.NewConfig()
	if kafkaVersion != nil {
		config.Version = *kafkaVersion
	}
	if err := scram.Secure(config, *tlsCA, *saslMechanism, *saslUser, *saslPassword); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	config.Consumer.Return.Errors = true

	consumer, err := sarama.NewConsumer(strings.Split(*brokers, ","), config)
	if err != nil {
		fmt.Println("Failed to start consumer:", err)
		os.Exit(1)
	}
	partitions, err := consumer.Partitions(*topic)
	if err != nil {
		fmt.Println("Failed to get the list of partitions:", err)
		os.Exit(1)
	}
	// On stderr, so that stdout carries only the seed's lines.
	fmt.Fprintf(os.Stderr, "partitions of %s: %v\n", *topic, partitions)

	// One goroutine per partition passes its messages to the main goroutine, which prints and
	// counts them; done tells the partition goroutines to stop, and stopped tells the main
	// goroutine that a partition consumer gave up by itself (sarama closes its Messages channel
	// after an error it cannot retry, such as OFFSET_OUT_OF_RANGE).
	messages := make(chan *sarama.ConsumerMessage)
	done := make(chan struct{})
	stopped := make(chan int32, len(partitions))
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	for _, partition := range partitions {
		pc, err := consumer.ConsumePartition(*topic, partition, start)
		if err != nil {
			fmt.Printf("Failed to start consumer for partition %d: %s\n", partition, err)
			os.Exit(1)
		}
		pcs = append(pcs, pc)
		wg.Add(1)
		go func(partition int32, pc sarama.PartitionConsumer) {
			defer wg.Done()
			errs := pc.Errors()
			for {
				select {
				case msg, ok := <-pc.Messages():
					if !ok {
						stopped <- partition
						return
					}
					select {
					case messages <- msg:
					case <-done:
						return
					}
				case cerr, ok := <-errs:
					if !ok {
						errs = nil // closed: a nil channel is never ready
						continue
					}
					fmt.Fprintln(os.Stderr, "consumer error:", cerr)
				case <-done:
					return
				}
			}
		}(partition, pc)
	}

	var deadline <-chan time.Time
	if *timeout > 0 {
		deadline = time.After(*timeout)
	}
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)

	seen := 0
	status := 0
loop:
	for *count == 0 || seen < *count {
		select {
		case msg := <-messages:
			seen++
			fmt.Printf("Partition:%d, Offset:%d, key:%s, value:%s\n",
				msg.Partition, msg.Offset, string(msg.Key), string(msg.Value))
		case <-deadline:
			if *count > 0 {
				fmt.Fprintf(os.Stderr, "timed out after %v with %d of %d messages\n", *timeout, seen, *count)
				status = 1
			}
			break loop
		case partition := <-stopped:
			fmt.Fprintf(os.Stderr, "the consumer of partition %d stopped after %d messages in all\n", partition, seen)
			status = 1
			break loop
		case <-interrupt:
			break loop
		}
	}

	close(done)
	wg.Wait()
	for _, pc := range pcs {
		pc.AsyncClose()
	}
	if err := consumer.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "closing the consumer:", err)
	}
	os.Exit(status)
}
