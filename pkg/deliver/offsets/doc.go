// Package offsets tracks one partition's records from the moment they are read until they are
// done (delivered, dead-lettered or skipped), and gives the offset that may be committed: the
// offset of the oldest record not done yet, or one past the newest record when all are done.
// Records finish out of order (events of different keys are delivered in parallel); the commit
// position only moves over a contiguous run of finished records, so a commit never covers a
// record that is still in progress, and a restart redelivers at most the records between the
// committed offset and the newest read (at least once, duplicates bounded by what was pending).
package offsets
