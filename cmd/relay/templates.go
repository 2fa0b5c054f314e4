package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/exam-relay/relay/templates"
)

// templatesCommand is `relay templates export`: it writes the default
// templates to a folder for a school to edit.
func templatesCommand(_ context.Context, args []string, e env) error {
	const usage = "usage: relay templates export [-language fr] DIR"
	if len(args) == 0 || args[0] != "export" {
		return errors.New(usage)
	}
	flags := flag.NewFlagSet("relay templates export", flag.ContinueOnError)
	flags.SetOutput(e.stderr)
	tag := flags.String("language", "en", "whose defaults: "+strings.Join(templates.Languages(), ", ")+" (only en and fr have their own wording)")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return errors.New(usage)
	}
	lang, err := templates.ParseLanguage(*tag)
	if err != nil {
		return err
	}
	dir := flags.Arg(0)
	written, err := templates.Export(dir, lang)
	for _, path := range written {
		fmt.Fprintln(e.stdout, "wrote", path)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Edit them, then set RELAY_TEMPLATES_DIR=%s (or a route's templates: %s); files you delete fall back to the defaults.\n", dir, dir)
	return nil
}
