"""The /v1 gateway: the OpenAI Chat Completions and Anthropic Messages APIs over every
provider Synapse routes to, behind API keys (plain ASGI, no framework on the hot path).

    app.py              the ASGI app: /v1 routes, key check, body limit, streaming out
    openai_shape.py     OpenAI request -> call arguments; Response / events -> OpenAI JSON and SSE
    anthropic_shape.py  the same for the Anthropic Messages API
    options.py          sampling and reasoning options -> each target protocol's fields
    problems.py         any error -> status and body in the shape of the API being spoken
    models.py           GET /v1/models: configured providers' models and the aliases
    keys.py             API keys: create, list, revoke, check (`authenticate`)
    cli.py              `synapse keys ...`
    api.py              /api/keys for Settings -> API Keys

Every model call goes through `synapse.client` (achat / astream / aembed, and `arelay`
for the same-protocol fast path).
"""
