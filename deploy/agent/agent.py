"""The example agent of deploy/docker-compose.yml: talks to Junction with the official SDKs.

It sends one Anthropic Messages request, one streamed, and one OpenAI Chat Completions
request, all through Junction (ANTHROPIC_BASE_URL, OPENAI_BASE_URL), prints what came back
and which route Junction took, and exits 0 when all three succeeded. The key it sends is a
placeholder: Junction strips it and sends the provider's own key.

    ANTHROPIC_BASE_URL=http://127.0.0.1:3456 OPENAI_BASE_URL=http://127.0.0.1:3456/v1 \
        python deploy/agent/agent.py
"""

from __future__ import annotations

import os
import sys

import anthropic
import openai

PROMPT = "Say hello from the agent container."


def run() -> int:
    claude = anthropic.Anthropic(
        base_url=os.environ.get("ANTHROPIC_BASE_URL", "http://127.0.0.1:3456"),
        api_key=os.environ.get("ANTHROPIC_API_KEY", "placeholder"),
        max_retries=0,
    )
    model = os.environ.get("AGENT_MODEL", "claude-sonnet-4-5")
    raw = claude.messages.with_raw_response.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
    )
    message = raw.parse()
    text = "".join(block.text for block in message.content if block.type == "text")
    print(f"anthropic  {message.model}  route={raw.headers.get('x-junction-route')}  {text!r}")

    with claude.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    print(f"streamed   {final.model}  stop={final.stop_reason}  {streamed!r}")

    gpt = openai.OpenAI(
        base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:3456/v1"),
        api_key=os.environ.get("OPENAI_API_KEY", "placeholder"),
        max_retries=0,
    )
    completion = gpt.chat.completions.create(
        model=os.environ.get("AGENT_OPENAI_MODEL", "gpt-4.1"),
        max_tokens=64,
        messages=[{"role": "user", "content": PROMPT}],
    )
    print(f"openai     {completion.model}  {completion.choices[0].message.content!r}")
    ok = bool(text) and bool(streamed) and bool(completion.choices[0].message.content)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run())
