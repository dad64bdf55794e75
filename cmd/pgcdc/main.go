// Command pgcdc streams PostgreSQL changes to Kafka as Debezium-compatible events.
package main

import (
	"fmt"
	"os"

	"github.com/pgcdc/pgcdc/pkg/version"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: pgcdc version")
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Println("pgcdc", version.String())
		return 0
	default:
		fmt.Fprintf(os.Stderr, "pgcdc: unknown command %q\n", args[0])
		return 2
	}
}
