package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// auditConfig is how the audit log is kept; serve, keys and audit share it.
type auditConfig struct {
	Redact             string
	Key                string
	KeyFile            string
	Checkpoints        string
	CheckpointInterval time.Duration
}

// The files of the embedded default, in RDEV_DATA_DIR.
const (
	embeddedAuditKeyFile     = "audit.key"
	embeddedAuditCheckpoints = "audit-checkpoints.jsonl"
)

func (c *auditConfig) register(f *envFlags) {
	f.String(&c.Redact, "audit-redact", "RDEV_AUDIT_REDACT", domain.DefaultAuditRedact,
		"regexp of argv flag and assignment names whose values the audit log never records (env values it never records at all)")
	f.String(&c.KeyFile, "audit-key-file", "RDEV_AUDIT_KEY_FILE", "",
		"file of audit keys, one base64 key of at least 32 bytes per line; the first MACs new entries and checkpoints, the others only verify "+
			"(empty: RDEV_AUDIT_KEY; failing that, with the embedded database, "+embeddedAuditKeyFile+" in the data directory, made on first use)")
	f.Secret(&c.Key, "audit-key", "RDEV_AUDIT_KEY",
		"audit keys themselves, base64, separated by commas or spaces, the first signing; instead of RDEV_AUDIT_KEY_FILE")
	f.String(&c.Checkpoints, "audit-checkpoints", "RDEV_AUDIT_CHECKPOINTS", "",
		"file that signed audit checkpoints are appended to, one JSON line each (empty: "+embeddedAuditCheckpoints+
			" in the data directory with the embedded database, none with Postgres; checkpoints are logged either way)")
	f.Duration(&c.CheckpointInterval, "audit-checkpoint-interval", "RDEV_AUDIT_CHECKPOINT_INTERVAL", time.Minute,
		"how often the audit chain's head is checkpointed while it moves (and once more at shutdown)")
}

// redact compiles the redaction pattern, or returns an error naming the
// variable.
func (c *auditConfig) redact() (*regexp.Regexp, error) {
	re, err := regexp.Compile(c.Redact)
	if err != nil {
		return nil, fmt.Errorf("RDEV_AUDIT_REDACT: %w", err)
	}
	return re, nil
}

// keyring loads the audit keys: RDEV_AUDIT_KEY, RDEV_AUDIT_KEY_FILE, or with
// the embedded database the key file in the data directory, which create
// makes (with a fresh key) if it is missing; made is then its path. It
// returns nil without an error when no key is configured.
func (c *auditConfig) keyring(store storeConfig, create bool) (keys *domain.AuditKeyring, made string, err error) {
	switch {
	case c.Key != "" && c.KeyFile != "":
		return nil, "", errors.New("set RDEV_AUDIT_KEY or RDEV_AUDIT_KEY_FILE, not both")
	case c.Key != "":
		keys, err := domain.ParseAuditKeyring(strings.Join(strings.Fields(strings.ReplaceAll(c.Key, ",", " ")), "\n"))
		if err != nil {
			return nil, "", fmt.Errorf("RDEV_AUDIT_KEY: %s", domain.ErrorMessage(err))
		}
		return keys, "", nil
	case c.KeyFile != "":
		keys, err := readAuditKeyring(c.KeyFile)
		return keys, "", err
	case !store.embedded():
		return nil, "", nil
	}
	path := filepath.Join(store.DataDir, embeddedAuditKeyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, "", nil
		}
		if err := createAuditKeyFile(path); err != nil {
			return nil, "", err
		}
		made = path
	}
	keys, err = readAuditKeyring(path)
	return keys, made, err
}

func readAuditKeyring(path string) (*domain.AuditKeyring, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the operator's own key file
	if err != nil {
		return nil, fmt.Errorf("audit key file: %w", err)
	}
	keys, err := domain.ParseAuditKeyring(string(b))
	if err != nil {
		return nil, fmt.Errorf("audit key file %s: %s", path, domain.ErrorMessage(err))
	}
	return keys, nil
}

