// Package dbzopt reads option values written the way Debezium and Kafka Connect write them, so
// that a configuration brought over from a Debezium connector means the same in pgcdc:
//
//   - lists of regular expressions (column.include.list, column.mask.with.N.chars ...): split on
//     commas not escaped by a backslash, each matched against the whole name, case-insensitively
//     (Debezium's RegExSplitter and Predicates.includes);
//   - replacement strings of RegexRouter and ByLogicalTableRouter with Java's syntax ($1, ${name},
//     backslash escapes; Matcher.appendReplacement);
//   - message.key.columns ("<table regex>:<column>,...;...");
//   - the column mapper property names (column.mask.with.N.chars,
//     column.mask.hash[.v2].<algorithm>.with.salt.<salt>, column.truncate.to.N.chars) and Java's
//     MessageDigest algorithm names;
//   - skipped.operations, ExtractNewRecordState's delete.tombstone.handling.mode and its
//     add.fields/add.headers references.
//
// Regular expressions are Go's (RE2): Java features RE2 lacks (look-around, back references) are
// an error naming the option, never a silent difference. The package has no pgcdc dependencies:
// config validates with it and pkg/route builds the transforms with it.
package dbzopt
