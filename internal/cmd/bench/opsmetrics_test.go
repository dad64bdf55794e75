package main

import (
	"strings"
	"testing"
)

func TestSumMetric(t *testing.T) {
	cases := []struct {
		name, text string
		want       int64
		wantErr    bool
	}{
		{"labels summed", "# HELP x\npgcdc_kafka_write_duration_seconds_count{topic=\"a\"} 10\npgcdc_kafka_write_duration_seconds_count{topic=\"b\"} 5\n", 15, false},
		{"no labels", "pgcdc_kafka_write_duration_seconds_count 7\n", 7, false},
		{"longer names ignored", "pgcdc_kafka_write_duration_seconds_count_extra 99\npgcdc_kafka_write_duration_seconds_count 3\n", 3, false},
		{"float", "pgcdc_kafka_write_duration_seconds_count 1.2e+06\n", 1200000, false},
		{"missing", "pgcdc_other 1\n", 0, true},
		{"bad value", "pgcdc_kafka_write_duration_seconds_count x\n", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := sumMetric(strings.NewReader(c.text), "pgcdc_kafka_write_duration_seconds_count")
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("got %d, %v; want %d, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
}
