package event

import (
	"fmt"
	"strconv"
	"unicode/utf16"
)

// Name adjustment as Debezium 3.6 does it for schema.name.adjustment.mode and
// field.name.adjustment.mode (debezium-connector-common io.debezium.schema.SchemaNameAdjuster,
// FieldNameUnderscoreReplacementFunction, UnicodeReplacementFunction,
// FieldNameUnicodeReplacementFunction; debezium-api ReplacementFunction). Debezium works on
// Java chars (UTF-16 code units): a character outside the Basic Multilingual Plane is two units,
// each replaced on its own.

// Name adjustment modes.
const (
	AdjustNone        = "none"
	AdjustAvro        = "avro"
	AdjustAvroUnicode = "avro_unicode"
)

// nameAdjuster adjusts a schema or field name; nil means no adjustment.
type nameAdjuster struct {
	unicode bool // replace by _uXXXX (else by '_')
	field   bool // field names: '.' is invalid after the first character
}

func newNameAdjuster(mode string, field bool) (*nameAdjuster, error) {
	switch mode {
	case "", AdjustNone:
		return nil, nil
	case AdjustAvro:
		return &nameAdjuster{field: field}, nil
	case AdjustAvroUnicode:
		return &nameAdjuster{unicode: true, field: field}, nil
	}
	kind := "schema"
	if field {
		kind = "field"
	}
	return nil, fmt.Errorf("unknown %s name adjustment mode %q (allowed: none, avro, avro_unicode)", kind, mode)
}

func isASCIILetter(c uint16) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// validFirst: ReplacementFunction.isValidFirstCharacter ([A-Za-z_]); the unicode functions do
// not accept '_' (it is their escape character).
func (a *nameAdjuster) validFirst(c uint16) bool {
	return isASCIILetter(c) || (!a.unicode && c == '_')
}

// validNonFirst: the first-character set plus digits, and '.' for schema names.
func (a *nameAdjuster) validNonFirst(c uint16) bool {
	return a.validFirst(c) || (c >= '0' && c <= '9') || (!a.field && c == '.')
}

func (a *nameAdjuster) replace(dst []byte, c uint16) []byte {
	if !a.unicode {
		return append(dst, '_')
	}
	// UnicodeReplacementFunction: "_u" + Integer.toHexString(c), padded with "00" only when
	// the hex has at most two digits (so U+0100..U+0FFF get three digits).
	h := strconv.FormatUint(uint64(c), 16)
	if len(h) <= 2 {
		h = "00" + h
	}
	return append(append(dst, '_', 'u'), h...)
}

// adjust returns name adjusted (SchemaNameAdjuster.validFullname). A nil adjuster returns name.
func (a *nameAdjuster) adjust(name string) string {
	if a == nil || name == "" {
		return name
	}
	units := utf16.Encode([]rune(name))
	out := make([]byte, 0, len(name)+8)
	changed := false
	for i, c := range units {
		valid := a.validNonFirst(c)
		if i == 0 {
			valid = a.validFirst(c)
		}
		if valid {
			out = append(out, byte(c))
			continue
		}
		changed = true
		out = a.replace(out, c)
		// The underscore replacements keep a leading digit after its '_' ("1st" => "_1st"), so
		// that names differing only in it stay apart.
		if i == 0 && !a.unicode && c >= '0' && c <= '9' {
			out = append(out, byte(c))
		}
	}
	if !changed {
		return name
	}
	return string(out)
}

// AdjustSchemaName applies a schema.name.adjustment.mode ("none", "avro", "avro_unicode") to a
// Connect schema name, as the encoder does for <topic>.Key, .Value and .Envelope.
func AdjustSchemaName(mode, name string) (string, error) {
	a, err := newNameAdjuster(mode, false)
	if err != nil {
		return "", err
	}
	return a.adjust(name), nil
}