// createAuditKeyFile writes a fresh key to path, readable by its owner only,
// unless another process made the file first: it is written beside it and
// linked into place, so no reader ever sees it half written.
func createAuditKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("audit key file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), embeddedAuditKeyFile+".*")
	if err != nil {
		return fmt.Errorf("audit key file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	text := "# rdev's audit key: it MACs the audit log and its checkpoints. Keep a copy apart from the database.\n" +
		"# To rotate, put a new key on the first line and keep the old ones below it.\n" + domain.NewAuditKeyText() + "\n"
	if _, err := tmp.WriteString(text); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("audit key file: %w", err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("audit key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("audit key file: %w", err)
	}
	return nil
}

// checkpointsPath returns the checkpoint file, "" for none.
func (c *auditConfig) checkpointsPath(store storeConfig) string {
	if c.Checkpoints == "" && store.embedded() {
		return filepath.Join(store.DataDir, embeddedAuditCheckpoints)
	}
	return c.Checkpoints
}

// errAuditBroken makes `rdev audit verify` exit non-zero after printing
// where the chain breaks.
var errAuditBroken = errors.New("the audit log's hash chain is broken")

// runAudit works on the audit log directly in the configured database.
func runAudit(ctx context.Context, args []string, c cli) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageError("audit needs: verify")
	}
	var cfg storeConfig
	var audit auditConfig
	var checkpoints string
	f := newEnvFlags("rdev audit verify", c.getenv, c.stderr)
	cfg.register(f)
	audit.register(f)
	f.StringVar(&checkpoints, "checkpoints", "", "file of checkpoints to check, as JSON lines (rdev's checkpoint file or its log lines that hold them); - reads stdin; default: RDEV_AUDIT_CHECKPOINTS")
	if err := f.Parse(args[1:]); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return usageError("audit verify takes no arguments, got " + f.Arg(0))
	}
	keys, _, err := audit.keyring(cfg, false)
	if err != nil {
		return err
	}
	var v domain.AuditVerifier
	v.Keys = keys
	if v.Checkpoints, err = readCheckpoints(checkpoints, audit.checkpointsPath(cfg), os.Stdin); err != nil {
		return err
	}
	s, _, err := cfg.openMigrated(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	r, err := v.Verify(ctx, s)
	if err != nil {
		return cliError(err)
	}
	counts := fmt.Sprintf("%d keyed, %d checkpoints checked", r.Keyed, r.Checkpoints)
	if r.Break != nil {
		_, _ = fmt.Fprintf(c.stdout, "%s: audit log BROKEN at entry %d: %s (%d entries before it are intact, %s)\n",
			cfg.where(), r.Break.Seq, r.Break.Reason, r.Entries, counts)
		return errAuditBroken
	}
	if unkeyed := r.Entries - r.Keyed; unkeyed > 0 {
		counts += fmt.Sprintf("; %d unkeyed entries from before an audit key was configured", unkeyed)
	}
	_, err = fmt.Fprintf(c.stdout, "%s: audit log intact: %d entries, %s; head %s\n", cfg.where(), r.Entries, counts, headHash(r.Head))
	return err
}

// readCheckpoints reads the checkpoints of flag ("-": stdin), or else of
// the configured file, which may not exist yet.
func readCheckpoints(flag, configured string, stdin io.Reader) ([]domain.AuditCheckpoint, error) {
	path := flag
	switch {
	case flag == "-":
		cps, err := domain.ParseAuditCheckpoints(stdin)
		if err != nil {
			return nil, fmt.Errorf("checkpoints on stdin: %s", domain.ErrorMessage(err))
		}
		return cps, nil
	case flag == "" && configured == "":
		return nil, nil
	case flag == "":
		path = configured
	}
	file, err := os.Open(path) //nolint:gosec // the operator's own checkpoint file
	if errors.Is(err, os.ErrNotExist) && flag == "" {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	defer func() { _ = file.Close() }()
	cps, err := domain.ParseAuditCheckpoints(file)
	if err != nil {
		return nil, fmt.Errorf("checkpoints %s: %s", path, domain.ErrorMessage(err))
	}
	return cps, nil
}

func headHash(h domain.AuditHead) string {
	if h.Hash == "" {
		return "(empty)"
	}
	return h.Hash
}
