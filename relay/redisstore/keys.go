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

// historyEntryKey holds one history entry.
func historyEntryKey(id string) string { return prefix + "history:e:" + id }

// historyIndexKey lists the entries about one address, user or exam (by
// "email", "user" or "exam"), by time; value is a hash.
func historyIndexKey(by, value string) string { return prefix + "history:" + by + ":" + value }

// replicationProbeKey is written by the probe that WAIT follows; see
// Replicas.
const replicationProbeKey = prefix + "replication-probe"

// asynqTaskKey is where asynq v0.26 keeps a task: not ours, and read only
// to check that a master holds a task (replicas_test.go checks the name).
func asynqTaskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }
