package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
)

// A Setting is one thing the relay can be told through the environment.
// Settings is the single list the loader, `relay check` and the README
// table are made from.
type Setting struct {
	Env     string
	YAML    string
	Secret  bool
	Summary string
	get     func(*Config) string
	set     func(*Config, string) error
}

var Settings = []Setting{
	str("RELAY_HTTP_ADDR", "http_addr", false, "address the webhook receiver listens on",
		func(c *Config) *string { return &c.HTTPAddr }),
	{Env: "RELAY_REDIS_URL", YAML: "redis_url", Secret: true,
		Summary: "redis://, rediss:// or redis-sentinel:// URL; empty runs an in-memory Redis that keeps nothing (relay run only)",
		get:     func(c *Config) string { return redactRedisURL(c.RedisURL) },
		set:     func(c *Config, v string) error { c.RedisURL = v; return nil }},
	integer("RELAY_REDIS_MIN_REPLICAS", "redis.min_replicas", "Redis replicas that must hold a registration before the receiver relies on Redis alone; if fewer do within a second, a copy is kept in the spool folder until they do. 0: don't wait",
		func(c *Config) *int { return &c.Redis.MinReplicas }),
	str("RELAY_WEBHOOK_USERNAME", "webhook.username", false, "Basic auth username Synap sends",
		func(c *Config) *string { return &c.Webhook.Username }),
	secret("RELAY_WEBHOOK_PASSWORD", "webhook.password", "Basic auth password Synap sends; empty on embedded defaults generates one and prints it",
		func(c *Config) *string { return &c.Webhook.Password }),
	{Env: "RELAY_WEBHOOK_SECRETS", YAML: "webhook.secrets", Secret: true,
		Summary: "Standard Webhooks signing secrets (whsec_…, comma-separated); when set, every request must be signed",
		get: func(c *Config) string {
			if len(c.Webhook.Secrets) == 0 {
				return ""
			}
			return fmt.Sprintf("[%d redacted]", len(c.Webhook.Secrets))
		},
		set: func(c *Config, v string) error {
			c.Webhook.Secrets = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
			return nil
		}},
	str("RELAY_TLS_CERT", "tls.cert", false, "PEM certificate file: serve HTTPS without a proxy",
		func(c *Config) *string { return &c.TLS.Cert }),
	str("RELAY_TLS_KEY", "tls.key", false, "PEM private key file for RELAY_TLS_CERT",
		func(c *Config) *string { return &c.TLS.Key }),
	{Env: "RELAY_SMTP_URL", YAML: "smtp.url", Secret: true,
		Summary: "smtp://user:pass@host:587?tls=starttls (tls=none|starttls|tls); auth=xoauth2 logs in as the user with an OAuth2 token instead of a password; empty writes .eml files to the outbox folder",
		get:     func(c *Config) string { return redactURL(c.SMTP.URL) },
		set:     func(c *Config, v string) error { c.SMTP.URL = v; return nil }},
	integer("RELAY_SMTP_POOL_SIZE", "smtp.pool_size", "SMTP connections kept open and reused",
		func(c *Config) *int { return &c.SMTP.PoolSize }),
	{Env: "RELAY_SMTP_RATE", YAML: "smtp.rate",
		Summary: "emails the provider takes per second, minute or hour (14/s, 30/m, 500/h), shared by every worker; empty: no limit",
		get:     func(c *Config) string { return c.SMTP.Rate.String() },
		set: func(c *Config, v string) (err error) {
			c.SMTP.Rate, err = ParseRate(v)
			return err
		}},
	integer("RELAY_SMTP_DAILY_LIMIT", "smtp.daily_limit", "emails per rolling 24 hours, shared by every worker; past it emails wait; 0: none",
		func(c *Config) *int { return &c.SMTP.DailyLimit }),
	// OAuth2 login to SMTP (RELAY_SMTP_URL with auth=xoauth2).
	str("RELAY_SMTP_OAUTH_TOKEN_URL", "smtp.oauth.token_url", false, "OAuth2 token endpoint for auth=xoauth2, such as https://login.microsoftonline.com/TENANT/oauth2/v2.0/token",
		func(c *Config) *string { return &c.SMTP.OAuth.TokenURL }),
	str("RELAY_SMTP_OAUTH_CLIENT_ID", "smtp.oauth.client_id", false, "application (client) id the relay is registered with for auth=xoauth2",
		func(c *Config) *string { return &c.SMTP.OAuth.ClientID }),
	secret("RELAY_SMTP_OAUTH_CLIENT_SECRET", "smtp.oauth.client_secret", "that application's client secret (the value, not its id)",
		func(c *Config) *string { return &c.SMTP.OAuth.ClientSecret }),
	{Env: "RELAY_SMTP_OAUTH_SCOPES", YAML: "smtp.oauth.scopes",
		Summary: "scopes the token is asked for, comma-separated; the default is Microsoft 365's",
		get:     func(c *Config) string { return c.SMTP.OAuth.Scopes.String() },
		set:     func(c *Config, v string) error { c.SMTP.OAuth.Scopes = parseScopes(v); return nil }},
	str("RELAY_OUTBOX_DIR", "smtp.outbox_dir", false, "folder for .eml files when no SMTP server is configured",
		func(c *Config) *string { return &c.SMTP.OutboxDir }),
	str("RELAY_EMAIL_FROM", "email.from", false, "From address of student emails",
		func(c *Config) *string { return &c.Email.From }),
	str("RELAY_EMAIL_REPLY_TO", "email.reply_to", false, "Reply-To address of student emails",
		func(c *Config) *string { return &c.Email.ReplyTo }),
	str("RELAY_DKIM_KEY_FILE", "email.dkim.key_file", false, "PEM private key (RSA or Ed25519) to DKIM-sign every email for its From domain; empty: not signed",
		func(c *Config) *string { return &c.Email.DKIM.KeyFile }),
	str("RELAY_DKIM_SELECTOR", "email.dkim.selector", false, "DKIM selector: the public key is published at SELECTOR._domainkey.DOMAIN",
		func(c *Config) *string { return &c.Email.DKIM.Selector }),
	{Env: "RELAY_SLACK_WEBHOOK_URL", YAML: "slack.webhook_url", Secret: true,
		Summary: "Slack incoming-webhook URL for staff alerts",
		get:     func(c *Config) string { return redactURL(c.Slack.WebhookURL) },
		set:     func(c *Config, v string) error { c.Slack.WebhookURL = v; return nil }},
	secret("RELAY_SLACK_TOKEN", "slack.token", "Slack bot token (xoxb-…), used with RELAY_SLACK_CHANNEL instead of a webhook",
		func(c *Config) *string { return &c.Slack.Token }),
	str("RELAY_SLACK_CHANNEL", "slack.channel", false, "channel id or name the bot posts to",
		func(c *Config) *string { return &c.Slack.Channel }),
	str("RELAY_SLACK_API_URL", "slack.api_url", false, "Slack Web API base URL (tests and proxies)",
		func(c *Config) *string { return &c.Slack.APIURL }),
	str("RELAY_SLACK_MODE", "slack.mode", false, "digest (one message per exam per burst), each (one per registration) or off",
		func(c *Config) *string { return &c.Slack.Mode }),
	// Microsoft Teams, beside or instead of Slack.
	{Env: "RELAY_TEAMS_WEBHOOK_URL", YAML: "teams.webhook_url", Secret: true,
		Summary: "URL of a Teams workflow (\"When a Teams webhook request is received\") for staff alerts, beside or instead of Slack; empty: none",
		get:     func(c *Config) string { return redactURL(c.Teams.WebhookURL) },
		set:     func(c *Config, v string) error { c.Teams.WebhookURL = v; return nil }},
	str("RELAY_TEAMS_MODE", "teams.mode", false, "digest (one card per exam per burst), each (one per registration) or off, once a Teams URL is set",
		func(c *Config) *string { return &c.Teams.Mode }),
	duration("RELAY_DIGEST_GRACE", "slack.digest.grace", "a digest is posted once no registration for its exam came for this long",
		func(c *Config) *Duration { return &c.Slack.Digest.Grace }),
	duration("RELAY_DIGEST_MAX_DELAY", "slack.digest.max_delay", "…or this long after its first registration, whichever is sooner",
		func(c *Config) *Duration { return &c.Slack.Digest.MaxDelay }),
	integer("RELAY_DIGEST_MAX_SIZE", "slack.digest.max_size", "…or once it holds this many registrations",
		func(c *Config) *int { return &c.Slack.Digest.MaxSize }),
	integer("RELAY_DIGEST_LIST", "slack.digest.list", "students a digest names before \"and N more\"",
		func(c *Config) *int { return &c.Slack.Digest.List }),
	durations("RELAY_REMINDER_BEFORE_OPEN", "reminders.before_open", "reminder emails this long before an exam opens, comma-separated (24h,1h); empty: none",
		func(c *Config) *Durations { return &c.Reminders.BeforeOpen }),
	durations("RELAY_REMINDER_BEFORE_CLOSE", "reminders.before_close", "reminder emails this long before an exam closes; empty: none",
		func(c *Config) *Durations { return &c.Reminders.BeforeClose }),
	str("RELAY_TIMEZONE", "timezone", false, "IANA time zone dates are shown in, unless a route or the student's attribute says otherwise",
		func(c *Config) *string { return &c.TimeZone }),
	str("RELAY_TIMEZONE_ATTRIBUTE", "timezone_attribute", false, "custom attribute that holds a student's own IANA zone; used when valid; empty: none",
		func(c *Config) *string { return &c.TimeZoneAttribute }),
	str("RELAY_LANGUAGE", "language", false, "language of dates and default templates: en, fr, de, es, it, nl, pl, pt, or a regional form such as en-US",
		func(c *Config) *string { return &c.Language }),
	str("RELAY_TEMPLATES_DIR", "templates_dir", false, "folder whose *.tmpl files replace the default templates of the same name",
		func(c *Config) *string { return &c.TemplatesDir }),
	duration("RELAY_RETENTION", "retention", "how long a registration is remembered to recognise a repeat",
		func(c *Config) *Duration { return &c.Retention }),
	duration("RELAY_HISTORY_RETENTION", "history.retention", "how long each delivery is kept in the history (relay history, the admin page)",
		func(c *Config) *Duration { return &c.History.Retention }),
	str("RELAY_ADMIN_USERNAME", "admin.username", false, "Basic auth username of the admin page",
		func(c *Config) *string { return &c.Admin.Username }),
	secret("RELAY_ADMIN_PASSWORD", "admin.password", "Basic auth password of the admin page at /admin/ (its own, never the webhook's); empty: no admin page",
		func(c *Config) *string { return &c.Admin.Password }),
	str("RELAY_SPOOL_DIR", "spool.dir", false, "folder where the receiver keeps registrations (fsynced) while Redis is unreachable",
		func(c *Config) *string { return &c.Spool.Dir }),
	integer("RELAY_SPOOL_MAX", "spool.max", "registrations the spool holds before the receiver answers 503",
		func(c *Config) *int { return &c.Spool.Max }),
	integer("RELAY_WORKER_CONCURRENCY", "worker.concurrency", "tasks a worker runs at once in each of its two lanes: new registrations, and the rest",
		func(c *Config) *int { return &c.Worker.Concurrency }),
	integer("RELAY_MAX_RETRY", "worker.max_retry", "retries of a failing delivery before it is archived",
		func(c *Config) *int { return &c.Worker.MaxRetry }),
	durations("RELAY_RETRY_SCHEDULE", "worker.retry_schedule", "wait before each retry, comma-separated; the last repeats",
		func(c *Config) *Durations { return &c.Worker.RetrySchedule }),
	duration("RELAY_SHUTDOWN_TIMEOUT", "worker.shutdown_timeout", "how long a stopping worker lets deliveries finish",
		func(c *Config) *Duration { return &c.Worker.ShutdownTimeout }),
	str("RELAY_DEBUG_ADDR", "debug_addr", false, "address for Go's profiler (/debug/pprof/); empty: off. Keep it on localhost",
		func(c *Config) *string { return &c.DebugAddr }),
	str("RELAY_LOG_LEVEL", "log_level", false, "debug, info, warn or error",
		func(c *Config) *string { return &c.LogLevel }),
}

