"""Turning a webhook and a record into the exact HTTP request that is sent: merge fields, templates, the
encodings of each content type, the safe XML parser, and the send-time auth of a webhook or channel
(``send_auth_for``: the transport below knows requests, not webhooks)."""
