package domain

import (
	"encoding/base64"
	"fmt"
	"maps"
	"strings"
)

// SealedEnvPrefix starts a stored env value that is sealed: the rest is
// the base64 of the sealer's envelope, bound to the command and the
// variable (CommandEnvAD). With a secrets key, a queued command's env
// values are stored only so, and opened only as it starts, for the
// executor; so no database page, WAL frame, replica or backup holds them
// in clear, even before the claim clears them.
const SealedEnvPrefix = "sealed:"

// CommandEnvAD returns the associated data an env value of command
// commandID is sealed with, so that a sealed value copied to another
// command or variable does not open.
func CommandEnvAD(commandID, name string) []byte {
	return []byte("rdev command env\x00" + commandID + "\x00" + name)
}

// sealEnv returns env with every value sealed under sealer for command
// commandID.
func sealEnv(sealer SecretSealer, commandID string, env map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(env))
	for name, v := range env {
		sealed, err := sealer.Seal([]byte(v), CommandEnvAD(commandID, name))
		if err != nil {
			return nil, fmt.Errorf("seal env %s of command %s: %w", name, commandID, err)
		}
		out[name] = SealedEnvPrefix + base64.StdEncoding.EncodeToString(sealed)
	}
	return out, nil
}

// openEnv returns c's env with its sealed values opened under sealer, nil
// for none, and the values not sealed as they are (stored before there was
// a key). It returns EINTERNAL, naming the variable but never a value, for
// one that does not open.
func openEnv(sealer SecretSealer, c *Command) (map[string]string, error) {
	var out map[string]string
	for name, v := range c.Env {
		text, ok := strings.CutPrefix(v, SealedEnvPrefix)
		if !ok {
			continue
		}
		if out == nil {
			out = maps.Clone(c.Env)
		}
		if sealer == nil {
			return nil, Errorf(EINTERNAL, "env %s of command %s is sealed and this server has no secrets key", name, c.ID)
		}
		sealed, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, Errorf(EINTERNAL, "env %s of command %s: sealed value is not base64", name, c.ID)
		}
		opened, err := sealer.Open(sealed, CommandEnvAD(c.ID, name))
		if err != nil {
			return nil, Errorf(EINTERNAL, "env %s of command %s does not open: %v", name, c.ID, err)
		}
		out[name] = string(opened)
	}
	if out == nil {
		return c.Env, nil
	}
	return out, nil
}
