package config

import (
	"strings"
	"testing"
)

const office365 = "smtp://exams%40school.edu@smtp.office365.com:587?tls=starttls&auth=xoauth2"

func TestParseSMTPURLTakesAuthXOAUTH2(t *testing.T) {
	tests := []struct {
		url  string
		want SMTPServer
	}{
		{office365, SMTPServer{Host: "smtp.office365.com", Port: 587, Username: "exams@school.edu", TLS: TLSStartTLS, Auth: AuthXOAUTH2}},
		// Without tls=, a user means STARTTLS, as with a password.
		{"smtp://exams%40school.edu@smtp.example.edu?auth=XOAUTH2", SMTPServer{Host: "smtp.example.edu", Port: 587, Username: "exams@school.edu", TLS: TLSStartTLS, Auth: AuthXOAUTH2}},
		{"smtps://exams%40school.edu@smtp.example.edu?auth=xoauth2", SMTPServer{Host: "smtp.example.edu", Port: 465, Username: "exams@school.edu", TLS: TLSImplicit, Auth: AuthXOAUTH2}},
	}
	for _, tt := range tests {
		got, err := ParseSMTPURL(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("ParseSMTPURL(%q) = %+v, %v; want %+v", tt.url, got, err, tt.want)
		}
	}
	for url, want := range map[string]string{
		"smtp://u:pw@mail.example.edu?auth=cram-md5":                        "want auth=xoauth2",
		"smtp://smtp.office365.com:587?tls=starttls&auth=xoauth2":           "the mailbox to send as",
		"smtp://exams%40school.edu:pw@smtp.office365.com:587?auth=xoauth2":  "not a password",
		"smtp://exams%40school.edu@127.0.0.1:2525?tls=none&auth=xoauth2":    "in clear",
		"smtp://exams%40school.edu@smtp.office365.com?auth=xoauth2&scope=x": "auth=xoauth2",
	} {
		_, err := ParseSMTPURL(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSMTPURL(%q) = %v, want an error saying %q", url, err, want)
		}
		if err != nil && strings.Contains(err.Error(), ":pw@") {
			t.Errorf("ParseSMTPURL(%q) shows the password: %v", url, err)
		}
	}
}

func TestOAuthSettingsLoadFromEnvironmentAndFile(t *testing.T) {
	cfg, err := Load("", env(map[string]string{
		"RELAY_SMTP_URL":                 office365,
		"RELAY_SMTP_OAUTH_TOKEN_URL":     "https://login.microsoftonline.com/tenant-id/oauth2/v2.0/token",
		"RELAY_SMTP_OAUTH_CLIENT_ID":     "client-id",
		"RELAY_SMTP_OAUTH_CLIENT_SECRET": "client-secret-value",
	}))
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.SMTP.OAuth
	if o.TokenURL != "https://login.microsoftonline.com/tenant-id/oauth2/v2.0/token" || o.ClientID != "client-id" || o.ClientSecret != "client-secret-value" {
		t.Errorf("oauth = %+v", o)
	}
	if len(o.Scopes) != 1 || o.Scopes[0] != DefaultOAuthScope {
		t.Errorf("scopes = %q, want Microsoft 365's by default", o.Scopes)
	}
	var shown strings.Builder
	for _, s := range Settings {
		shown.WriteString(s.Env + "=" + s.Value(cfg) + "\n")
	}
	if strings.Contains(shown.String(), "client-secret-value") {
		t.Errorf("the client secret is shown:\n%s", shown.String())
	}
	for _, kept := range []string{"RELAY_SMTP_OAUTH_CLIENT_ID=client-id", "RELAY_SMTP_OAUTH_SCOPES=" + DefaultOAuthScope, "RELAY_SMTP_OAUTH_CLIENT_SECRET=[redacted]"} {
		if !strings.Contains(shown.String(), kept) {
			t.Errorf("%s not shown:\n%s", kept, shown.String())
		}
	}

	for name, yaml := range map[string]string{
		"one scope, bare":  "scopes: https://mail.example.edu/.default\n",
		"a list of scopes": "scopes: [\"https://mail.example.edu/.default\"]\n",
	} {
		path := writeConfig(t, "smtp:\n  url: "+office365+"\n  oauth:\n    token_url: https://login.example.edu/oauth2/token\n    client_id: id\n    "+yaml)
		cfg, err := Load(path, env(map[string]string{"RELAY_SMTP_OAUTH_CLIENT_SECRET": "s"}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := cfg.SMTP.OAuth.Scopes.String(); got != "https://mail.example.edu/.default" {
			t.Errorf("%s: scopes = %q, want the file's instead of the default", name, got)
		}
	}
	cfg, err = Load("", env(map[string]string{"RELAY_SMTP_OAUTH_SCOPES": "a, b c"}))
	if got := cfg.SMTP.OAuth.Scopes.String(); got != "a,b,c" {
		t.Errorf("RELAY_SMTP_OAUTH_SCOPES=%q reads as %q", "a, b c", got)
	}
	if err != nil {
		t.Errorf("scopes alone, without auth=xoauth2: %v", err)
	}
}

func TestOAuthSettingsNameWhatIsMissing(t *testing.T) {
	full := map[string]string{
		"RELAY_SMTP_URL":                 office365,
		"RELAY_SMTP_OAUTH_TOKEN_URL":     "https://login.microsoftonline.com/tenant-id/oauth2/v2.0/token",
		"RELAY_SMTP_OAUTH_CLIENT_ID":     "client-id",
		"RELAY_SMTP_OAUTH_CLIENT_SECRET": "SECRETVALUE",
	}
	without := func(key string, more ...string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			if k != key {
				m[k] = v
			}
		}
		for i := 0; i+1 < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no token URL", without("RELAY_SMTP_OAUTH_TOKEN_URL"), []string{"RELAY_SMTP_OAUTH_TOKEN_URL", "smtp.oauth.token_url", "https://login.microsoftonline.com/TENANT/oauth2/v2.0/token"}},
		{"token URL not http", without("", "RELAY_SMTP_OAUTH_TOKEN_URL", "login.microsoftonline.com/t/oauth2/v2.0/token"), []string{"RELAY_SMTP_OAUTH_TOKEN_URL", "http(s)"}},
		{"no client id", without("RELAY_SMTP_OAUTH_CLIENT_ID"), []string{"RELAY_SMTP_OAUTH_CLIENT_ID", "smtp.oauth.client_id"}},
		{"no client secret", without("RELAY_SMTP_OAUTH_CLIENT_SECRET"), []string{"RELAY_SMTP_OAUTH_CLIENT_SECRET", "smtp.oauth.client_secret"}},
		{"no scopes", without("", "RELAY_SMTP_OAUTH_SCOPES", ","), []string{"RELAY_SMTP_OAUTH_SCOPES", DefaultOAuthScope}},
		{"settings without auth=xoauth2", without("", "RELAY_SMTP_URL", "smtp://exams%40school.edu:pw@smtp.office365.com:587"), []string{"RELAY_SMTP_OAUTH_*", "auth=xoauth2", office365}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("", env(tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v does not mention %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "SECRETVALUE") {
				t.Errorf("the error shows the client secret: %v", err)
			}
		})
	}
}
