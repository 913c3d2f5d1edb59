"""Model providers (the Anthropic SDK) and their rate-limit pacing; the protocol is `triage.routing.provider`."""