func str(env, key string, isSecret bool, summary string, field func(*Config) *string) Setting {
	return Setting{Env: env, YAML: key, Secret: isSecret, Summary: summary,
		get: func(c *Config) string {
			if isSecret {
				return redactIf(true, *field(c))
			}
			return *field(c)
		},
		set: func(c *Config, v string) error { *field(c) = v; return nil }}
}

func secret(env, key, summary string, field func(*Config) *string) Setting {
	return str(env, key, true, summary, field)
}

func integer(env, key, summary string, field func(*Config) *int) Setting {
	return Setting{Env: env, YAML: key, Summary: summary,
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not a whole number")
			}
			*field(c) = n
			return nil
		}}
}

func durations(env, key, summary string, field func(*Config) *Durations) Setting {
	return Setting{Env: env, YAML: key, Summary: summary,
		get: func(c *Config) string { return field(c).String() },
		set: func(c *Config, v string) error {
			ds, err := parseDurations(v)
			*field(c) = ds
			return err
		}}
}

func duration(env, key, summary string, field func(*Config) *Duration) Setting {
	return Setting{Env: env, YAML: key, Summary: summary,
		get: func(c *Config) string { return field(c).String() },
		set: func(c *Config, v string) error {
			d, err := parseDuration(v)
			if err != nil {
				return err
			}
			*field(c) = Duration(d)
			return nil
		}}
}

// Value is the setting's value in c as it may be shown: secrets redacted.
func (s Setting) Value(c Config) string { return s.get(&c) }

func redactIf(isSecret bool, v string) string {
	if isSecret && v != "" {
		return "[redacted]"
	}
	return v
}

// redactURL keeps what helps find a server (scheme, host, port) and hides
// what grants access to it: the password, and the path and query of webhook
// URLs, which are the credential.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[redacted]"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "redacted")
		}
	}
	if q := u.Query(); len(q) > 0 {
		for name := range q {
			if strings.Contains(name, "password") {
				q.Set(name, "redacted")
			}
		}
		u.RawQuery = q.Encode()
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		if u.Path != "" && u.Path != "/" {
			u.Path = "/[redacted]"
		}
		u.RawQuery = ""
	}
	return u.String()
}

func mailAddress(s string) (*mail.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an email address such as \"Exams Office <exams@example.edu>\"", s)
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%q contains a line break", s)
	}
	return a, nil
}
