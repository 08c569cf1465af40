"""What travels between the functions over SQS: one pydantic model per queue's message body.

Producers send these models (`queues.send` serialises them); consumers parse
each record at the edge with `BatchProcessor(model=...)`, so a malformed body is
a failed record that ends in the dead-letter queue, never a `KeyError` deep in
the library. Dates travel as ISO 8601 with their offset, the one encoding
pydantic writes and reads.

| queue | body | producers | consumer |
|---|---|---|---|
| release | `Release` | campaigns (send, schedule tick) | dispatcher |
| send | `SendBatch` | dispatcher, messages API, sender (retries), scheduler | sender |
| receipts | `ProviderEvents`, or an SNS `SnsNotification` | webhooks, simulator, End User Messaging topic | receipts |
| callbacks | `CallbacksDue` | sender, receipts, callbacks, scheduler | callbacks |
| imports | `ImportFileUploaded` (an S3 event notification) | S3 | contact import |
"""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, ConfigDict, Field, Json

# What a batch, a reservation and a settlement belong to: a campaign, or one POST /v1/messages request.
SendKind = Literal["campaign", "request"]
ReceiptStatus = Literal["delivered", "undelivered"]


class QueueMessage(BaseModel):
    model_config = ConfigDict(frozen=True)


class Release(QueueMessage):
    """A campaign is due: the dispatcher materialises its audience."""

    campaign_id: UUID


class SendBatch(QueueMessage):
    """One batch of a campaign or request for the sender; redelivery is harmless (claims are conditional)."""

    kind: SendKind
    id: UUID
    batch: int


class Receipt(QueueMessage):
    """A provider's word on what became of a message it accepted."""

    external_id: str
    status: ReceiptStatus
    timestamp: datetime
    error_code: str | None = None
    error_message: str | None = None


class InboundMessage(QueueMessage):
    """A message a recipient sent to one of our numbers."""

    external_id: str
    from_number: str
    to_number: str | None
    body: str
    received_at: datetime
    reply_to_external_id: str | None = None  # the provider's id of the message this answers, where it says


class ProviderEvents(QueueMessage):
    """Receipts and inbound messages from one provider, already authenticated by whoever enqueued them."""

    provider: str
    receipts: list[Receipt] = []
    inbound: list[InboundMessage] = []


class SnsNotification(QueueMessage):
    """An Amazon SNS notification delivered by a topic's SQS subscription (the queue policy admits the topic)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    type: Annotated[Literal["Notification"], Field(alias="Type")]
    topic_arn: Annotated[str, Field(alias="TopicArn")]
    message: Annotated[Json[dict[str, Any]], Field(alias="Message")]  # an End User Messaging event


class CallbacksDue(QueueMessage):
    """An account has status callbacks due in its outbox."""

    user_id: UUID


class ExportRequested(QueueMessage):
    """An export to build (sending/exports.py)."""

    export_id: UUID


class S3Bucket(QueueMessage):
    name: str


class S3Object(QueueMessage):
    key: str


class S3Entity(QueueMessage):
    bucket: S3Bucket
    object: S3Object


class S3Entry(QueueMessage):
    s3: S3Entity


class ImportFileUploaded(QueueMessage):
    """S3's "object created" notification for an upload under imports/ (an s3:TestEvent has no Records)."""

    records: Annotated[list[S3Entry], Field(alias="Records")] = []


# The records each consumer parses: SQS's envelope with the body declared above.
class ReleaseRecord(SqsRecordModel):
    body: Json[Release]


class SendBatchRecord(SqsRecordModel):
    body: Json[SendBatch]


class ProviderEventsRecord(SqsRecordModel):
    body: Json[ProviderEvents | SnsNotification]


class CallbacksDueRecord(SqsRecordModel):
    body: Json[CallbacksDue]


class ExportRequestedRecord(SqsRecordModel):
    body: Json[ExportRequested]


class ImportFileRecord(SqsRecordModel):
    body: Json[ImportFileUploaded]
