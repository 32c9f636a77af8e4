package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/postgres"
)

// runKeys manages API keys directly in the configured database, as the
// operator: this is how the first admin key is made.
func runKeys(ctx context.Context, args []string, c cli) error {
	if len(args) == 0 {
		return usageError("keys needs one of: create, list, revoke, rotate, update")
	}
	rest, id := args[1:], ""
	if args[0] == "update" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:] // rdev keys update ID --name …
	}
	var cfg storeConfig
	var audit auditConfig
	var in domain.CreateAPIKey
	var admin, asJSON, create bool
	var expires, grace time.Duration
	var scopes, cidrs, projects, selectors []string
	var rateLimit int
	f := newEnvFlags("rdev keys "+args[0], c.getenv, c.stderr)
	cfg.register(f)
	audit.register(f)
	f.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	if args[0] == "create" || args[0] == "update" {
		narrowing := ""
		if args[0] == "update" {
			narrowing = " (update: only narrowing; left out, it stays)"
		} else {
			f.BoolVar(&admin, "admin", false, "grant the admin scope (every scope)")
			f.BoolVar(&create, "init", false, "create the database if there is none yet (a first key before the first rdev serve); without it, keys refuses a database that does not exist")
		}
		f.StringVar(&in.Name, "name", "", "the key's name (required to create)")
		f.List(&scopes, "scopes", "", "scopes to grant: "+strings.Join(domain.Scopes(domain.AllScopes).Strings(), ", ")+narrowing)
		f.DurationVar(&expires, "expires", 0, "lifetime from now, e.g. 720h; 0 means it never expires"+narrowing)
		f.List(&cidrs, "allowed-cidrs", "", "client CIDRs the key may be used from"+narrowing)
		f.IntVar(&rateLimit, "rate-limit", 0, "the key's own requests per second; 0 uses the server default"+narrowing)
		f.List(&projects, "projects", "", "limit the key to these projects by name; with no -projects and no -project-selector it reaches every project"+narrowing)
		f.Func("project-selector", "limit the key to projects whose labels match this selector, e.g. 'team=payments,tier!=prod' (repeatable: a project matching any one is in scope)"+narrowing, func(v string) error {
			selectors = append(selectors, v)
			return nil
		})
	}
	if args[0] == "rotate" {
		f.DurationVar(&grace, "grace", 0, "how long the old secret keeps working, e.g. 24h")
	}
	if err := f.Parse(rest); err != nil {
		return err
	}
	var update domain.UpdateAPIKey
	if args[0] == "update" {
		if id == "" && f.NArg() == 1 {
			id = f.Arg(0)
		} else if id == "" || f.NArg() != 0 {
			return usageError("keys update needs the key ID, then the flags to change")
		}
		update = keyUpdate(f, in.Name, scopes, cidrs, projects, selectors, rateLimit, expires)
	}
	redact, err := audit.redact()
	if err != nil {
		return err
	}
	s, err := cfg.openExisting(ctx, create)
	if errors.Is(err, errNoDatabase) {
		return noDatabaseError(cfg, args[0] == "create")
	}
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	keys, made, err := audit.keyring(cfg, true)
	if err != nil {
		return err
	}
	if made != "" {
		_, _ = fmt.Fprintf(c.stderr, "rdev: generated an audit key in %s: keep a copy of it apart from the database, to verify the audit log with\n", made)
	}
	s.SignAuditWith(keys)
	// Servers on the same Postgres hear of a change at once; on SQLite
	// they find it by reading key versions.
	var bcast domain.Broadcaster
	if !cfg.embedded() {
		bcast = postgres.NewBroadcaster(s)
	}
	svc := domain.NewAPIKeyService(s, domain.NewAuditService(s, redact), nil, bcast)
	// Audited with the actor "cli".
	ctx = domain.NewOperatorContext(ctx)

	switch args[0] {
	case "create":
		if admin {
			scopes = append(scopes, string(domain.ScopeAdmin))
		}
		in.Scopes, in.AllowedCIDRs, in.RateLimit = scopes, cidrs, &rateLimit
		in.Projects, in.ProjectSelectors = projects, selectors
		if expires > 0 {
			in.ExpiresAt = new(time.Now().Add(expires))
		}
		k, token, err := svc.Create(ctx, in)
		if err != nil {
			return cliError(err)
		}
		if asJSON {
			return json.NewEncoder(c.stdout).Encode(map[string]any{"id": k.ID, "name": k.Name, "scopes": k.Scopes.Strings(),
				"projects": projectsJSON(k.Projects), "token": token, "database": cfg.where()})
		}
		_, err = fmt.Fprintf(c.stdout, "Created API key %s (%s) with scopes %s, for %s, in %s.\n"+
			"Its token is shown only now:\n\n  %s\n\nSend it as the header  Authorization: Bearer %s\n"+
			"or use it with the CLI:  export RDEV_KEY=%s\n",
			k.ID, k.Name, strings.Join(k.Scopes.Strings(), ","), k.Projects, cfg.where(), token, token, token)
		return err
	case "list":
		return listKeys(ctx, svc, c, asJSON)
	case "revoke":
		if f.NArg() != 1 {
			return usageError("keys revoke needs the key ID")
		}
		k, descendants, err := svc.Revoke(ctx, f.Arg(0))
		if err != nil {
			return cliError(err)
		}
		if asJSON {
			ids := make([]string, len(descendants))
			for i, d := range descendants {
				ids[i] = d.ID
			}
			return json.NewEncoder(c.stdout).Encode(map[string]any{"id": k.ID, "name": k.Name, "revokedAt": k.RevokedAt, "revokedDescendants": ids})
		}
		_, err = fmt.Fprintf(c.stdout, "Revoked API key %s (%s) at %s.\n", k.ID, k.Name, k.RevokedAt.Format(time.RFC3339))
		for _, d := range descendants {
			if err == nil {
				_, err = fmt.Fprintf(c.stdout, "Revoked with it: %s (%s), created by %s.\n", d.ID, d.Name, d.CreatedBy)
			}
		}
		return err
	case "rotate":
		if f.NArg() != 1 {
			return usageError("keys rotate needs the key ID")
		}
		k, token, err := svc.Rotate(ctx, f.Arg(0), grace)
		if err != nil {
			return cliError(err)
		}
		if asJSON {
			return json.NewEncoder(c.stdout).Encode(map[string]any{"id": k.ID, "name": k.Name, "token": token})
		}
		_, err = fmt.Fprintf(c.stdout, "Rotated API key %s (%s). Its new token is shown only now:\n\n  %s\n", k.ID, k.Name, token)
		return err
	case "update":
		k, err := svc.Update(ctx, id, update)
		if err != nil {
			return cliError(err)
		}
		return printKey(c, k, asJSON)
	}
	return usageError(fmt.Sprintf("keys: unknown action %q (want create, list, revoke, rotate or update)", args[0]))
}

