package webhook

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/tasks"
)

// AdminPath is where the exams office's page lives.
const AdminPath = "/admin/"

// How much one page shows: enough to answer "did Jonas get the email?"
// and to work through a bad morning; `relay history` and `relay tasks`
// list the rest.
const (
	adminHistoryLimit = 200
	adminFailedLimit  = 50
)

//go:embed admin/*.html
var adminTemplates embed.FS

// AdminDeps is everything the admin page needs.
type AdminDeps struct {
	// Credentials are the page's own Basic auth, never the webhook's.
	Credentials Credentials
	// History is what the relay did for each student and exam.
	History *redisstore.History
	// Inspector lists, retries and deletes failed deliveries.
	Inspector *asynq.Inspector
	// Zone is the time zone the page shows times in.
	Zone *time.Location
	// HistoryRetention is how long the history keeps an entry, as
	// configured ("180d"), for the advice when nothing is found.
	HistoryRetention string
	Log              *slog.Logger
}

// Admin is the exams office's page: who was sent what, and the failed
// deliveries, with buttons to retry or delete them. It shows personal
// data, so everything under AdminPath is behind its Basic auth.
type Admin struct {
	d     AdminDeps
	front *template.Template
	hist  *template.Template
	// crossOrigin refuses a form posted from another site, which a
	// browser would otherwise send with the cached Basic auth.
	crossOrigin *http.CrossOriginProtection
}

// NewAdmin makes the admin page, refusing a missing part.
func NewAdmin(d AdminDeps) (*Admin, error) {
	var missing []string
	for _, part := range []struct {
		name    string
		missing bool
	}{
		{"Credentials.Username", d.Credentials.Username == ""}, {"Credentials.Password", d.Credentials.Password == ""},
		{"History", d.History == nil}, {"Inspector", d.Inspector == nil}, {"Zone", d.Zone == nil}, {"Log", d.Log == nil},
	} {
		if part.missing {
			missing = append(missing, part.name)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("admin page: missing " + strings.Join(missing, ", "))
	}
	a := &Admin{d: d, crossOrigin: http.NewCrossOriginProtection()}
	funcs := template.FuncMap{
		"when": func(t time.Time) string { return t.In(d.Zone).Format(time.DateTime) },
	}
	page := func(name string) *template.Template {
		return template.Must(template.New(name).Funcs(funcs).ParseFS(adminTemplates, "admin/layout.html", "admin/"+name))
	}
	a.front, a.hist = page("front.html"), page("history.html")
	a.crossOrigin.SetDenyHandler(http.HandlerFunc(a.refuseCrossOrigin))
	return a, nil
}

// handler is the whole page behind its checks: credentials first, then
// the cross-origin check on forms.
func (a *Admin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AdminPath+"{$}", a.showFront)
	mux.HandleFunc("GET "+AdminPath+"history", a.showHistory)
	mux.HandleFunc("POST "+AdminPath+"retry", a.retry)
	mux.HandleFunc("POST "+AdminPath+"delete", a.delete)
	h := a.crossOrigin.Handler(mux)
	h = privatePage(h)
	return basicAuth(a.d.Credentials, "exam-relay admin", a.d.Log, func(w http.ResponseWriter) {
		http.Error(w, "The admin page takes its own username and password (RELAY_ADMIN_USERNAME, RELAY_ADMIN_PASSWORD).", http.StatusUnauthorized)
	}, h)
}

// privatePage keeps the page out of caches, frames and other sites'
// Referer headers (a search URL holds an address), and lets it load
// nothing but its own inline style: no script runs on it at all.
func privatePage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

