"""Dispatcher models: webhook definitions, deliveries and their attempts, retry policies, quota counters,
periodic jobs."""
from dispatcher.models.captures import Capture, CaptureWhen
from dispatcher.models.channels import Channel
from dispatcher.models.deliveries import Attempt, Delivery, DeliverySource, DeliveryStatus, FailureDigest
from dispatcher.models.endpoints import Endpoint
from dispatcher.models.engine import EngineCounter, SenderProcess
from dispatcher.models.periodic import PeriodicJob
from dispatcher.models.quotas import DailyUsage
from dispatcher.models.retry_policies import FailureEmails, RetryPolicy
from dispatcher.models.usage import UsageCounter
from dispatcher.models.webhooks import (
    AuthType, CaptureType, ContentType, CustomParameter, EntityParameter, Method, OAuthClientAuth, Webhook,
    WebhookHeader, signing_secret_generate,
)

__all__ = [
    "Attempt", "AuthType", "Capture", "CaptureType", "CaptureWhen", "Channel", "ContentType", "CustomParameter",
    "DailyUsage", "Delivery", "DeliverySource", "DeliveryStatus", "Endpoint", "EngineCounter", "EntityParameter",
    "FailureDigest", "FailureEmails", "Method", "OAuthClientAuth", "PeriodicJob", "RetryPolicy", "SenderProcess",
    "UsageCounter", "Webhook", "WebhookHeader", "signing_secret_generate",
]
