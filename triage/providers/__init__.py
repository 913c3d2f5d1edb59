"""Model providers: each turns one ticket into one `triage.domain.CallResult`."""
