// Command sync_producer is the seed's synchronous sarama producer: it waits for all in-sync
// replicas to acknowledge (acks=-1), picks a random partition for each message, sends
// "Hello World!" and prints the partition and offset the broker assigned to it.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/Shopify/sarama"
)

// defaultVersion is the Kafka version sarama is told it talks to. Debian's sarama (1.22) defaults
// to 0.8.2, which sends Produce v0 with the v0 message format and Fetch v0; Kafka 4.x removed
// those versions (KIP-896) and Rill serves Kafka 4.x's ranges. 2.2.0 is the newest version this
// sarama knows: it sends Produce v3 with RecordBatch v2, Fetch v4, ListOffsets v1, Metadata v5.
const defaultVersion = "2.2.0"

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated bootstrap brokers")
	topic := flag.String("topic", "test0", "topic to produce to")
	n := flag.Int("n", 1, "number of messages to send")
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
	// acks=-1: the send counts only once every in-sync replica has the message.
	config.Producer.RequiredAcks = sarama.WaitForAll
	// Each message goes to a partition picked at random.
	config.Producer.Partitioner = sarama.NewRandomPartitioner
	// A SyncProducer needs the successes channel to report partition and offset.
	config.Producer.Return.Successes = true

	producer, err := sarama.NewSyncProducer(strings.Split(*brokers, ","), config)
	if err != nil {
		fmt.Println("producer close err, ", err)
		os.Exit(1)
	}
	failed := false
	for i := 0; i < *n; i++ {
		msg := &sarama.ProducerMessage{
			Topic: *topic,
			Value: sarama.StringEncoder("Hello World!"),
		}
		partition, offset, err := producer.SendMessage(msg)
		if err != nil {
			fmt.Println("send message failed, ", err)
			failed = true
			break
		}
		// The seed's line: "partition ID:<p>, offset:<o>".
		fmt.Printf("分区ID:%v, offset:%v\n", partition, offset)
	}
	if err := producer.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "closing the producer:", err)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}
