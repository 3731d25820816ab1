"""driftctl status, history and alarms: the JSON API (/v1/models/...) as
tables.

Tables are coloured only when standard output is a terminal and NO_COLOR is
unset; --json prints the API's answer unchanged, for scripts."""

import datetime
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

from driftctl_conn import Failure, reported

TIMEOUT_S = 30
RED, GREEN, DIM, BOLD, RESET = "\033[31m", "\033[32m", "\033[2m", "\033[1m", "\033[0m"


def api_get(url, path, params=None):
    """GET url+path; the decoded JSON.  Raises Failure with the daemon's
    own error message when it answers with one."""
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items()
                                    if v is not None})
    full = url.rstrip("/") + path + ("?" + query if query else "")
    try:
        with urllib.request.urlopen(full, timeout=TIMEOUT_S) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read())["error"]
        except (ValueError, KeyError, TypeError):
            msg = e.reason
        raise Failure(f"{path}: {e.code} {msg}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Failure(f"cannot reach driftd at {url}: {reason}") from None


def quote(s):
    return urllib.parse.quote(s, safe="")


# -- time arguments -------------------------------------------------------

RELATIVE = re.compile(r"^(\d+)(s|m|h|d|w)$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def time_arg(text):
    """RFC 3339, unix seconds, or a duration ago (30m, 24h, 7d, 2w), as
    the daemon accepts it."""
    m = RELATIVE.match(text)
    if m:
        ago = datetime.timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])
        t = datetime.datetime.now(datetime.timezone.utc) - ago
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if re.match(r"^\d+(\.\d+)?$", text):
        return text
    try:
        datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(text) from None
    return text if re.search(r"(Z|[+-]\d\d:\d\d)$", text) else text + "Z"


time_arg.__name__ = "time (RFC 3339, unix seconds or 30m/24h/7d ago)"

# -- tables ---------------------------------------------------------------


class Painter:
    def __init__(self, enabled):
        self.enabled = enabled

    def __call__(self, text, style):
        return f"{style}{text}{RESET}" if self.enabled and style else text


def use_colour():
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def table(header, rows, paint):
    """Aligned columns; a cell is text or (text, style).  Numbers (a
    leading digit, sign or dot) are right-aligned."""
    def text(c):
        return c[0] if isinstance(c, tuple) else c

    widths = [max(len(text(r[i])) for r in [header] + rows)
              for i in range(len(header))]
    out = ["  ".join(paint(h.ljust(w), BOLD) for h, w in zip(header, widths)).rstrip()]
    for r in rows:
        cells = []
        for c, w in zip(r, widths):
            t = text(c)
            numeric = bool(re.match(r"^[-+.\d]", t)) and not t.startswith("20")
            cell = t.rjust(w) if numeric else t.ljust(w)
            cells.append(paint(cell, c[1] if isinstance(c, tuple) else None))
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def short_time(iso):
    """2026-11-29T12:00:00.000000Z -> 2026-11-29 12:00:00Z"""
    return iso[:19].replace("T", " ") + "Z" if iso else "-"


def num(v):
    return "-" if v is None else f"{v:.4g}"


def test_cell(t):
    """p-value when the test has one, else the statistic; '!' marks drift."""
    value = f"p={num(t['p_value'])}" if t["p_value"] is not None else num(t["statistic"])
    return (value + (" !" if t["drifted"] else ""), RED if t["drifted"] else None)


# -- status ---------------------------------------------------------------


def status_table(status, paint):
    tests = sorted({t["test"] for s in status["slices"] for t in s["tests"]})
    header = ["SLICE", "WINDOW", "ENDED", "N", "STATE"] + [t.upper() for t in tests]
    rows = []
    for s in status["slices"]:
        by_test = {t["test"]: t for t in s["tests"]}
        state = ("DRIFT", RED) if s["drifted"] else ("ok", GREEN)
        rows.append([s["slice"], str(s["window_id"]), short_time(s["window_end"]),
                     str(s["n"]), state]
                    + [test_cell(by_test[t]) if t in by_test else "-" for t in tests])
    return table(header, rows, paint)


def recent_alarms_table(recent, paint):
    """The status answer's stream_alarms: per slice, its streaming alarms
    since the answer's "since" (24 h ago by default) and the newest."""
    header = ["SLICE", "ALARMS", "NEWEST", "DETECTOR", "SIGNAL", "DIRECTION"]
    rows = [[s["slice"], (str(s["count"]), RED), short_time(s["detected_at"]),
             s["detector"], s["signal"], s["direction"]] for s in recent["slices"]]
    return table(header, rows, paint)


