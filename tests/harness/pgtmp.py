#!/usr/bin/python3
"""Throwaway PostgreSQL clusters for tests (stdlib only).

A cluster lives in a fresh temporary directory, listens only on a Unix socket
in that directory, runs with fsync off, and is removed on exit even when the
test fails.  PostgreSQL refuses to run as root, so as root the server runs as
an unprivileged system user (``driftd-test``, created on first use, else
``nobody``).

As a module::

    with PgCluster() as pg:
        pg.psql("SELECT 1")        # -> [["1"]]
        connect(pg.dsn)

As a command::

    pgtmp.py run -- CMD ARGS...

starts a cluster, exports DRIFTD_TEST_DSN, PGHOST, PGPORT, PGUSER, PGDATABASE,
PGTMP_STOP_CMD and PGTMP_START_CMD (shell commands that stop / restart the
server, for fault tests), runs CMD and exits with its status.
"""

import argparse
import glob
import os
import pwd
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

TEST_USER = "driftd-test"
DATABASE = "driftd"
PORT_RANGE = (20000, 60000)
START_ATTEMPTS = 5
# psql prints SQL NULL as this, so psql() can tell NULL from ''.
NULL_MARKER = "\x01NULL\x01"
# ASCII unit/record separators, so values may hold tabs and newlines.
FIELD_SEP = "\x1f"
RECORD_SEP = "\x1e"
# Server settings: private socket, nothing durable, quiet.
SERVER_SETTINGS = (
    ("listen_addresses", ""),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "30"),
    ("shared_buffers", "16MB"),
)


class PgError(RuntimeError):
    pass


def find_bindir():
    """Directory holding initdb/pg_ctl/postgres: pg_config's, else the newest
    /usr/lib/postgresql/*/bin."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                             text=True, check=True).stdout.strip()
        if os.access(os.path.join(out, "initdb"), os.X_OK):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass

    def version(path):
        try:
            return int(path.split("/")[-2])
        except ValueError:
            return -1

    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.access(os.path.join(d, "initdb"), os.X_OK)]
    if not dirs:
        raise PgError("no PostgreSQL server binaries (initdb) found; "
                      "install postgresql")
    return max(dirs, key=version)


def server_user():
    """The user the server runs as: ourselves, or an unprivileged one as root."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam(TEST_USER)
        return TEST_USER
    except KeyError:
        pass
    # Parallel runs may race to create the user; whoever loses just checks again.
    subprocess.run(["useradd", "--system", "--no-create-home",
                    "--shell", "/usr/sbin/nologin", TEST_USER],
                   capture_output=True)
    try:
        pwd.getpwnam(TEST_USER)
        return TEST_USER
    except KeyError:
        return "nobody"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PgCluster:
    """A private PostgreSQL server; use as a context manager."""

    def __init__(self, bindir=None, parent_dir=None):
        self.bindir = bindir or find_bindir()
        self.user = server_user()
        self.parent_dir = parent_dir or tempfile.gettempdir()
        self.root = None
        self.port = None
        self.running = False

    # -- paths and commands -------------------------------------------------

    @property
    def sockdir(self):
        return self.root

    @property
    def datadir(self):
        return os.path.join(self.root, "data")

    @property
    def logfile(self):
        return os.path.join(self.root, "postgres.log")

    @property
    def dsn(self):
        return "host=%s port=%d dbname=%s user=%s" % (
            self.sockdir, self.port, DATABASE, self.user)

    def _as_user(self, argv):
        if os.geteuid() == 0:
            return ["runuser", "-u", self.user, "--"] + argv
        return argv

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _server_options(self):
        settings = SERVER_SETTINGS + (("unix_socket_directories", self.sockdir),)
        return " ".join("-c %s=%s" % (k, shlex.quote(v)) for k, v in settings)

    def start_argv(self):
        return self._as_user([self._bin("pg_ctl"), "start", "-w", "-t", "60",
                              "-D", self.datadir, "-l", self.logfile,
                              "-o", "-p %d %s" % (self.port, self._server_options())])

    def stop_argv(self, mode="fast"):
        return self._as_user([self._bin("pg_ctl"), "stop", "-w", "-t", "60",
                              "-m", mode, "-D", self.datadir])

    def _run(self, argv, check=True):
        # The server user cannot read root's working directory; run from ours.
        p = subprocess.run(argv, cwd=self.root, capture_output=True, text=True,
                           env=_clean_env())
        if check and p.returncode != 0:
            raise PgError("%s failed (%d): %s%s" % (
                shlex.join(argv), p.returncode, p.stdout, p.stderr))
        return p

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self):
        try:
            self.create()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def create(self):
        sweep_stale(self.parent_dir)
        self.root = tempfile.mkdtemp(prefix="pgtmp-", dir=self.parent_dir)
        with open(os.path.join(self.root, "owner.pid"), "w") as f:
            f.write("%d\n" % os.getpid())
        # 0755: clients running as other users must reach the socket; the
        # data directory itself is created 0700 by initdb.
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(self._as_user([self._bin("initdb"), "-A", "trust", "--nosync",
                                 "-U", self.user, "-E", "UTF8", "--locale=C",
                                 "-D", self.datadir]))
        self._start_on_free_port()
        self.psql("CREATE DATABASE %s" % DATABASE, dbname="postgres")

    def _start_on_free_port(self):
        # The port only names the socket file and the shared memory key, so a
        # collision is rare; it still happens with many parallel runs.
        last = None
        for _ in range(START_ATTEMPTS):
            self.port = random.randint(*PORT_RANGE)
            p = self._run(self.start_argv(), check=False)
            if p.returncode == 0:
                self.running = True
                return
            last = p.stdout + p.stderr + self.log_tail()
        raise PgError("could not start PostgreSQL:\n" + (last or ""))

    def start(self):
        """Start the server again after stop(), on the same port."""
        if not self.running:
            self._run(self.start_argv())
            self.running = True

    def stop(self, mode="fast"):
        if self.running:
            self._run(self.stop_argv(mode))
            self.running = False

    def destroy(self):
        if self.root is None:
            return
        if self.running:
            # Immediate: nothing in a throwaway cluster is worth a checkpoint.
            self._run(self.stop_argv("immediate"), check=False)
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def log_tail(self, lines=30):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # -- queries -------------------------------------------------------------

    def psql(self, sql, dbname=DATABASE):
        """Run SQL through psql; return the rows of the last statement as lists
        of strings, SQL NULL as None.  Raises PgError on any SQL error."""
        argv = [self._bin("psql"), "-X", "-q", "-A", "-t",
                "-F", FIELD_SEP, "-R", RECORD_SEP,
                "-v", "ON_ERROR_STOP=1", "-v", "SHOW_ALL_RESULTS=off",
                "-P", "null=" + NULL_MARKER,
                "-h", self.sockdir, "-p", str(self.port), "-U", self.user,
                "-d", dbname, "-c", sql]
        out = self._run(argv).stdout
        if out.endswith("\n"):
            out = out[:-1]
        return [[None if v == NULL_MARKER else v for v in rec.split(FIELD_SEP)]
                for rec in out.split(RECORD_SEP) if rec]

    def env(self):
        """Environment variables that point clients at this cluster."""
        return {
            "DRIFTD_TEST_DSN": self.dsn,
            "PGHOST": self.sockdir,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": DATABASE,
            "PGTMP_STOP_CMD": shlex.join(self.stop_argv()),
            "PGTMP_START_CMD": shlex.join(self.start_argv()),
        }