// noDatabaseError explains that keys found no database: keys works on the
// database that rdev serve uses, found the same way (DATABASE_URL, else
// rdev.db in RDEV_DATA_DIR, ./data by default: relative to the directory
// it runs in).
func noDatabaseError(cfg storeConfig, create bool) error {
	var msg string
	if cfg.embedded() {
		msg = fmt.Sprintf("no database at %s: run rdev keys in the directory rdev serve runs in, or point RDEV_DATA_DIR (--data-dir) at its data directory",
			strings.TrimPrefix(cfg.where(), "sqlite:"))
	} else {
		msg = "the database at DATABASE_URL has no rdev schema yet: point DATABASE_URL at the database rdev serve uses"
	}
	if create {
		msg += "; to make a new database here, pass --init"
	}
	return errors.New(msg)
}

// keyUpdate is the change that the flags given to keys update ask for: a
// flag left out leaves its field as it is, and a list flag given empty
// (--scopes "") is a list of none.
func keyUpdate(f *envFlags, name string, scopes, cidrs, projects, selectors []string, rateLimit int, expires time.Duration) domain.UpdateAPIKey {
	var u domain.UpdateAPIKey
	given := func(list []string) []string { return append([]string{}, list...) }
	f.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "name":
			u.Name = &name
		case "scopes":
			u.Scopes = given(scopes)
		case "allowed-cidrs":
			u.AllowedCIDRs = given(cidrs)
		case "projects":
			u.Projects = given(projects)
		case "project-selector":
			u.ProjectSelectors = given(selectors)
		case "rate-limit":
			u.RateLimit = &rateLimit
		case "expires":
			u.ExpiresAt = new(time.Now().Add(expires))
		}
	})
	return u
}

