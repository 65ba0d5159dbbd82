"""Creates an olbridge deployment's table, queues and secret from infra/resources.json against
AWS_ENDPOINT_URL (moto, or a real account when it is unset), and prints the environment the
functions need as KEY=value lines. Used by `scripts/aws-local create`; boto3 comes with moto."""

import json
import os
import sys

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))


def spec():
    with open(os.path.join(HERE, "..", "infra", "resources.json"), encoding="utf-8") as f:
        return json.load(f)


def create(prefix):
    s = spec()
    region = os.environ.get("AWS_REGION", "eu-central-1")
    ddb = boto3.client("dynamodb", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    sm = boto3.client("secretsmanager", region_name=region)

    table = f"{prefix}-table"
    t = s["table"]
    try:
        ddb.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": t["partitionKey"]["name"], "KeyType": "HASH"},
                {"AttributeName": t["sortKey"]["name"], "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": t["partitionKey"]["name"], "AttributeType": t["partitionKey"]["type"]},
                {"AttributeName": t["sortKey"]["name"], "AttributeType": t["sortKey"]["type"]},
            ],
            BillingMode=t["billingMode"],
        )
        ddb.get_waiter("table_exists").wait(TableName=table)
    except ddb.exceptions.ResourceInUseException:
        pass
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": t["ttlAttribute"]})

    q, d = s["queue"], s["deadLetterQueue"]
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}-dlq.fifo",
        Attributes={"FifoQueue": "true", "MessageRetentionPeriod": str(d["messageRetentionSeconds"])},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-events.fifo",
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": str(q["contentBasedDeduplication"]).lower(),
            "DeduplicationScope": q["deduplicationScope"],
            "FifoThroughputLimit": q["fifoThroughputLimit"],
            "VisibilityTimeout": str(q["visibilityTimeoutSeconds"]),
            "MessageRetentionPeriod": str(q["messageRetentionSeconds"]),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(q["maxReceiveCount"])}),
        },
    )["QueueUrl"]

    secret_name = f"{prefix}/secret"
    value = {k: os.environ.get(k, "") for k in s["secret"]["keys"]}
    try:
        sm.create_secret(Name=secret_name, SecretString=json.dumps(value))
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=secret_name, SecretString=json.dumps(value))

    print(f"OLBRIDGE_TABLE={table}")
    print(f"OLBRIDGE_QUEUE_URL={queue_url}")
    print(f"OLBRIDGE_DLQ_URL={dlq_url}")
    print(f"OLBRIDGE_SECRET_ID={secret_name}")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "create":
        sys.exit("usage: aws_local.py create [PREFIX]")
    create(sys.argv[2] if len(sys.argv) > 2 else "olbridge")
