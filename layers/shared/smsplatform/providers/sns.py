"""Amazon SNS `Publish` to a phone number.

SNS reports delivery only to CloudWatch Logs, not as events, so messages sent
this way stay `sent`: accepted and paid for, with no handset receipt.
"""

import re
from typing import Any

from smsplatform.core.config import Settings
from smsplatform.providers import aws_calls
from smsplatform.providers.base import OutboundMessage, Provider

_TRANSIENT = {"ThrottledException", "Throttling", "KMSThrottlingException"}
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")  # SNS sender ids: 1-11 alphanumerics, a letter


class Sns(Provider):
    name = "sns"
    reusable = True

    def __init__(self, settings: Settings, sns_client: Any = None) -> None:
        self.client = sns_client or aws_calls.client("sns", settings)
        self.sms_type = settings.sns_sms_type

    def send(self, message: OutboundMessage) -> str:
        attributes = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": self.sms_type}}
        if message.sender_id and _SENDER_ID.match(message.sender_id):
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": message.sender_id}
        answer = aws_calls.call(
            self.client.publish, _TRANSIENT, PhoneNumber=message.to, Message=message.body, MessageAttributes=attributes
        )
        return str(answer["MessageId"])
