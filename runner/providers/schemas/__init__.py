"""The request schemas of the three providers, derived from each provider's own published
description of its API rather than written by hand.

A hand-written schema is a guess that drifts: it either lets a misspelt `maxOutputToken`
through (to be refused by the API after the batch was paid for and waited on) or refuses a
field the API has since added. So each provider's request schema
(`runner/providers/<provider>/*.schema.json`) is generated, in two steps, from a copy of the
provider's published description kept in this folder (`published/<provider>.json`, with its
source and date):

1. `extract` (needs the published packages installed: the SDKs of the `test` extra and
   `google-ai-generativelanguage`) reads the description and writes the copy: the message
   types the request refers to, trimmed to those, in one plain JSON form (`describe`).
2. `generate` turns the copy into JSON Schemas that refuse every key the description does
   not name (`additionalProperties: false`), then applies the runner's own rules
   (`rules`): the model is not in the body, batches do not stream, Anthropic's pinned API
   version refuses temperature, top_p and top_k.

    python -m runner.providers.schemas extract gemini     # refresh a copy
    python -m runner.providers.schemas generate           # rewrite the schemas
    python -m runner.providers.schemas check              # exit 1 if they are stale
"""
