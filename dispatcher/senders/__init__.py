"""What to send where: webhooks (save, check, preview, test send), channels and their notifications, the event catalogue and payload schemas, signing-secret rotation."""
