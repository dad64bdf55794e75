package civil

import (
	"testing"
	"time"
)

func TestAgainstTimePackage(t *testing.T) {
	cases := []struct{ y, m, d int64 }{
		{1970, 1, 1}, {1969, 12, 31}, {2000, 2, 29}, {1900, 3, 1}, {2026, 12, 7}, {1, 1, 1}, {0, 12, 31}, {-4713, 11, 24}, {9999, 12, 31},
	}
	for _, c := range cases {
		want := time.Date(int(c.y), time.Month(c.m), int(c.d), 0, 0, 0, 0, time.UTC).Unix() / 86400
		if c.y < 1970 && time.Date(int(c.y), time.Month(c.m), int(c.d), 0, 0, 0, 0, time.UTC).Unix()%86400 != 0 {
			want--
		}
		if got := DaysFromCivil(c.y, c.m, c.d); got != want {
			t.Errorf("DaysFromCivil(%d-%d-%d) = %d, want %d", c.y, c.m, c.d, got, want)
		}
		if y, m, d := FromDays(want); y != c.y || m != c.m || d != c.d {
			t.Errorf("FromDays(%d) = %d-%d-%d, want %d-%d-%d", want, y, m, d, c.y, c.m, c.d)
		}
	}
}

func TestRoundTripFarRange(t *testing.T) {
	// PostgreSQL's date range is 4713 BC to 5874897 AD; Debezium's infinity sentinels go further.
	for z := int64(-2_200_000_000); z <= 2_200_000_000; z += 9_876_543 {
		y, m, d := FromDays(z)
		if back := DaysFromCivil(y, m, d); back != z {
			t.Fatalf("FromDays(%d) = %d-%d-%d, back %d", z, y, m, d, back)
		}
	}
}

func TestFloorDiv(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{{7, 2, 3}, {-7, 2, -4}, {7, -2, -4}, {-7, -2, 3}, {-6, 2, -3}, {0, 5, 0}} {
		if got := FloorDiv(c.a, c.b); got != c.want {
			t.Errorf("FloorDiv(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
