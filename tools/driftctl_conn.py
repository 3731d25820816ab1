"""driftctl's shared connection and configuration helper: the daemon's
config file, SQL on its database (through psql) and requests to its side
port.  Commands that need more than the JSON API use Daemon."""

import configparser
import http.client
import json
import socket
import subprocess
import sys
import urllib.parse

DEFAULT_CONFIG = "/etc/driftd/driftd.ini"
DEFAULT_URL = "http://127.0.0.1:7071"
FIELD_SEP = "\x1f"
RECORD_SEP = "\x1e"
NULL = "\x01NULL\x01"


class Failure(Exception):
    """Reported as "driftctl: MESSAGE" with exit status 1."""


def reported(fn):
    """FN(args) as a subcommand's function: a Failure it raises is printed
    as "driftctl: MESSAGE" and the exit status is 1."""
    def wrapped(args):
        try:
            return fn(args)
        except Failure as e:
            print(f"driftctl: {e}", file=sys.stderr)
            return 1
    return wrapped


def read_config(path):
    """The daemon's INI file, read the way it reads it (inline comments
    after whitespace and ';', keys given once)."""
    parser = configparser.ConfigParser(
        delimiters=("=", ":"), comment_prefixes=(";", "#"),
        inline_comment_prefixes=(";",), interpolation=None, strict=False)
    try:
        with open(path) as f:
            parser.read_file(f)
    except OSError as e:
        raise Failure(f"cannot read {path}: {e.strerror}") from e
    except configparser.Error as e:
        raise Failure(f"{path}: {e}") from e
    return parser


def url_from_config(path):
    """The first [listen] http address as a URL (http://HOST:PORT or
    unix:/path); the default URL when the file cannot be read."""
    try:
        cfg = read_config(path)
    except Failure:
        return DEFAULT_URL
    listen = cfg.get("listen", "http", fallback="tcp://127.0.0.1:7071")
    first = next((a.strip() for a in listen.split(",") if a.strip()), "")
    if first.startswith("tcp://"):
        return "http://" + first[6:]
    return first or DEFAULT_URL


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Daemon:
    """What a command needs from a driftd deployment: its config, SQL on
    its database and requests to its side port."""

    def __init__(self, config_path, url):
        self.config_path = config_path
        self.config = read_config(config_path)
        self.dsn = self.config.get("store", "dsn", fallback=None)
        if not self.dsn:
            raise Failure(f"{config_path}: [store] dsn is not set")
        self.url = url

    def sql(self, query, **params):
        """Runs QUERY through psql with :'name' parameters; returns rows as
        lists of strings, None for SQL NULL.  The DSN must work for psql as
        the user running driftctl (service= or ~/.pgpass for passwords)."""
        argv = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-F", FIELD_SEP, "-R", RECORD_SEP, "-P", "null=" + NULL,
                "-d", self.dsn, "-f", "-"]
        for k, v in params.items():
            argv[1:1] = ["-v", f"{k}={v}"]
        try:
            p = subprocess.run(argv, input=query, capture_output=True, text=True)
        except FileNotFoundError as e:
            raise Failure("psql is not installed (Debian: postgresql-client)") from e
        if p.returncode != 0:
            raise Failure("database: " + p.stderr.strip().replace("psql:<stdin>:", ""))
        out = p.stdout.rstrip("\n")
        return [[None if c == NULL else c for c in r.split(FIELD_SEP)]
                for r in out.split(RECORD_SEP) if r.strip("\n")]

    def http(self, method, path, timeout=10):
        """One request to the side port; returns (status, JSON or text)."""
        if self.url.startswith("unix:"):
            conn = UnixHTTPConnection(self.url[5:], timeout)
        else:
            u = urllib.parse.urlsplit(self.url)
            if u.scheme != "http" or not u.hostname:
                raise Failure(f"cannot use the side port URL {self.url}")
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        except OSError as e:
            raise Failure(f"cannot reach driftd at {self.url}: {e}") from e
        finally:
            conn.close()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text