def cmd_status(args):
    models = ([args.model] if args.model else
              [m["name"] for m in api_get(args.url, "/v1/models")["models"]])
    params = {"since": args.since}
    answers = [api_get(args.url, f"/v1/models/{quote(m)}/status", params)
               for m in models]
    if args.json:
        print(json.dumps(answers[0] if args.model else {"models": answers}, indent=2))
        return 0
    paint = Painter(use_colour())
    for i, st in enumerate(answers):
        drifted = sum(s["drifted"] for s in st["slices"])
        summary = (paint(f"{drifted} of {len(st['slices'])} slices drifted", RED)
                   if drifted else paint(f"{len(st['slices'])} slices, no drift", GREEN))
        print(("\n" if i else "") + paint(f"model {st['model']}", BOLD) + f": {summary}")
        if not st["slices"]:
            print(paint("  no window evaluated yet", DIM))
        else:
            print(status_table(st, paint))
        if st["truncated"]:
            print(paint("(more slices than the daemon's read_max_rows; use --json "
                        "or SQL)", DIM))
        # Absent from daemons older than the streaming detectors.
        recent = st.get("stream_alarms")
        if recent and recent["slices"]:
            span = (f"since {short_time(recent['since'])}" if args.since
                    else "in the last 24 h")
            print(paint(f"stream alarms {span} "
                        f"(driftctl alarms {st['model']}):", BOLD))
            print(recent_alarms_table(recent, paint))
            if recent["truncated"]:
                print(paint("(more slices than the daemon's read_max_rows)", DIM))
    return 0


# -- history --------------------------------------------------------------


def cmd_history(args):
    params = {"slice": args.slice, "test": args.test, "since": args.since,
              "until": args.until, "limit": args.limit}
    h = api_get(args.url, f"/v1/models/{quote(args.model)}/history", params)
    header = ["ENDED", "SLICE", "WINDOW", "N", "TEST", "STATISTIC", "P", "THRESHOLD", "DRIFT"]
    return print_listing(args, h, header, "windows", "rows", lambda r: [
        short_time(r["window_end"]), r["slice"], str(r["window_id"]), str(r["n"]),
        r["test"], num(r["statistic"]), num(r["p_value"]), num(r["threshold"]),
        ("yes", RED) if r["drifted"] else ("no", GREEN)])


def print_listing(args, answer, header, what, older, row):
    """An API listing as JSON (--json) or as a table of ROW(r) for each
    row, saying when none matched and when older ones were left out."""
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    paint = Painter(use_colour())
    rows = [row(r) for r in answer["rows"]]
    if not rows:
        print(paint(f"no {what} match", DIM))
        return 0
    print(table(header, rows, paint))
    if answer["truncated"]:
        print(paint(f"(older {older} left out: the newest {len(rows)} are shown; "
                    "raise --limit or narrow --since)", DIM))
    return 0


# -- alarms ---------------------------------------------------------------


def cmd_alarms(args):
    params = {"slice": args.slice, "detector": args.detector, "signal": args.signal,
              "since": args.since, "until": args.until, "limit": args.limit}
    a = api_get(args.url, f"/v1/models/{quote(args.model)}/alarms", params)
    header = ["DETECTED", "SLICE", "DETECTOR", "SIGNAL", "DIRECTION", "STATISTIC",
              "THRESHOLD", "SEEN", "MEAN BEFORE -> AFTER", "N BEFORE/AFTER"]
    return print_listing(args, a, header, "stream alarms", "alarms", lambda r: [
        short_time(r["detected_at"]), r["slice"], (r["detector"], RED), r["signal"],
        r["direction"], num(r["statistic"]), num(r["threshold"]),
        str(r["records_seen"]), f"{num(r['mean_before'])} -> {num(r['mean_after'])}",
        f"{r['n_before']}/{r['n_after']}"])


def register(sub):
    p = sub.add_parser("status", help="latest decision of every slice, per test")
    p.add_argument("model", nargs="?", help="one model (default: all)")
    p.add_argument("--since", type=time_arg,
                   help="stream alarms summarised from: RFC 3339, unix seconds, "
                        "or 24h/7d ago (default: the last 24 h)")
    p.add_argument("--json", action="store_true", help="the API's JSON, unchanged")
    p.set_defaults(func=reported(cmd_status))

    p = sub.add_parser("history", help="test results of a model's windows over time")
    p.add_argument("model")
    p.add_argument("--slice", help="one slice, e.g. '*' or 'region=eu'")
    p.add_argument("--test", help="one test, e.g. mmd")
    p.add_argument("--since", type=time_arg,
                   help="windows ending at or after: RFC 3339, unix seconds, or 24h/7d ago")
    p.add_argument("--until", type=time_arg, help="windows ending before")
    p.add_argument("--limit", type=int, default=200,
                   help="newest rows shown (default %(default)s)")
    p.add_argument("--json", action="store_true", help="the API's JSON, unchanged")
    p.set_defaults(func=reported(cmd_history))

    p = sub.add_parser("alarms", help="alarms of a model's streaming detectors, newest first")
    p.add_argument("model")
    p.add_argument("--slice", help="one slice, e.g. '*' or 'region=eu'")
    p.add_argument("--detector", choices=["page_hinkley", "adwin"], help="one detector")
    p.add_argument("--signal", choices=["score", "error"], help="one signal")
    p.add_argument("--since", type=time_arg,
                   help="detected at or after: RFC 3339, unix seconds, or 24h/7d ago")
    p.add_argument("--until", type=time_arg, help="detected before")
    p.add_argument("--limit", type=int, default=200,
                   help="newest alarms shown (default %(default)s)")
    p.add_argument("--json", action="store_true", help="the API's JSON, unchanged")
    p.set_defaults(func=reported(cmd_alarms))
