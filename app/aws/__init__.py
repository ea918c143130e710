"""AWS push sources: EventBridge envelopes and SNS HTTP(S) messages.

Below ``app.api`` (it never imports it) and above the parsers: the router hands it a parser lookup, so
nothing here knows the registry, the database or FastAPI.
"""
