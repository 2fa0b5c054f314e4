package templates

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goodsign/monday"
)

// Language is how dates and durations are written: month and day names
// from monday, in the locale's own order, and words for "in 10 days".
type Language struct {
	// Tag is the configured name: "en", "fr", "pt-BR", …
	Tag    string
	locale monday.Locale
	words  words
}

// The locale each short tag means; a full tag such as fr_CA or de-AT
// picks monday's locale of that name.
var defaultLocales = map[string]monday.Locale{
	"en": monday.LocaleEnGB,
	"fr": monday.LocaleFrFR,
	"de": monday.LocaleDeDE,
	"es": monday.LocaleEsES,
	"it": monday.LocaleItIT,
	"nl": monday.LocaleNlNL,
	"pl": monday.LocalePlPL,
	"pt": monday.LocalePtPT,
}

// Languages are the short tags that have words for durations; dates work
// in every locale monday knows.
func Languages() []string {
	tags := make([]string, 0, len(defaultLocales))
	for tag := range defaultLocales {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	return tags
}

// ParseLanguage reads "fr", "fr-CA", "fr_CA" or "pt-BR".
func ParseLanguage(tag string) (Language, error) {
	norm := strings.ReplaceAll(strings.TrimSpace(tag), "-", "_")
	base, region, _ := strings.Cut(norm, "_")
	base = strings.ToLower(base)
	w, ok := wordsByLanguage[base]
	if !ok {
		return Language{}, fmt.Errorf("%q is not a language the relay writes dates in (have %s, or a regional form such as en-US or pt-BR)", tag, strings.Join(Languages(), ", "))
	}
	locale := defaultLocales[base]
	if region != "" {
		want := monday.Locale(base + "_" + strings.ToUpper(region))
		if !slices.Contains(monday.ListLocales(), want) {
			return Language{}, fmt.Errorf("%q: no dates for region %s (try %s)", tag, region, base)
		}
		locale = want
	}
	return Language{Tag: tag, locale: locale, words: w}, nil
}

// Base is the language without its region: "pt" for "pt-BR".
func (l Language) Base() string {
	if l.locale == "" {
		return "en"
	}
	base, _, _ := strings.Cut(string(l.locale), "_")
	return base
}

// english is what the zero Language writes.
var english = Language{Tag: "en", locale: defaultLocales["en"], words: wordsByLanguage["en"]}

func (l Language) orEnglish() Language {
	if l.locale == "" {
		return english
	}
	return l
}

func (l Language) layout(byLocale map[monday.Locale]string, fallback string) string {
	if s := byLocale[l.locale]; s != "" {
		return s
	}
	return fallback
}

// Day is the date the locale's long way: "Monday, 7 December 2026",
// "lundi 7 décembre 2026", "Montag, 7. Dezember 2026".
func (l Language) Day(t time.Time) string {
	l = l.orEnglish()
	key := dayKey{l.locale, t.Year(), t.YearDay()}
	if s, ok := days.Load(key); ok {
		return s.(string)
	}
	// monday translates by rewriting the formatted text, which costs more
	// than the rest of an email's rendering; a cohort shares a few dates.
	s := monday.Format(t, l.layout(monday.FullFormatsByLocale, "Monday, 2 January 2006"), l.locale)
	if dayCount.Add(1) > maxDays {
		days.Clear()
		dayCount.Store(0)
	}
	days.Store(key, s)
	return s
}

// days remembers formatted days, up to maxDays of them.
var (
	days     sync.Map // dayKey → string
	dayCount atomic.Int64
)

const maxDays = 10_000

type dayKey struct {
	locale    monday.Locale
	year, day int
}

// Clock is the time with the zone's abbreviation: "09:00 GMT", "9:00 AM EST".
func (l Language) Clock(t time.Time) string {
	l = l.orEnglish()
	return t.Format(l.layout(monday.TimeFormatsByLocale, "15:04") + " MST")
}

// Date is Day and Clock: "Monday, 7 December 2026, 09:00 GMT".
func (l Language) Date(t time.Time) string {
	return l.Day(t) + ", " + l.Clock(t)
}

// Duration is d to the minute: "1 hour 30 minutes", "2 jours".
func (l Language) Duration(d time.Duration) string {
	l = l.orEnglish()
	return l.words.duration(d, false)
}

// Relative is t seen from now, in its largest unit: "in 10 days",
// "dans 3 heures", "2 days ago".
func (l Language) Relative(t, now time.Time) string {
	l = l.orEnglish()
	d := t.Sub(now)
	past := d < 0
	if past {
		d = -d
	}
	switch {
	case d < time.Minute:
		return l.words.now
	case d >= 24*time.Hour:
		d = d.Round(24 * time.Hour)
	case d >= time.Hour:
		d = d.Round(time.Hour)
	}
	if past {
		return fmt.Sprintf(l.words.ago, l.words.duration(d, true))
	}
	return fmt.Sprintf(l.words.in, l.words.duration(d, true))
}

// words are what monday does not give: durations and "in …". Each unit is
// {one, few, many}; only Polish tells few from many.
type words struct {
	minute, hour, day [3]string
	// relative forms, where the grammar changes after "in" (German dative,
	// Polish accusative); empty means the same as above.
	relMinute, relHour, relDay   [3]string
	in, ago, now, lessThanMinute string
}

var wordsByLanguage = map[string]words{
	"en": {minute: [3]string{"minute", "minutes", "minutes"}, hour: [3]string{"hour", "hours", "hours"}, day: [3]string{"day", "days", "days"},
		in: "in %s", ago: "%s ago", now: "now", lessThanMinute: "less than a minute"},
	"fr": {minute: [3]string{"minute", "minutes", "minutes"}, hour: [3]string{"heure", "heures", "heures"}, day: [3]string{"jour", "jours", "jours"},
		in: "dans %s", ago: "il y a %s", now: "maintenant", lessThanMinute: "moins d’une minute"},
	"de": {minute: [3]string{"Minute", "Minuten", "Minuten"}, hour: [3]string{"Stunde", "Stunden", "Stunden"}, day: [3]string{"Tag", "Tage", "Tage"},
		relDay: [3]string{"Tag", "Tagen", "Tagen"},
		in:     "in %s", ago: "vor %s", now: "jetzt", lessThanMinute: "weniger als eine Minute"},
	"es": {minute: [3]string{"minuto", "minutos", "minutos"}, hour: [3]string{"hora", "horas", "horas"}, day: [3]string{"día", "días", "días"},
		in: "en %s", ago: "hace %s", now: "ahora", lessThanMinute: "menos de un minuto"},
	"it": {minute: [3]string{"minuto", "minuti", "minuti"}, hour: [3]string{"ora", "ore", "ore"}, day: [3]string{"giorno", "giorni", "giorni"},
		in: "tra %s", ago: "%s fa", now: "ora", lessThanMinute: "meno di un minuto"},
	"nl": {minute: [3]string{"minuut", "minuten", "minuten"}, hour: [3]string{"uur", "uur", "uur"}, day: [3]string{"dag", "dagen", "dagen"},
		in: "over %s", ago: "%s geleden", now: "nu", lessThanMinute: "minder dan een minuut"},
	"pl": {minute: [3]string{"minuta", "minuty", "minut"}, hour: [3]string{"godzina", "godziny", "godzin"}, day: [3]string{"dzień", "dni", "dni"},
		relMinute: [3]string{"minutę", "minuty", "minut"}, relHour: [3]string{"godzinę", "godziny", "godzin"},
		in: "za %s", ago: "%s temu", now: "teraz", lessThanMinute: "mniej niż minuta"},
	"pt": {minute: [3]string{"minuto", "minutos", "minutos"}, hour: [3]string{"hora", "horas", "horas"}, day: [3]string{"dia", "dias", "dias"},
		in: "em %s", ago: "há %s", now: "agora", lessThanMinute: "menos de um minuto"},
}

func (w words) duration(d time.Duration, relative bool) string {
	d = d.Round(time.Minute)
	if d < time.Minute {
		return w.lessThanMinute
	}
	minute, hour, day := w.minute, w.hour, w.day
	if relative {
		minute, hour, day = cmp.Or(w.relMinute, minute), cmp.Or(w.relHour, hour), cmp.Or(w.relDay, day)
	}
	days, hours, minutes := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var parts []string
	if days > 0 {
		parts = append(parts, plural(days, day))
	}
	if hours > 0 {
		parts = append(parts, plural(hours, hour))
	}
	// Past a day, minutes are noise.
	if minutes > 0 && days == 0 {
		parts = append(parts, plural(minutes, minute))
	}
	return strings.Join(parts, " ")
}

// plural picks one, few or many. Few (2–4, not 12–14) only differs in
// Polish; the other languages have the same word for both.
func plural(n int, forms [3]string) string {
	form := forms[2]
	switch {
	case n == 1:
		form = forms[0]
	case n%10 >= 2 && n%10 <= 4 && (n%100 < 12 || n%100 > 14):
		form = forms[1]
	}
	return fmt.Sprintf("%d %s", n, form)
}
