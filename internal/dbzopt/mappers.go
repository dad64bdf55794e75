package dbzopt

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"fmt"
	"hash"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// MapperKind is what a column mapper does to the values of the columns it matches.
type MapperKind uint8

const (
	MapTruncate MapperKind = iota + 1 // column.truncate.to.N.chars
	MapMask                           // column.mask.with.N.chars
	MapHash                           // column.mask.hash.<algorithm>.with.salt.<salt> (strategy V1)
	MapHashV2                         // column.mask.hash.v2.<algorithm>.with.salt.<salt>
)

// MapperRule is one column mapper property: what it does and the columns it applies to.
type MapperRule struct {
	Property  string // as configured, e.g. "column.mask.with.8.chars"
	Kind      MapperKind
	N         int              // MapTruncate, MapMask: the number of characters
	Algorithm string           // MapHash, MapHashV2: as configured, e.g. "SHA-256"
	NewHash   func() hash.Hash // MapHash, MapHashV2
	Salt      string           // MapHash, MapHashV2
	Columns   Patterns         // over "<schema>.<table>.<column>"
}

var (
	truncateProp = regexp.MustCompile(`^column\.truncate\.to\.(\d+)\.chars$`)
	maskProp     = regexp.MustCompile(`^column\.mask\.with\.(\d+)\.chars$`)
	hashV2Prop   = regexp.MustCompile(`^column\.mask\.hash\.v2\.([^.]+)\.with\.salt\.(.+)$`)
	hashProp     = regexp.MustCompile(`^column\.mask\.hash\.([^.]+)\.with\.salt\.(.+)$`)
)

// ParseMappers parses Debezium's column mapper properties (property name => comma-separated
// regular expressions over "<schema>.<table>.<column>") into rules in the order Debezium
// consults them: truncations, then masks, then hashes, then version-2 hashes (within a kind, by
// property name). The first rule matching a column applies to it.
func ParseMappers(props map[string]string) ([]MapperRule, error) {
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	var rules []MapperRule
	for _, name := range names {
		r := MapperRule{Property: name}
		switch {
		case truncateProp.MatchString(name):
			r.Kind = MapTruncate
		case maskProp.MatchString(name):
			r.Kind = MapMask
		case hashV2Prop.MatchString(name):
			r.Kind = MapHashV2
		case hashProp.MatchString(name):
			r.Kind = MapHash
		default:
			return nil, fmt.Errorf("%q is not a column mapper property: use column.truncate.to.<N>.chars, column.mask.with.<N>.chars, "+
				"column.mask.hash.<algorithm>.with.salt.<salt> or column.mask.hash.v2.<algorithm>.with.salt.<salt>", name)
		}
		switch r.Kind {
		case MapTruncate, MapMask:
			re := truncateProp
			if r.Kind == MapMask {
				re = maskProp
			}
			n, err := strconv.Atoi(re.FindStringSubmatch(name)[1])
			if err != nil || n > 1<<20 {
				return nil, fmt.Errorf("%s: the number of characters is out of range", name)
			}
			r.N = n
		case MapHash, MapHashV2:
			re := hashProp
			if r.Kind == MapHashV2 {
				re = hashV2Prop
			}
			m := re.FindStringSubmatch(name)
			r.Algorithm, r.Salt = m[1], m[2]
			if r.NewHash = HashAlgorithm(r.Algorithm); r.NewHash == nil {
				return nil, fmt.Errorf("%s: unknown hash algorithm %q (MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512, SHA-512/224, SHA-512/256, SHA3-224, SHA3-256, SHA3-384, SHA3-512)", name, r.Algorithm)
			}
		}
		list := SplitList(props[name])
		if len(list) == 0 {
			return nil, fmt.Errorf("%s: no columns (a comma-separated list of regular expressions over <schema>.<table>.<column>)", name)
		}
		cols, err := CompilePatterns(list)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r.Columns = cols
		rules = append(rules, r)
	}
	sort.SliceStable(rules, func(i, j int) bool { return mapperOrder(rules[i].Kind) < mapperOrder(rules[j].Kind) })
	return rules, nil
}

// mapperOrder is ColumnMappers.create's registration order.
func mapperOrder(k MapperKind) int {
	switch k {
	case MapTruncate:
		return 0
	case MapMask:
		return 1
	case MapHash:
		return 2
	}
	return 3
}

// HashAlgorithm returns the digest of a Java MessageDigest algorithm name (case-insensitive, with
// Java's aliases SHA, SHA1, SHA256 ...), or nil when pgcdc does not know it.
func HashAlgorithm(name string) func() hash.Hash {
	switch strings.ToUpper(name) {
	case "MD5":
		return md5.New
	case "SHA-1", "SHA1", "SHA":
		return sha1.New
	case "SHA-224", "SHA224":
		return sha256.New224
	case "SHA-256", "SHA256":
		return sha256.New
	case "SHA-384", "SHA384":
		return sha512.New384
	case "SHA-512", "SHA512":
		return sha512.New
	case "SHA-512/224", "SHA512/224":
		return sha512.New512_224
	case "SHA-512/256", "SHA512/256":
		return sha512.New512_256
	case "SHA3-224":
		return func() hash.Hash { return sha3.New224() }
	case "SHA3-256":
		return func() hash.Hash { return sha3.New256() }
	case "SHA3-384":
		return func() hash.Hash { return sha3.New384() }
	case "SHA3-512":
		return func() hash.Hash { return sha3.New512() }
	}
	return nil
}
