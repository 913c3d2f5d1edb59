"""The durable queue's use cases: the async pipeline, runs, Message Batches, classify/escalate/retry/worker services."""
