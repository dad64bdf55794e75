package event

import "unicode/utf8"

// SanitizeTopic applies Debezium's topic-name rule
// (AbstractTopicNamingStrategy.sanitizedTopicName / isValidTopicNameCharacter):
// every character outside [a-zA-Z0-9._-] becomes '_'. Debezium works on Java
// chars (UTF-16 code units), so a character outside the Basic Multilingual
// Plane becomes "__"; invalid UTF-8 bytes decode to U+FFFD and become "_". A name longer than
// Kafka's 249 characters is cut there, and "." and ".." become "_" and "__".
func SanitizeTopic(name string) string {
	s := sanitizeChars(name)
	switch {
	case len(s) > maxTopicLength:
		return s[:maxTopicLength] // ASCII by now
	case s == ".":
		return "_"
	case s == "..":
		return "__"
	}
	return s
}

// maxTopicLength is Kafka's (and Debezium's AbstractTopicNamingStrategy's) limit.
const maxTopicLength = 249

func sanitizeChars(name string) string {
	ok := true
	for i := 0; i < len(name); i++ {
		if !validTopicByte(name[i]) {
			ok = false
			break
		}
	}
	if ok {
		return name
	}
	out := make([]byte, 0, len(name))
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			if validTopicByte(c) {
				out = append(out, c)
			} else {
				out = append(out, '_')
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(name[i:])
		if r > 0xFFFF {
			out = append(out, '_', '_')
		} else {
			out = append(out, '_')
		}
		i += size
	}
	return string(out)
}

func validTopicByte(c byte) bool {
	return c == '.' || c == '_' || c == '-' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
