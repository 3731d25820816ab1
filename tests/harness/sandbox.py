#!/usr/bin/python3
"""Run a command under a systemd service unit's process restrictions, as far
as they apply without systemd as PID 1 (stdlib + python3-seccomp).

    sandbox.py run --unit driftd.service [--user NAME] -- CMD ARGS...
    sandbox.py allowed --unit driftd.service     # the allowed syscalls

`run` does in this process what systemd does in a service's process before
exec, then execs CMD:

- User=: becomes that user (or NAME) with no supplementary groups, hence
  no capabilities, with HOME, USER, LOGNAME and SHELL as systemd sets
  them; UMask=.
- NoNewPrivileges= (libseccomp sets it in any case).
- SystemCallFilter=: the allow list, with groups expanded by
  `systemd-analyze syscall-filter`, @default added and `~` entries removed
  in order, as systemd does; other calls fail with SystemCallErrorNumber=
  (or kill the process, systemd's default).
- RestrictNamespaces=yes: clone/unshare with namespace flags and setns are
  refused; clone3 fails with ENOSYS, which makes glibc fall back to clone
  (systemd does the same, as clone3's flags cannot be inspected).
- MemoryDenyWriteExecute=: mmap writable+executable, mprotect and
  pkey_mprotect adding PROT_EXEC, shmat with SHM_EXEC are refused.
- RestrictAddressFamilies=: socket() of other families fails with
  EAFNOSUPPORT.
- SystemCallArchitectures=native: only the native ABI is let through.

Not applied: the mount namespace (ProtectSystem=, PrivateTmp=, ...),
PrivateUsers=, PrivateDevices= and the cgroup settings; they change what
the process sees, not which calls it may make.
"""

import argparse
import errno
import os
import pwd
import subprocess
import sys

import seccomp

PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
CLONE_NEW_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 |
                   0x10000000 | 0x20000000 | 0x40000000 | 0x00000080)
AF_MAX = 46
FAMILIES = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
            "AF_NETLINK": 16, "AF_PACKET": 17}


def read_unit(path):
    """[Service] settings of a unit file: {key: [values in order]}."""
    settings, section = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), []).append(value.strip())
    return settings


_groups = {}


def expand(name):
    """Syscall names in a @group (recursively) or the name itself."""
    if not name.startswith("@"):
        return {name}
    if name not in _groups:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                             capture_output=True, text=True, check=True).stdout
        members = set()
        for line in out.splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                members |= expand(line)
        _groups[name] = members
    return _groups[name]


def allowed_syscalls(settings):
    """The allow list SystemCallFilter= lines describe, in systemd's order."""
    allowed = None
    for value in settings.get("SystemCallFilter", []):
        if not value:
            allowed = None
            continue
        deny = value.startswith("~")
        names = set().union(*(expand(n) for n in value.lstrip("~").split()))
        if allowed is None:
            if deny:
                raise SystemExit("sandbox.py: deny-list filters not handled")
            allowed = expand("@default")
        allowed = allowed - names if deny else allowed | names
    if allowed is None:
        raise SystemExit("sandbox.py: the unit has no SystemCallFilter=")
    return {n for n in allowed if resolvable(n)}


def resolvable(name):
    """Known to this architecture; multiplexed pseudo-calls such as
    socketcall resolve to negative numbers on x86_64."""
    try:
        return seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0
    except (ValueError, RuntimeError):
        return False


def yes(settings, key):
    return settings.get(key, ["no"])[-1] in ("yes", "true", "1", "on")


def build_filter(settings):
    err = settings.get("SystemCallErrorNumber", [""])[-1]
    default = seccomp.ERRNO(getattr(errno, err)) if err else seccomp.KILL_PROCESS
    f = seccomp.SyscallFilter(defaction=default)
    allowed = allowed_syscalls(settings)
    special = set()
    eperm = seccomp.ERRNO(errno.EPERM)
    A = seccomp.Arg

    def rule(action, name, *args):
        if name in allowed:
            special.add(name)
            # libseccomp refuses a rule that repeats the default action.
            if action != default:
                f.add_rule(action, name, *args)

    if yes(settings, "MemoryDenyWriteExecute"):
        wx = PROT_WRITE | PROT_EXEC
        for ok in (0, PROT_WRITE, PROT_EXEC):
            rule(seccomp.ALLOW, "mmap", A(2, seccomp.MASKED_EQ, wx, ok))
        rule(eperm, "mmap", A(2, seccomp.MASKED_EQ, wx, wx))
        for name in ("mprotect", "pkey_mprotect"):
            rule(seccomp.ALLOW, name, A(2, seccomp.MASKED_EQ, PROT_EXEC, 0))
            rule(eperm, name, A(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        rule(seccomp.ALLOW, "shmat", A(2, seccomp.MASKED_EQ, SHM_EXEC, 0))
        rule(eperm, "shmat", A(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
    if yes(settings, "RestrictNamespaces"):
        for name in ("clone", "unshare"):
            rule(seccomp.ALLOW, name,
                 A(0, seccomp.MASKED_EQ, CLONE_NEW_FLAGS, 0))
        rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        rule(eperm, "setns")
    families = settings.get("RestrictAddressFamilies", [])
    if families:
        ok = {FAMILIES[n] for v in families for n in v.split()}
        no = seccomp.ERRNO(errno.EAFNOSUPPORT)
        for fam in range(AF_MAX):
            rule(seccomp.ALLOW if fam in ok else no, "socket",
                 A(0, seccomp.EQ, fam))
        rule(no, "socket", A(0, seccomp.GE, AF_MAX))
    for name in sorted(allowed - special):
        f.add_rule(seccomp.ALLOW, name)
    return f


def cmd_run(args):
    settings = read_unit(args.unit)
    f = build_filter(settings)
    user = args.user or settings.get("User", [None])[-1]
    if user and os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        # As systemd sets them for User=.
        os.environ.update(HOME=pw.pw_dir, USER=pw.pw_name,
                          LOGNAME=pw.pw_name, SHELL=pw.pw_shell)
    umask = settings.get("UMask", [None])[-1]
    if umask:
        os.umask(int(umask, 8))
    f.load()
    os.execvp(args.command[0], args.command)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    run = sub.add_parser("run")
    run.add_argument("--unit", required=True)
    run.add_argument("--user")
    run.add_argument("command", nargs=argparse.REMAINDER)
    allowed = sub.add_parser("allowed")
    allowed.add_argument("--unit", required=True)
    args = ap.parse_args()
    if args.verb == "allowed":
        print("\n".join(sorted(allowed_syscalls(read_unit(args.unit)))))
        return 0
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
