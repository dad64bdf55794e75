package kafkasink

import "github.com/segmentio/kafka-go"

// murmur2 is the Java client's default partitioner for keyed records:
// toPositive(murmur2(key)) % partitions (Consistent: a null key is not spread at random).
var murmur2 = kafka.Murmur2Balancer{Consistent: true}

// Partition returns the partition (one of partitions, 0..n-1) the Java client's default
// partitioner picks for key, so that a key lands where Debezium's records of it did; a null key
// goes to partition 0, so that the records of a keyless table keep their order.
func Partition(key []byte, partitions []int) int {
	if key == nil || len(partitions) == 0 {
		return 0
	}
	return murmur2.Balance(kafka.Message{Key: key}, partitions...)
}