// printKey shows a key as it is now (never its secret).
func printKey(c cli, k *domain.APIKey, asJSON bool) error {
	cidrs := make([]string, len(k.AllowedCIDRs))
	for i, p := range k.AllowedCIDRs {
		cidrs[i] = p.String()
	}
	if asJSON {
		return json.NewEncoder(c.stdout).Encode(map[string]any{"id": k.ID, "name": k.Name, "scopes": k.Scopes.Strings(),
			"projects": projectsJSON(k.Projects), "allowedCIDRs": cidrs, "rateLimit": k.RateLimit, "expiresAt": k.ExpiresAt})
	}
	expires, rate, from := "never", "the server default", "any address"
	if k.ExpiresAt != nil {
		expires = k.ExpiresAt.Format(time.RFC3339)
	}
	if k.RateLimit > 0 {
		rate = fmt.Sprintf("%d requests per second", k.RateLimit)
	}
	if len(cidrs) > 0 {
		from = strings.Join(cidrs, ",")
	}
	_, err := fmt.Fprintf(c.stdout, "Updated API key %s (%s): scopes %s, for %s, from %s, rate limit %s, expires %s.\n",
		k.ID, k.Name, strings.Join(k.Scopes.Strings(), ","), k.Projects, from, rate, expires)
	return err
}

func listKeys(ctx context.Context, svc *domain.APIKeyService, c cli, asJSON bool) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if !asJSON {
		_, _ = fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tSCOPES\tPROJECTS\tCREATED\tLAST USED")
	}
	enc := json.NewEncoder(c.stdout)
	now := time.Now()
	req := domain.PageRequest{First: domain.MaxPageSize}
	for {
		page, err := svc.List(ctx, req)
		if err != nil {
			return cliError(err)
		}
		for _, k := range page.Items {
			if asJSON {
				if err := enc.Encode(map[string]any{"id": k.ID, "name": k.Name, "status": k.Status(now), "scopes": k.Scopes.Strings(),
					"projects": projectsJSON(k.Projects), "createdAt": k.CreatedAt, "lastUsedAt": k.LastUsedAt}); err != nil {
					return err
				}
				continue
			}
			lastUsed := "never"
			if k.LastUsedAt != nil {
				lastUsed = k.LastUsedAt.Format(time.RFC3339)
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Status(now),
				strings.Join(k.Scopes.Strings(), ","), k.Projects, k.CreatedAt.Format(time.RFC3339), lastUsed)
		}
		if !page.HasNextPage {
			break
		}
		req.After = page.Items[len(page.Items)-1].ID
	}
	return tw.Flush()
}

// cliError shows a domain error's message and code, never internals.
func cliError(err error) error {
	if code := domain.ErrorCode(err); code != domain.EINTERNAL {
		return fmt.Errorf("%s (%s)", domain.ErrorMessage(err), code)
	}
	return err
}

// projectsJSON is a key's project scope as the JSON output shows it.
func projectsJSON(s domain.ProjectScope) map[string]any {
	return map[string]any{"names": append([]string{}, s.Names...), "selectors": s.SelectorStrings(), "unrestricted": s.Unrestricted()}
}
