package redisstore

// Every Redis key the relay owns, besides asynq's own. They are stored
// data: renaming one forgets what was kept under the old name.
const prefix = "exam-relay:"

// sentKey marks a delivery about no single student (a staff digest) that
// Slack or Teams accepted; before the ledger, it marked every delivery.
func sentKey(delivery string) string { return prefix + "sent:" + delivery }

// scheduleKey is a student's ledger for an exam: the dates they were last
// told and what was delivered about them (ledger.go). Before the ledger it
// held the dates alone, as a string.
func scheduleKey(subjectID string) string { return prefix + "schedule:" + subjectID }

// claimKey names the task fanning out a student's registration for an
// exam, while it does.
func claimKey(subjectID string) string { return prefix + "fan-out-claim:" + subjectID }

// boardKey holds today's digest message for an exam at a destination.
func boardKey(destination, group, day string) string {
	return prefix + "digest-board:" + destination + ":" + group + ":" + day
}

// boardLockKey is held while one worker posts or updates that message.
func boardLockKey(destination, group, day string) string {
	return boardKey(destination, group, day) + ":lock"
}

// digestsKey indexes the digests with items or a batch waiting, by
// member "channel group", scored by when the first item came
// (digests.go); digestLastKey holds, by member, when the last came.
const (
	digestsKey    = prefix + "digests"
	digestLastKey = prefix + "digests:last"
)

// digestItemsKey holds a digest's items, oldest first; member is its
// name in digestsKey.
func digestItemsKey(member string) string { return prefix + "digest-items:" + member }

// digestBatchKey holds the batch cut from a digest's items until the
// queue has it: its id, then its items.
func digestBatchKey(member string) string { return prefix + "digest-batch:" + member }

// blockedKey holds every post to a destination while it asked to wait.
func blockedKey(scope, destination string) string {
	return prefix + scope + "-blocked:" + destination
}

// rateKey counts posts to a destination; redis_rate adds its own "rate:"
// in front.
func rateKey(scope, destination string) string {
	return prefix + scope + "-rate:" + destination
}

// strikesKey counts a destination's refusals in a row, for the backoff.
func strikesKey(scope, destination string) string {
	return prefix + scope + "-strikes:" + destination
}

// quotaKey holds the times of the sends to a destination in the last 24
// hours.
func quotaKey(scope, destination string) string {
	return prefix + scope + "-quota:" + destination
}

// historyStudentKey holds the history entries about one student, oldest
// first; tag is studentTag of their address.
func historyStudentKey(tag string) string { return prefix + "history:student:" + tag }

// historyStaffKey holds the history entries about an exam that name no
// student (staff digests), oldest first; tag is historyTag of the exam id.
func historyStaffKey(tag string) string { return prefix + "history:staff:" + tag }

// historyStudentsKey lists the students (their studentTag) with entries
// for one user id or exam (by "user" or "exam"), scored by their last
// entry's time; tag is historyTag of the id.
func historyStudentsKey(by, tag string) string { return prefix + "history:" + by + "-students:" + tag }

// firstHistoryEntryKey held one entry in the history's first layout.
// Nothing writes or reads that layout any more and its keys expire with
// the retention; until then Forget removes a student's entries from it,
// since they hold the address.
func firstHistoryEntryKey(id string) string { return prefix + "history:e:" + id }

// firstHistoryIndexKey listed the first layout's entry ids by address,
// user or exam (by "email", "user" or "exam"), by time; hash is relay.Hash
// of the value, the address lower-cased.
func firstHistoryIndexKey(by, hash string) string { return prefix + "history:" + by + ":" + hash }

// replicationProbeKey is written by the probe that WAIT follows; see
// Replicas.
const replicationProbeKey = prefix + "replication-probe"

// asynqTaskKey is where asynq v0.26 keeps a task: not ours, and read only
// to check that a master holds a task (replicas_test.go checks the name).
func asynqTaskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }
