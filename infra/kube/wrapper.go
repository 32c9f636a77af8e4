package kube

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// The exec API has no working directory, no environment and no way to stop
// a process, so every command runs under this POSIX sh wrapper. Its
// positional parameters are, in order: the pid file, the project root (""
// for the container's working directory), the working directory below it
// ("" for the root), and then the command's argv. The command's variables
// come on the wrapper's stdin (envBlock), never among its parameters: the
// parameters are the exec request's URL, which API server audit logs and
// proxies record. Nothing from a request is ever part of the script text.
//
// The command gets a process group of its own, so that a kill reaches it and
// everything it starts and nothing else: when the wrapper is not a group
// leader already, it execs the command through setsid, which (as the caller
// leads no group) makes the same process, PID $$, the leader of a new group
// without forking, so the group's ID is $$ before and after. It removes the
// pid files of earlier commands whose processes are all gone; reads the
// variables; records the group ("g PGID") in its pid file, or only its PID
// ("p PID") when it cannot tell (no /proc, or no setsid);
// checks the working directory, exports the variables, looks the program up
// in the resulting PATH, and execs it with stdin empty. Its own failures
// leave a reason in <pid file>.err and exit 126 (cannot run) or 127 (not
// found) without output. Its variables are prefixed _rdev_ (names that
// requests may not set), so exported variables cannot change its course.
//
// It is in three parts: wrapperSetup, which needs only the directory of the
// pid files in _rdev_dir; wrapperEnv, which takes the parameters and reads
// the variables; and wrapperRun, which runs the command. A warm wrapper
// (warmScript) runs the first before its command is known.
const wrapperScript = `_rdev_dir=${1%/*}
_rdev_noenv() { _rdev_fail 126 "env: the variables did not arrive on the exec's stdin"; }
` + wrapperSetup + wrapperEnv + wrapperRun

// wrapperGet defines _rdev_get, which reads one value framed by encodeLines
// from stdin into _rdev_l.
const wrapperGet = `_rdev_get() {
	IFS= read -r _rdev_l || return 1
	case $_rdev_l in
	e*) _rdev_l=$(printf '%b.' "${_rdev_l#e}"); _rdev_l=${_rdev_l%.};;
	*) _rdev_l=${_rdev_l#l};;
	esac
}
`

// wrapperSetup finds out how the command will get its process group,
// removes the pid files in _rdev_dir whose processes are all gone, and
// defines _rdev_get (wrapperGet).
const wrapperSetup = wrapperGet + `_rdev_leader() { set -f; set -- $1; set +f; [ "$3" = "$$" ]; }
_rdev_mode=p _rdev_setsid=
if read -r _rdev_st 2>/dev/null </proc/$$/stat; then
	if _rdev_leader "${_rdev_st##*) }"; then _rdev_mode=g
	elif command -v setsid >/dev/null 2>&1; then _rdev_mode=g _rdev_setsid=1
	fi
fi
for _rdev_o in "$_rdev_dir"/rdev-*.pid; do
	read -r _rdev_m _rdev_q 2>/dev/null <"$_rdev_o" && [ -n "$_rdev_q" ] || continue
	if [ "$_rdev_m" = g ]; then _rdev_t=-$_rdev_q; else _rdev_t=$_rdev_q; fi
	kill -s 0 -- "$_rdev_t" 2>/dev/null || kill -s 0 -- "$_rdev_q" 2>/dev/null || rm -rf -- "$_rdev_o" "$_rdev_o.s"
done
for _rdev_o in "$_rdev_dir"/rdev-*.pid.s; do
	[ -e "${_rdev_o%.s}" ] || rm -rf -- "$_rdev_o"
done
`

// wrapperEnv takes the pid file, root and working directory from the
// positional parameters, leaving argv, and reads the variables from stdin
// (envBlock) into _rdev_n parameters before argv, then the file secrets'
// names and values into _rdev_nf parameters before those; it calls
// _rdev_noenv if they do not all arrive. The shell's read takes no byte
// past the block's last line, so whatever follows it on stdin is left for
// the command. Nothing is exported yet: CDPATH and the like must not steer
// the wrapper.
const wrapperEnv = `_rdev_fail() { printf '%s\n' "$2" >"$_rdev_f.err" 2>/dev/null; exit "$1"; }
_rdev_f=$1 _rdev_root=$2 _rdev_wd=$3
shift 3
IFS= read -r _rdev_n || _rdev_noenv
_rdev_i=$_rdev_n
while [ "$_rdev_i" -gt 0 ]; do _rdev_get || _rdev_noenv; set -- "$_rdev_l" "$@"; _rdev_i=$((_rdev_i-1)); done
IFS= read -r _rdev_nf || _rdev_noenv
_rdev_i=$_rdev_nf
while [ "$_rdev_i" -gt 0 ]; do _rdev_get || _rdev_noenv; set -- "$_rdev_l" "$@"; _rdev_i=$((_rdev_i-1)); done
`

// wrapperRun records the process group and runs the command that wrapperEnv
// left in the positional parameters. File secrets go to <pid file>.s,
// made only once the pid file is there (a directory without its pid file
// is left over, and the next wrapper removes it): the directory 0700 and
// the files 0400, the values written by the shell's printf, never on a
// command line.
const wrapperRun = `echo "$_rdev_mode $$" >"$_rdev_f"
if [ -e "$_rdev_f.cancel" ]; then rm -f "$_rdev_f" "$_rdev_f.cancel"; exit 143; fi
_rdev_s=
if [ "$_rdev_nf" -gt 0 ]; then
	_rdev_s=$_rdev_f.s
	(
		umask 077
		mkdir -- "$_rdev_s" || exit 1
		while [ "$_rdev_nf" -gt 0 ]; do printf '%s' "$1" >"$_rdev_s/$2" || exit 1; shift 2; _rdev_nf=$((_rdev_nf-2)); done
		chmod 400 "$_rdev_s"/* || exit 1
	) || { rm -rf -- "$_rdev_s"; _rdev_fail 126 "secrets: cannot write the command's secret files in $_rdev_s"; }
	shift "$_rdev_nf"
fi
if [ -n "$_rdev_root" ]; then
	cd -- "$_rdev_root" 2>/dev/null || _rdev_fail 126 "project root $_rdev_root does not exist or is not a directory"
fi
if [ -n "$_rdev_wd" ]; then
	cd -P . 2>/dev/null; _rdev_top=$PWD
	cd -P -- "$_rdev_wd" 2>/dev/null || _rdev_fail 126 "workdir: \"$_rdev_wd\" does not exist in the project or is not a directory"
	case "$PWD/" in "${_rdev_top%/}"/*) ;; *) _rdev_fail 126 "workdir: \"$_rdev_wd\" leads out of the project directory";; esac
fi
while [ "$_rdev_n" -gt 0 ]; do export "$1" || _rdev_fail 126 "env: cannot set a variable"; shift; _rdev_n=$((_rdev_n-1)); done
[ -z "$_rdev_s" ] || export RDEV_SECRETS_DIR="$_rdev_s"
_rdev_p=$1
case $_rdev_p in
*/*)
	[ -e "$_rdev_p" ] || _rdev_fail 127 "program \"$_rdev_p\" not found in the project"
	[ -d "$_rdev_p" ] && _rdev_fail 126 "program \"$_rdev_p\" is a directory"
	[ -x "$_rdev_p" ] || _rdev_fail 126 "program \"$_rdev_p\" is not executable";;
*)
	_rdev_found= _rdev_rest=$PATH:
	while [ -n "$_rdev_rest" ]; do
		_rdev_d=${_rdev_rest%%:*} _rdev_rest=${_rdev_rest#*:}
		[ -n "$_rdev_d" ] || _rdev_d=.
		if [ -f "$_rdev_d/$_rdev_p" ] && [ -x "$_rdev_d/$_rdev_p" ]; then _rdev_found=1; break; fi
	done
	[ -n "$_rdev_found" ] || _rdev_fail 127 "program \"$_rdev_p\" not found in the project (PATH=$PATH)";;
esac
[ -n "$_rdev_setsid" ] && exec setsid -- "$@" </dev/null
exec "$@" </dev/null`

// killScript stops what the pid file $1 records: SIGTERM, then SIGKILL once
// $2 tenths of a second have passed with any of it alive, then it waits at
// most $3 tenths for it to be gone. It prints "gone TERM", "gone KILL",
// "alive KILL" or "none" (nothing was recorded: the command has not started,
// and the marker it leaves makes the wrapper exit at once should it start
// late).
const killScript = `f=$1 grace=$2 limit=$3
: >"$f.cancel"
if ! read -r mode pg 2>/dev/null <"$f" || [ -z "$pg" ]; then echo none; exit 0; fi
tgt=$pg
[ "$mode" = g ] && tgt=-$pg
# Until setsid has run, the group does not exist yet but its leader does.
sigall() { kill -s "$1" -- "$tgt" 2>/dev/null; [ "$mode" = g ] && kill -s "$1" -- "$pg" 2>/dev/null; :; }
tick() { sleep 0.1 2>/dev/null || sleep 1; }
alive() {
	if [ ! -r /proc/self/stat ]; then kill -s 0 -- "$tgt" 2>/dev/null; return; fi
	if read -r l 2>/dev/null </proc/$pg/stat; then
		l=${l##*) }
		case $l in Z*|X*) ;; *) return 0;; esac
	fi
	[ "$mode" = g ] || return 1
	for s in /proc/[0-9]*/stat; do
		read -r l 2>/dev/null <"$s" || continue
		l=${l##*) }
		set -f; set -- $l; set +f
		[ "$3" = "$pg" ] && [ "$1" != Z ] && [ "$1" != X ] && return 0
	done
	return 1
}
sigall TERM
sig=TERM i=0
while alive; do
	if [ "$i" -ge "$grace" ]; then sigall KILL; sig=KILL; break; fi
	tick; i=$((i+1))
done
i=0
while [ "$sig" = KILL ] && alive && [ "$i" -lt "$limit" ]; do tick; i=$((i+1)); done
if [ "$sig" = KILL ] && alive; then echo "alive KILL"; else echo "gone $sig"; fi
rm -rf "$f" "$f.cancel" "$f.err" "$f.s"`

