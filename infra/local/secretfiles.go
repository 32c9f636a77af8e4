package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/rdev-hq/rdev/domain"
)

// secretFileName is a file secret's name: a variable name, so never a path.
var secretFileName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secretFilesRoot is where file secrets are written: shared memory, which
// never reaches a disk, where the machine has it; the temporary directory
// otherwise.
func secretFilesRoot() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// writeSecretFiles writes files, name to value, to a fresh directory that
// only the user uid (rdev's own when uid is negative) can read: the
// directory 0700 and each file 0400, both theirs. It returns "" when there
// are no files. The caller removes the directory once the command has
// ended (removeSecretFiles).
func writeSecretFiles(files map[string]string, uid, gid int) (string, error) {
	if len(files) == 0 {
		return "", nil
	}
	for name, value := range files {
		if !secretFileName.MatchString(name) {
			return "", domain.Errorf(domain.EINVALID, "secret file: %q is not a secret name", domain.Clip(name))
		}
		if len(value) > domain.MaxSecretValueBytes {
			return "", domain.Errorf(domain.EINVALID, "secret file %s: %d bytes, at most %d", name, len(value), domain.MaxSecretValueBytes)
		}
	}
	dir, err := os.MkdirTemp(secretFilesRoot(), "rdev-secrets-")
	if err != nil {
		return "", fmt.Errorf("local: secrets directory: %w", err)
	}
	if err := fillSecretDir(dir, files, uid, gid); err != nil {
		removeSecretFiles(dir)
		return "", err
	}
	return dir, nil
}

func fillSecretDir(dir string, files map[string]string, uid, gid int) error {
	for name, value := range files {
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400) //nolint:gosec // name is a checked variable name in rdev's own directory.
		if err != nil {
			return fmt.Errorf("local: secret file %s: %w", name, err)
		}
		_, werr := f.WriteString(value)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("local: secret file %s: %w", name, err)
		}
		if uid >= 0 {
			if err := os.Chown(path, uid, gid); err != nil {
				return fmt.Errorf("local: secret file %s: %w", name, err)
			}
		}
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("local: secrets directory: %w", err)
		}
	}
	return nil
}

// removeSecretFiles removes a directory writeSecretFiles made ("" is
// none).
func removeSecretFiles(dir string) {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
