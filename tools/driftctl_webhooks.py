"""driftctl webhooks: deliveries and endpoints (docs/webhooks.md).

    webhooks list [--status S] [--endpoint E] [--limit N] [--json]
    webhooks redeliver ID       send again, same webhook-id
    webhooks enable NAME        re-enable an endpoint a 410 disabled
    webhooks test NAME          have driftd send a signed test event

list, redeliver and enable work on the database (the driftd.webhook_*
tables and views); test asks the daemon (POST /v1/webhooks/NAME/test) and
waits for the outcome in the database."""

import json
import time

from driftctl_conn import Daemon, Failure, reported

LIST_COLUMNS = ["id", "event", "model", "endpoint", "status", "attempts",
                "last_http_status", "created_at", "last_attempt_at",
                "next_attempt_at", "last_error"]


def cmd_list(d, args):
    rows = d.sql(
        "SELECT " + ", ".join(LIST_COLUMNS) + " FROM driftd.webhook_deliveries "
        "WHERE (:'status' = '' OR status = :'status') "
        "AND (:'endpoint' = '' OR endpoint = :'endpoint') "
        "ORDER BY created_at DESC, id DESC LIMIT :'limit'::int",
        status=args.status or "", endpoint=args.endpoint or "", limit=args.limit)
    if args.json:
        for r in rows:
            print(json.dumps(dict(zip(LIST_COLUMNS, r))))
        return 0
    shown = ["id", "event", "model", "endpoint", "status", "attempts",
             "last_http_status", "created_at", "last_error"]
    table = [[("-" if v is None else v) for v in
              (dict(zip(LIST_COLUMNS, r))[c] for c in shown)] for r in rows]
    for r in table:
        r[7] = r[7][:19]
        r[8] = r[8][:60]
    heads = ["id", "event", "model", "endpoint", "status", "tries", "http",
             "created (UTC)", "last error"]
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(heads)]
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip())
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    if not rows:
        print("(no deliveries)")
    return 0


def cmd_redeliver(d, args):
    rows = d.sql(
        "WITH old AS (SELECT id, status FROM driftd.webhook_outbox "
        "             WHERE id = :'id' FOR UPDATE) "
        "UPDATE driftd.webhook_outbox o SET status = 'pending', attempts = 0, "
        "       first_attempt_at = NULL, next_attempt_at = now(), "
        "       delivered_at = NULL, last_http_status = NULL, last_error = NULL "
        "  FROM old WHERE o.id = old.id "
        "RETURNING o.id, o.event, coalesce(o.model, '-'), o.endpoint, old.status",
        id=args.id)
    if not rows:
        raise Failure(f"no webhook delivery with id {args.id}")
    mid, event, model, endpoint, before = rows[0]
    print(f"{mid} ({event}, model {model}) was {before}; queued again for "
          f"[webhook.{endpoint}] with the same webhook-id")
    return 0


def cmd_enable(d, args):
    rows = d.sql(
        "UPDATE driftd.webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL "
        "WHERE name = :'name' AND disabled_at IS NOT NULL RETURNING name",
        name=args.name)
    if rows:
        print(f"[webhook.{args.name}] enabled; its waiting deliveries go out now")
    else:
        print(f"[webhook.{args.name}] is not disabled")
    return 0


def cmd_test(d, args):
    status, reply = d.http("POST", f"/v1/webhooks/{args.name}/test")
    if status != 202:
        message = reply.get("error") if isinstance(reply, dict) else str(reply).strip()
        raise Failure(f"driftd answered {status}: {message}")
    mid = reply["id"]
    print(f"test event {mid} queued for [webhook.{args.name}]")
    if args.no_wait:
        return 0
    deadline = time.monotonic() + args.timeout
    row = None
    while time.monotonic() < deadline:
        rows = d.sql("SELECT status, attempts, last_http_status, last_error "
                     "FROM driftd.webhook_deliveries WHERE id = :'id'", id=mid)
        row = rows[0] if rows else None
        if row and row[0] in ("delivered", "dead"):
            break
        time.sleep(0.2)
    if not row:
        raise Failure(f"{mid} did not reach the database within {args.timeout:g}s")
    state, attempts, http_status, error = row
    detail = f"after {attempts} attempt(s)"
    if http_status:
        detail += f", HTTP {http_status}"
    if error:
        detail += f": {error}"
    print(f"{mid}: {state} {detail}")
    return 0 if state == "delivered" else 1


def run(fn):
    """FN(daemon, args) as a subcommand's function."""
    return reported(lambda args: fn(Daemon(args.config, args.url), args))


def register(sub):
    p = sub.add_parser("webhooks", help="webhook deliveries and endpoints")
    wsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = wsub.add_parser("list", help="recent deliveries, newest first")
    q.add_argument("--status", choices=["pending", "retrying", "delivered", "dead"])
    q.add_argument("--endpoint", help="only this [webhook.NAME]")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.set_defaults(func=run(cmd_list))
    q = wsub.add_parser("redeliver", help="send a delivery again, same webhook-id")
    q.add_argument("id")
    q.set_defaults(func=run(cmd_redeliver))
    q = wsub.add_parser("enable", help="re-enable an endpoint a 410 disabled")
    q.add_argument("name")
    q.set_defaults(func=run(cmd_enable))
    q = wsub.add_parser("test", help="have driftd send a signed test event")
    q.add_argument("name")
    q.add_argument("--no-wait", action="store_true",
                   help="return once queued, without waiting for the outcome")
    q.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for delivered or dead (default 30)")
    q.set_defaults(func=run(cmd_test))