def _clean_env():
    # Our own PG* settings must not redirect initdb/pg_ctl/psql elsewhere.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def sweep_stale(parent_dir):
    """Remove clusters left behind by a harness that was SIGKILLed (e.g. by a
    test timeout): their owner.pid names a process that no longer exists."""
    for root in glob.glob(os.path.join(parent_dir, "pgtmp-*")):
        try:
            with open(os.path.join(root, "owner.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(pid):
            continue
        data = os.path.join(root, "data")
        pidfile = os.path.join(data, "postmaster.pid")
        if os.path.exists(pidfile):
            try:
                with open(pidfile) as f:
                    os.kill(int(f.readline().strip()), signal.SIGQUIT)
            except (OSError, ValueError):
                pass
        shutil.rmtree(root, ignore_errors=True)


def _raise_on_signal(signum, frame):
    # Turn SIGTERM/SIGHUP into an exception so the cluster is torn down.
    raise KeyboardInterrupt("signal %d" % signum)


def cmd_run(args):
    if not args.command:
        print("pgtmp.py run: missing command after --", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_on_signal)
    with PgCluster() as pg:
        env = dict(os.environ)
        env.update(pg.env())
        try:
            rc = subprocess.run(args.command, env=env).returncode
        except KeyboardInterrupt:
            return 130
        if rc != 0:
            print("pgtmp: %s exited with %d; server log tail:\n%s" % (
                args.command[0], rc, pg.log_tail()), file=sys.stderr)
        return 128 - rc if rc < 0 else rc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    run = sub.add_parser("run", help="run a command against a throwaway cluster")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    try:
        return cmd_run(args)
    except PgError as e:
        print("pgtmp: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