func (a *Admin) refuseCrossOrigin(w http.ResponseWriter, r *http.Request) {
	a.d.Log.Warn("admin: cross-origin request refused", "path", r.URL.Path, "remote", r.RemoteAddr,
		"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
	http.Error(w, "Refused: this form was sent from another site. Retry and delete only work from the admin page itself.", http.StatusForbidden)
}

// layout is what every page shows around its content.
type layout struct {
	Title   string
	Notice  string // what a button just did
	Problem string // what went wrong, and what to do
	Search  search // the search form, filled in with the last search
	Zone    *time.Location
}

// search is the history search form: one of its three fields.
type search struct{ Email, User, Exam string }

// key is the one field given, or false when none or several are.
func (s search) key() (redisstore.HistoryKey, bool) {
	return redisstore.OneHistoryKey(s.Email, s.User, s.Exam)
}

type frontPage struct {
	layout
	Failed []tasks.FailedTask
	// More is how many failed deliveries are not shown.
	More int
}

func (a *Admin) showFront(w http.ResponseWriter, r *http.Request) {
	p := frontPage{layout: layout{Title: "Failed deliveries", Zone: a.d.Zone}}
	// The confirmation of a button, after its redirect.
	if id := r.URL.Query().Get("retried"); id != "" {
		p.Notice = "Delivery " + id + " is queued again."
	}
	if id := r.URL.Query().Get("deleted"); id != "" {
		p.Notice = "Delivery " + id + " is deleted."
	}
	a.renderFront(w, http.StatusOK, p)
}

// renderFront fills in the failed deliveries and shows the front page.
func (a *Admin) renderFront(w http.ResponseWriter, code int, p frontPage) {
	failed, err := tasks.Failed(a.d.Inspector)
	if err != nil {
		a.d.Log.Error("admin: list failed deliveries", "err", err)
		p.Problem, code = "Could not list the failed deliveries: Redis did not answer. Try again in a moment.", http.StatusServiceUnavailable
	}
	if len(failed) > adminFailedLimit {
		p.More, failed = len(failed)-adminFailedLimit, failed[:adminFailedLimit]
	}
	p.Failed = failed
	a.render(w, a.front, code, p)
}

type historyPage struct {
	layout
	Key       redisstore.HistoryKey
	Entries   []redisstore.HistoryEntry
	Limited   bool // there may be older entries than those shown
	Retention string
}

func (a *Admin) showHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s := search{Email: strings.TrimSpace(q.Get("email")), User: strings.TrimSpace(q.Get("user")), Exam: strings.TrimSpace(q.Get("exam"))}
	p := historyPage{layout: layout{Title: "History", Search: s, Zone: a.d.Zone}, Retention: a.d.HistoryRetention}
	key, ok := s.key()
	if !ok {
		p.Problem = "Fill in one of the three: the student's email address, their Synap user id, or the exam id."
		a.render(w, a.hist, http.StatusBadRequest, p)
		return
	}
	p.Key, p.Title = key, "History for "+key.By+" "+key.Value
	entries, err := a.d.History.Find(r.Context(), key, adminHistoryLimit)
	if err != nil {
		a.d.Log.Error("admin: read history", "by", key.By, "err", err)
		p.Problem = "Could not read the history: Redis did not answer. Try again in a moment."
		a.render(w, a.hist, http.StatusServiceUnavailable, p)
		return
	}
	p.Entries, p.Limited = entries, len(entries) == adminHistoryLimit
	a.render(w, a.hist, http.StatusOK, p)
}

func (a *Admin) retry(w http.ResponseWriter, r *http.Request) {
	a.act(w, r, "retried", tasks.RetryFailed)
}

func (a *Admin) delete(w http.ResponseWriter, r *http.Request) {
	a.act(w, r, "deleted", tasks.DeleteFailed)
}

// act does what a button asks to the failed task in the form, then sends
// the browser back to the front page (303, so a reload does not post
// again), which says it is done.
func (a *Admin) act(w http.ResponseWriter, r *http.Request, done string, do func(*asynq.Inspector, string) error) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	id := r.PostFormValue("id")
	if id == "" {
		http.Error(w, "no task id in the form", http.StatusBadRequest)
		return
	}
	if err := do(a.d.Inspector, id); err != nil {
		// Most often another tab or `relay tasks` got there first.
		a.d.Log.Warn("admin: failed delivery not "+done, "task", id, "remote", r.RemoteAddr, "err", err)
		a.renderFront(w, http.StatusConflict, frontPage{layout: layout{Title: "Failed deliveries", Zone: a.d.Zone,
			Problem: "Delivery " + id + " was not " + done + ": " + err.Error() + "."}})
		return
	}
	a.d.Log.Info("admin: failed delivery "+done, "task", id, "remote", r.RemoteAddr)
	http.Redirect(w, r, AdminPath+"?"+url.Values{done: {id}}.Encode(), http.StatusSeeOther)
}

// render shows a whole page or, should the template fail, a plain 500:
// never half a page.
func (a *Admin) render(w http.ResponseWriter, t *template.Template, code int, data any) {
	var page bytes.Buffer
	if err := t.ExecuteTemplate(&page, "layout", data); err != nil {
		a.d.Log.Error("admin: render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = page.WriteTo(w)
}
