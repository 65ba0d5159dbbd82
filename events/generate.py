#!/usr/bin/env python3
"""Writes the Lambda event fixtures in this folder (see README.md for where each comes from).

Run from anywhere: python3 events/generate.py. Deterministic: running it again changes nothing.
"""
import base64
import copy
import json
import pathlib
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
CAPTURE = (HERE.parent / "crates/core/tests/fixtures/obs_a_v1_messageadd_lines.form").read_text().strip()
MEMBER = "869e4953d7e841e02de675524e65f51a"
QUEUE_ARN = "arn:aws:sqs:eu-central-1:123456789012:olbridge-jobs.fifo"


def replace(form, key, value):
    pairs = [(k, value if k == key else v) for k, v in urllib.parse.parse_qsl(form, keep_blank_values=True)]
    return urllib.parse.urlencode(pairs)


def apigw(method, path, body=None, query="", base64_body=False):
    """An API Gateway HTTP API (payload 2.0) request, shaped like lambda-http's apigw_v2_proxy_request.json."""
    headers = {
        "accept": "*/*",
        "host": "a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com",
        "user-agent": "Bitrix24 Webhook Engine",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "Bitrix24 Webhook Engine"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "26/Mar/2024:12:23:54 +0000",
            "timeEpoch": 1711455834412,
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = dict(urllib.parse.parse_qsl(query))
    if body is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"
        headers["content-length"] = str(len(body.encode()))
        event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    return event


def job(message_id, chat_id, text, author_id, user_code, session_id, received_at="2024-03-26T12:23:54.412Z"):
    """A Job as the receiver queues it (olbridge_core::domain::event::Job), here for the capture's portal."""
    return {
        "version": 1,
        "key": f"{MEMBER}:msg:{message_id}",
        "group": f"{MEMBER}:chat{chat_id}",
        "received_at": received_at,
        "event": {
            "type": "message",
            "source": "bot_push_v1",
            "portal": {"member_id": MEMBER, "domain": "b24-1x2ywp.bitrix24.ru"},
            "message_id": message_id,
            "chat_id": chat_id,
            "dialog_id": f"chat{chat_id}",
            "author": {"id": author_id, "name": "[Dev] Oleg Pashchenko", "kind": "customer"},
            "text": text,
            "system": False,
            "lines": {
                "line_id": 1,
                "connector": "telegrambot",
                "user_code": user_code,
                "session_id": session_id,
                "crm": {"entity_type": "lead", "entity_id": 3},
                "phone": None,
            },
            "bot_id": 11,
            "language": "ru",
            "sent_at": "2024-03-26T12:23:54Z",
        },
    }


def record(n, group, body, receives=1):
    """One record of an SQS FIFO event as Lambda's event source mapping delivers it."""
    return {
        "messageId": f"0f6e3c1a-5b7d-4e0b-9c1e-00000000000{n}",
        "receiptHandle": f"AQEB-receipt-handle-{n}",
        "body": body if isinstance(body, str) else json.dumps(body, separators=(",", ":")),
        "attributes": {
            "ApproximateReceiveCount": str(receives),
            "SentTimestamp": "1711455834500",
            "SequenceNumber": f"1888000000000000000{n}",
            "MessageGroupId": group,
            "SenderId": "AROAEXAMPLE:olbridge-receiver",
            "MessageDeduplicationId": body["key"] if isinstance(body, dict) and "key" in body else f"dedup-{n}",
            "ApproximateFirstReceiveTimestamp": "1711455834600",
        },
        "messageAttributes": {},
        "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "eu-central-1",
    }


def scheduled():
    """An EventBridge "Scheduled Event" as a rule with a rate schedule sends it to its Lambda target,
    shaped like aws_lambda_events' lambda-events/src/fixtures/example-eventbridge-schedule.json."""
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-29T06:00:00Z",
        "region": "eu-central-1",
        "resources": ["arn:aws:events:eu-central-1:123456789012:rule/olbridge-dev-poller"],
        "detail": {},
    }


def write(name, value):
    (HERE / name).write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def main():
    write("apigw-v2-messageadd.json", apigw("POST", "/bitrix/events", CAPTURE, query="CLIENT_ID=192735"))
    write("apigw-v2-messageadd-base64.json", apigw("POST", "/bitrix/events", CAPTURE, query="CLIENT_ID=192735", base64_body=True))
    write("apigw-v2-forged.json", apigw("POST", "/bitrix/events", replace(CAPTURE, "auth[application_token]", "forged-token")))
    write("apigw-v2-health.json", apigw("GET", "/health"))
    write("poller-scheduled.json", scheduled())
    # Direct invocations of the poller: the canary rule's constant input, and a hand-run health check.
    write("poller-health.json", {"olbridge": "health"})
    write("poller-canary.json", {"olbridge": "canary"})

    first = job(17, 5, "hahahahaha", 13, "telegrambot|1|1398715343|13", 1)
    other_chat = job(18, 7, "hello, do you deliver on Sundays?", 15, "telegrambot|1|2222222222|15", 2)
    follow_up = job(19, 5, "and to Potsdam?", 13, "telegrambot|1|1398715343|13", 1, received_at="2024-03-26T12:23:56.100Z")
    newer = copy.deepcopy(other_chat)
    newer["version"] = 99
    write("sqs-one-job.json", {"Records": [record(1, first["group"], first)]})
    write("sqs-two-groups.json", {"Records": [record(1, first["group"], first), record(2, other_chat["group"], other_chat), record(3, follow_up["group"], follow_up)]})
    write("sqs-poison.json", {"Records": [record(1, f"{MEMBER}:chat5", '{"hello": "not a job"}'), record(2, first["group"], first), record(3, newer["group"], newer)]})


if __name__ == "__main__":
    main()