// reasonScript prints and removes the reason the wrapper left in $1.err.
const reasonScript = `cat -- "$1.err" 2>/dev/null; rm -rf -- "$1" "$1.err" "$1.cancel" "$1.s"`

// forgetScript removes the file secrets of the command whose pid file is
// $1, once it has ended.
const forgetScript = `rm -rf -- "$1.s"`

// envName is a variable name the shell can export.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// wrapped returns the argv that runs req under the wrapper, recording its
// process group in pidFile. It holds no variable's value: those go to the
// wrapper's stdin (envBlock).
func wrapped(req domain.ExecRequest, root, pidFile string) []string {
	// "sh -c script name args...": the args are the positional parameters.
	return append([]string{"/bin/sh", "-c", wrapperScript, "rdev"}, wrapperParams(req, root, pidFile)...)
}

// wrapperParams returns the wrapper's positional parameters for req.
func wrapperParams(req domain.ExecRequest, root, pidFile string) []string {
	return append([]string{pidFile, root, req.Workdir}, req.Argv...)
}

// envBlock returns what the wrapper reads from its stdin before anything
// else: req's variables as NAME=VALUE, sorted by name, framed by
// encodeLines, then its file secrets as name and value, sorted by name,
// framed the same way.
func envBlock(req domain.ExecRequest) []byte {
	pairs := make([]string, 0, len(req.Env))
	for _, k := range slices.Sorted(maps.Keys(req.Env)) {
		pairs = append(pairs, k+"="+req.Env[k])
	}
	files := make([]string, 0, 2*len(req.SecretFiles))
	for _, k := range slices.Sorted(maps.Keys(req.SecretFiles)) {
		files = append(files, k, req.SecretFiles[k])
	}
	return append(encodeLines(pairs), encodeLines(files)...)
}

// encodeLines frames values as the wrapper's _rdev_get reads them: their
// number on a line, then each on a line of its own, "l" and the value, or,
// for a value holding a newline or a backslash, "e" and the value with those
// written \n and \\ (printf %b reads it back). A value never holds a NUL.
func encodeLines(values []string) []byte {
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(values)))
	b.WriteByte('\n')
	for _, p := range values {
		if !strings.ContainsAny(p, "\n\\") {
			b.WriteByte('l')
			b.WriteString(p)
			b.WriteByte('\n')
			continue
		}
		b.WriteByte('e')
		for _, r := range []byte(p) {
			switch r {
			case '\\':
				b.WriteString(`\\`)
			case '\n':
				b.WriteString(`\n`)
			default:
				b.WriteByte(r)
			}
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// validate checks what the wrapper cannot check itself. It returns EINVALID.
func validate(req domain.ExecRequest) error {
	if req.Project == nil {
		return domain.Errorf(domain.EINVALID, "no project given")
	}
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return domain.Errorf(domain.EINVALID, "argv: empty")
	}
	for _, a := range req.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return domain.Errorf(domain.EINVALID, "argv: holds a NUL byte")
		}
	}
	for k, v := range req.Env {
		if !envName.MatchString(k) || strings.IndexByte(v, 0) >= 0 {
			return domain.Errorf(domain.EINVALID, "env: %q is not a valid variable name, or its value holds a NUL byte", domain.Clip(k))
		}
		if strings.HasPrefix(strings.ToLower(k), "_rdev_") {
			return domain.Errorf(domain.EINVALID, "env: %q: names starting with _rdev_ are reserved", domain.Clip(k))
		}
	}
	for k, v := range req.SecretFiles {
		if !envName.MatchString(k) || strings.IndexByte(v, 0) >= 0 {
			return domain.Errorf(domain.EINVALID, "secret file: %q is not a valid name, or its value holds a NUL byte", domain.Clip(k))
		}
	}
	wd := req.Workdir
	switch {
	case wd == "":
	case strings.IndexByte(wd, 0) >= 0:
		return domain.Errorf(domain.EINVALID, "workdir: holds a NUL byte")
	case path.IsAbs(wd):
		return domain.Errorf(domain.EINVALID, "workdir: %q must be relative to the project directory", domain.Clip(wd))
	case path.Clean(wd) == ".." || strings.HasPrefix(path.Clean(wd), "../"):
		return domain.Errorf(domain.EINVALID, "workdir: %q leads out of the project directory", domain.Clip(wd))
	}
	return nil
}

// pidFile returns a fresh pid file name in dir.
func pidFile(dir string) string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return path.Join(dir, "rdev-"+hex.EncodeToString(b[:])+".pid")
}

// tenths returns d in tenths of a second, rounded up, for the kill script.
func tenths(d time.Duration) string {
	return strconv.FormatInt(int64((d+99*time.Millisecond)/(100*time.Millisecond)), 10)
}
