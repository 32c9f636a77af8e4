package domain

import (
	"fmt"
	"maps"
)

// A queued command's env values are stored, with a secrets key, only as
// sealed text (SealedTextPrefix), bound to the command and the variable
// (CommandEnvAD), and opened only as it starts, for the executor; so no
// database page, WAL frame, replica or backup holds them in clear, even
// before the claim clears them.

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
		sealed, err := SealText(sealer, v, CommandEnvAD(commandID, name))
		if err != nil {
			return nil, fmt.Errorf("seal env %s of command %s: %w", name, commandID, err)
		}
		out[name] = sealed
	}
	return out, nil
}

// openEnv returns c's env with its sealed values opened under sealer, and
// the values not sealed as they are (stored before there was a key). It
// returns EINTERNAL, naming the variable but never a value, for one that
// does not open.
func openEnv(sealer SecretSealer, c *Command) (map[string]string, error) {
	var out map[string]string
	for name, v := range c.Env {
		opened, sealed, err := OpenText(sealer, v, CommandEnvAD(c.ID, name))
		if err != nil {
			return nil, Errorf(EINTERNAL, "env %s of command %s does not open: %v", name, c.ID, err)
		}
		if !sealed {
			continue
		}
		if out == nil {
			out = maps.Clone(c.Env)
		}
		out[name] = opened
	}
	if out == nil {
		return c.Env, nil
	}
	return out, nil
}
