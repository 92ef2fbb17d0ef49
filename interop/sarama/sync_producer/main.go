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
	topic := flag.String("topic", "test0", "topic to produce to")
	n := flag.Int("n", 1, "number of messages to send")
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

	config := sarama.NewConfig()
	if kafkaVersion != nil {
		config.Version = *kafkaVersion
	}
	if err := scram.Secure(config, *tlsCA, *saslMechanism, *saslUser, *saslPassword); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
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
