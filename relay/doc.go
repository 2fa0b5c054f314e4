// Package relay is the domain of exam-relay, on the standard library
// alone: a registration as Synap sends it and how it is decoded, its
// schedule, reminders and staff digests, the routes that decide how a
// student and staff are told, and the outcomes every part reports in.
//
// The packages beside it bring the outside world to it: webhook (HTTP),
// worker (the asynq handlers), redisstore (the relay's own Redis keys),
// email (SMTP) and slack. None of them is imported here.
package relay
